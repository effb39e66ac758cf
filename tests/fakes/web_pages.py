"""A fake web site for read_page: pages by path (`pages[path] = Response(...)`), redirects, a page that
streams forever, one that answers slowly. Every request is recorded with its headers, so tests can
see the Host header read_page sent."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from tests.fakes.server import FakeHost, RecordedRequest, Response, Stream

ARTICLE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>The  Kettle Guide</title>
<style>body { color: red }</style><script>document.write("tracking")</script></head>
<body><nav><a href="/">Home</a> <a href="/shop">Shop</a></nav>
<h1>Boiling water</h1>
<p>A kettle boils water <em>quickly</em>. See <a href="/more?x=1">the longer guide</a>.</p>
<h2>Steps</h2>
<ul><li>Fill it</li><li>Switch it on</li></ul>
<div hidden>hidden text</div><noscript>enable JavaScript</noscript>
<p>Caf\xc3\xa9 &amp; tea</p>
</body></html>"""


class FakeWebSite(FakeHost):
    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self.pages: dict[str, Response | Stream] = {
            "/article": Response(200, ARTICLE, content_type="text/html; charset=utf-8"),
            "/notes.txt": Response(200, b"plain notes\nline two", content_type="text/plain; charset=utf-8"),
            "/data.json": Response.json({"answer": 42}),
            "/paper.pdf": Response(200, b"%PDF-1.7 ...", content_type="application/pdf"),
            "/missing": Response(404, b"Not Found", content_type="text/plain"),
        }
        self.slow_seconds = 0.0  # /slow waits this long before answering

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.pages[path] = Response(status, b"", content_type="text/plain", headers={"Location": location})

    async def handle(self, request: RecordedRequest) -> Response | Stream:
        if request.path == "/slow":
            await asyncio.sleep(self.slow_seconds)
            return Response(200, b"late", content_type="text/plain")
        if request.path == "/endless":
            return Stream(self._forever(), content_type="text/plain")
        return self.pages.get(request.path) or Response(404, b"Not Found", content_type="text/plain")

    @staticmethod
    async def _forever() -> AsyncIterator[bytes]:
        while True:
            yield b"all work and no play " * 3000


def https_site(certificate: tuple[Path, Path]) -> FakeWebSite:
    """The site over HTTPS with this certificate and key (not started)."""
    site = FakeWebSite()
    site.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    site.tls.load_cert_chain(*certificate)
    return site
