"""The response side of talking to hosts, beside the views: relayed event streams, and the
database connection given back before a host is asked. The host protocol is providers.upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

from boochat.database import release_connection
from providers import upstream
from providers.routing import Route


def sse_response(stream: AsyncIterator[bytes], *, content_type: str = "text/event-stream",
                 headers: dict[str, str] | None = None) -> StreamingHttpResponse:
    """A relayed event stream: never cached, never buffered by a proxy in front of BooChat."""
    return StreamingHttpResponse(stream, content_type=content_type, headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {}),
    })


async def complete_chat(route: Route, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """A non-streaming chat completion (titles, summaries), the database connection given back first;
    raise UpstreamError on any failure."""
    await sync_to_async(release_connection)()
    return await upstream.complete_chat(route, messages, **options)
