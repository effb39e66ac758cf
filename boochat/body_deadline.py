"""A deadline for reading a request's body, around the whole ASGI application: a client that
trickles its body (a byte every few seconds) gets 408 instead of holding a connection and a task
for as long as it likes. uvicorn has no such limit; a reverse proxy in front adds its own (README)."""

from __future__ import annotations

import asyncio

from django.conf import settings

from boochat.asgi_types import ASGIApp, Message, Receive, ResponseWatch, Scope, Send

TIMED_OUT = b"The request body did not arrive within BOOCHAT_BODY_TIMEOUT seconds.\n"


def with_body_deadline(app: ASGIApp) -> ASGIApp:
    """`app`, whose HTTP requests must deliver their whole body within BOOCHAT_BODY_TIMEOUT seconds
    of arriving; past it the app sees the client leave, and the client gets 408."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + settings.BOOCHAT_BODY_TIMEOUT
        body_read = timed_out = False
        response = ResponseWatch(send)

        async def receive_in_time() -> Message:
            nonlocal body_read, timed_out
            if body_read:  # the body is in; what follows (a disconnect) may take as long as it takes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                return {"type": "http.disconnect"}
            body_read = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await app(scope, receive_in_time, response.send)
        if timed_out and not response.started:
            await send({"type": "http.response.start", "status": 408, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                (b"content-length", str(len(TIMED_OUT)).encode())]})
            await send({"type": "http.response.body", "body": TIMED_OUT})

    return application
