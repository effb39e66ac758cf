"""ASGI entry point: BooChat is served by an ASGI server so that streams are never buffered.

`/v1/` (the OpenAI-compatible gateway) is its own lean ASGI application (boochat.gateway): it
authenticates by bearer key and needs no session, CSRF, messages or templates, and Django's
request handling cost more than the rest of a gateway request. Everything else is Django, through
its ASGI handler with one short path, for streamed chat sends (boochat.handler).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from boochat import gateway  # noqa: E402 - needs the apps loaded
from boochat.body_deadline import with_body_deadline  # noqa: E402
from boochat.handler import Handler  # noqa: E402

django_application = Handler()


async def dispatch(scope, receive, send):  # noqa: ANN001, ANN201 - the ASGI signature
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await gateway.application(scope, receive, send)
    else:
        await django_application(scope, receive, send)


application = with_body_deadline(dispatch)
