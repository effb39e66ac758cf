"""Static files through the served app (ASGI), as WhiteNoise serves them, without a sync iterator."""

import asyncio
import logging
import warnings
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from boochat.static import StaticFilesMiddleware

pytestmark = pytest.mark.django_db(transaction=True)


def _a_static_file() -> tuple[str, bytes]:
    path = max(Path(settings.BASE_DIR, "static").rglob("*.js"), key=lambda p: p.stat().st_size)
    return f"/static/{path.relative_to(Path(settings.BASE_DIR, 'static')).as_posix()}", path.read_bytes()


def test_static_files_are_served_whole_as_they_are_read(asgi_server):
    url, content = _a_static_file()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = httpx.get(f"{asgi_server.url}{url}")
        head = httpx.head(f"{asgi_server.url}{url}")
        again = httpx.get(f"{asgi_server.url}{url}", headers={"If-None-Match": response.headers["etag"]})
    assert response.status_code == 200 and response.content == content
    assert response.headers["content-type"].startswith("text/javascript")
    assert int(response.headers["content-length"]) == len(content)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(content))
    assert again.status_code == 304 and again.content == b""
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]


async def _body(response) -> bytes:
    return b"".join([part async for part in response.streaming_content])


def test_compressed_variants_are_chosen_as_whitenoise_chooses_them(collected_static, settings):
    from asgiref.sync import async_to_sync
    from django.http import HttpResponse
    from django.test import RequestFactory

    settings.STATIC_ROOT, settings.WHITENOISE_USE_FINDERS = collected_static, False
    gzipped = next(p for p in sorted(Path(collected_static).rglob("*.js.gz")))
    url = f"/static/{gzipped.relative_to(collected_static).as_posix().removesuffix('.gz')}"

    async def not_static(request):
        return HttpResponse("the rest of the chain")

    middleware = StaticFilesMiddleware(not_static)
    plain = async_to_sync(middleware)(RequestFactory().get(url))
    compressed = async_to_sync(middleware)(RequestFactory().get(url, HTTP_ACCEPT_ENCODING="gzip"))
    other = async_to_sync(middleware)(RequestFactory().get("/chat/"))

    assert async_to_sync(_body)(plain) == gzipped.with_suffix("").read_bytes()
    assert compressed["Content-Encoding"] == "gzip" and "Accept-Encoding" in compressed["Vary"]
    assert async_to_sync(_body)(compressed) == gzipped.read_bytes()
    assert other.content == b"the rest of the chain"


def test_the_middleware_chain_runs_without_thread_hops(caplog):
    # A sync-only middleware makes Django hop to a thread and back around it on every request;
    # Django logs each adaptation while it builds the chain.
    from django.core.asgi import get_asgi_application

    with caplog.at_level(logging.DEBUG, logger="django.request"):
        get_asgi_application()
    assert not [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()]


def test_large_files_are_sent_as_they_are_read_block_by_block(settings, tmp_path):
    # Django's ASGI handler cuts every body into 64 KiB messages whatever the response hands it, so
    # counting messages cannot tell a file read whole from one read as it is sent. A file rewritten
    # while it is sent can: only the blocks read after that carry the new bytes.
    from django.core.asgi import get_asgi_application

    from boochat.static import BLOCK_SIZE

    size = 3 * BLOCK_SIZE + 100
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * size)
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, tmp_path]
    application = get_asgi_application()  # Django's app, as boochat.asgi serves it, built again to find the folder
    requests, messages = [{"type": "http.request", "body": b"", "more_body": False}], []

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.get_running_loop().create_future()  # the client stays until the response ends

    async def send(message):
        messages.append(message)
        if message["type"] == "http.response.body" and len(messages) == 2:  # the first block is out
            path.write_bytes(b"b" * size)  # the same file, rewritten in place

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/static/big.bin", "raw_path": b"/static/big.bin", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    async_to_sync(application)(scope, receive, send)

    start, *bodies = messages
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert dict(start["headers"])[b"Content-Length"] == str(size).encode()
    assert [m["type"] for m in bodies] == ["http.response.body"] * len(bodies) and len(bodies) > 2
    body = b"".join(m.get("body", b"") for m in bodies)
    assert body == b"a" * BLOCK_SIZE + b"b" * (size - BLOCK_SIZE)  # the first block read before it was sent, the rest after
