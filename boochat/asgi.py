"""ASGI entry point: Django's own ASGI application, with `/v1/` (the OpenAI-compatible gateway, which
needs no session, CSRF or templates) sent to its lean ASGI app, a size limit on request bodies
(checked before they are read) and a deadline for them. The lifespan protocol (which Django does not
speak) lets a stopping worker save the answers still streaming before its event loop closes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")
django_application = get_asgi_application()

from boochat import inflight  # noqa: E402 - needs the apps loaded
from boochat.body_deadline import with_body_deadline  # noqa: E402
from boochat.body_limit import with_body_limit  # noqa: E402
from boochat.gateway import app as gateway  # noqa: E402


async def lifespan(receive, send):  # noqa: ANN001, ANN201 - the ASGI signature
    """Start at once; at shutdown, stop the answers still streaming and wait for their saves."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await inflight.stop_relays()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def dispatch(scope, receive, send):  # noqa: ANN001, ANN201 - the ASGI signature
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await gateway.application(scope, receive, send)
    else:
        await django_application(scope, receive, send)


application = with_body_limit(with_body_deadline(dispatch))
