"""The gateway as Django views: the same code as the ASGI app that serves `/v1/` in production
(boochat.asgi sends it there first), reachable by reverse(), `manage.py runserver` and the test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from boochat.gateway.app import StreamReply, dispatch


async def _relayed(reply: StreamReply) -> AsyncIterator[bytes]:
    try:
        async for chunk in reply.relayed():
            yield chunk
    finally:
        reply.response.close()
        reply.finish()


@csrf_exempt  # bearer keys, no cookies
@login_not_required
async def v1(request: HttpRequest, **path: Any) -> HttpResponseBase:
    """Any /v1/ request: authorized by its bearer key, answered in OpenAI's shapes."""
    body = request.body
    headers = {name.lower().encode("latin-1"): value.encode("latin-1") for name, value in request.headers.items()}
    headers[b"host"] = request.get_host().encode("latin-1")  # checked by Django against ALLOWED_HOSTS
    scope = {"method": request.method, "path": request.path, "query_string": request.META.get("QUERY_STRING", "").encode(),
             "client": (request.META.get("REMOTE_ADDR", ""), 0)}

    read = False

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read:  # as an ASGI server does once the body was read: wait for a disconnect that never comes
            await asyncio.Event().wait()
        read = True
        return {"type": "http.request", "body": body, "more_body": False}

    reply = await dispatch(scope, receive, headers, request.is_secure())
    if reply is None:
        return HttpResponse(status=400)
    if isinstance(reply, StreamReply):
        return StreamingHttpResponse(_relayed(reply), content_type=reply.content_type,
                                     headers={"Cache-Control": "no-cache", **reply.headers})
    if reply.meter is not None:
        reply.meter.finish(reply.status)
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type, headers=reply.headers)
