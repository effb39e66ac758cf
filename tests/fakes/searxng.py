"""A fake SearXNG instance: `GET /search?q=…&format=json` answers the JSON API's shape (searx/webapp.py:
query, number_of_results, results with url/title/content/engine…, answers, corrections, infoboxes,
suggestions, unresponsive_engines). With `json_enabled=False` it answers format=json with 403 Forbidden,
as an instance whose settings.yml leaves json out of `search.formats` does."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeHost, RecordedRequest, Response

FORBIDDEN_PAGE = b"<!doctype html><title>403 Forbidden</title><h1>Forbidden</h1>"


def result(n: int, **fields: str) -> dict:
    """One search result as SearXNG lists it."""
    url = fields.pop("url", f"https://example.org/page-{n}")
    return {
        "url": url, "title": f"Result {n}", "content": f"Snippet of result {n}.", "engine": "duckduckgo",
        "parsed_url": ["https", "example.org", f"/page-{n}", "", "", ""], "template": "default.html",
        "engines": ["duckduckgo"], "positions": [n], "score": 1.0 / n, "category": "general", **fields,
    }


class FakeSearXNG(FakeHost):
    def __init__(self, results: list[dict] | None = None, *, json_enabled: bool = True) -> None:
        super().__init__()
        self.results = [result(n) for n in range(1, 13)] if results is None else results
        self.json_enabled = json_enabled

    def queries(self) -> list[dict[str, list[str]]]:
        return [parse_qs(urlsplit(r.target).query) for r in self.requests_to("/search")]

    async def handle(self, request: RecordedRequest) -> Response:
        if request.path not in {"/", "/search"}:
            return Response(404, b"Not Found", content_type="text/html")
        params = parse_qs(urlsplit(request.target).query)
        query = params.get("q", [""])[0]
        if params.get("format", ["html"])[0] != "json":
            return Response(200, b"<!doctype html><title>SearXNG</title>", content_type="text/html; charset=utf-8")
        if not self.json_enabled:
            return Response(403, FORBIDDEN_PAGE, content_type="text/html; charset=utf-8")
        return Response.json({
            "query": query, "number_of_results": 0, "results": self.results, "answers": [], "corrections": [],
            "infoboxes": [], "suggestions": [], "unresponsive_engines": [],
        })
