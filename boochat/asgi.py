"""ASGI entry point: BooChat is served by an ASGI server so that streams are never buffered.

`/v1/` (the OpenAI-compatible gateway) is dispatched to a Django handler without middleware: its
views authenticate by bearer key and use no session, CSRF, messages or login redirect, and under
ASGI every synchronous middleware costs a thread hop per request (DESIGN.md, Serving and scale).
Everything else gets the full stack.
"""

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")

django_application = get_asgi_application()


class GatewayHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain (URL routing and views as usual)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(
            self._get_response_async if is_async else self._get_response
        )


gateway_application = GatewayHandler()


async def application(scope, receive, send):  # noqa: ANN001, ANN201 - the ASGI signature
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
