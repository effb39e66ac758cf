"""Static files through the served app (ASGI), as WhiteNoise serves them, without a sync iterator."""

import logging
import warnings
from pathlib import Path

import httpx
import pytest
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
    from boochat.handler import Handler

    with caplog.at_level(logging.DEBUG, logger="django.request"):
        handler = Handler()
    assert not [r.getMessage() for r in caplog.records if "adapted" in r.getMessage()]
    assert handler.short_path is not None  # it knows this middleware does nothing for chat sends


def test_large_files_arrive_in_blocks(asgi_server, monkeypatch):
    from boochat import static

    monkeypatch.setattr(static, "BLOCK_SIZE", 256)
    url, content = _a_static_file()
    assert len(content) > 4 * 256
    with httpx.stream("GET", f"{asgi_server.url}{url}") as response:
        body = b"".join(response.iter_raw())
    assert body == content
