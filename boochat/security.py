"""The Content-Security-Policy header on every page (Django 5.2 has none of its own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware


@sync_and_async_middleware
def content_security_policy(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """Pages load scripts, styles and images only from BooChat itself (BOOCHAT_CSP to change). Async
    under ASGI: no hop to a thread and back for each request, as a MiddlewareMixin hook would take."""

    def with_policy(response: HttpResponseBase) -> HttpResponseBase:
        if settings.BOOCHAT_CSP:
            response.headers.setdefault("Content-Security-Policy", settings.BOOCHAT_CSP)
        return response

    if iscoroutinefunction(get_response):
        async def middleware(request: HttpRequest) -> HttpResponseBase:
            return with_policy(await get_response(request))

        return middleware
    return lambda request: with_policy(get_response(request))
