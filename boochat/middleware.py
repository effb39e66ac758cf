"""Django's own session, authentication, messages and common middleware, their hooks called in the
event loop under ASGI.

Django 5.2's middleware is MiddlewareMixin: under ASGI it sends each of its hooks to a thread and
waits for it back (`sync_to_async`), on every request, although most of them only read headers and
cookies and set attributes. On a chat send that was fourteen trips to a thread before the view
ran or the first byte left (docs/performance.md). The classes here are Django's, unchanged in what they
do: in async mode their hooks are called directly, and a hook that may touch the database (a session
to save, messages to store) still goes to a thread. Security, CSRF and X-Frame-Options stay Django's
classes as they are: its deployment checks look for them by name.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import common


class HooksInEventLoop:
    """For a MiddlewareMixin whose `process_request` does no I/O: in async mode, it and
    `process_response` are called in the event loop, `process_response` in a thread only when
    `response_touches_storage()` says it may reach the database."""

    async_mode: bool
    get_response: Any

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.respond(request)
        return super().__call__(request)  # type: ignore[misc]

    async def respond(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if not hasattr(self, "process_response"):
            return response
        if self.response_touches_storage(request):
            return await sync_to_async(self.process_response)(request, response)
        return self.process_response(request, response)

    def response_touches_storage(self, request: HttpRequest) -> bool:
        return False


class SessionMiddleware(HooksInEventLoop, sessions.SessionMiddleware):
    """The session is only saved (a query) when it changed, or with SESSION_SAVE_EVERY_REQUEST."""

    def response_touches_storage(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(HooksInEventLoop, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(HooksInEventLoop, auth.AuthenticationMiddleware):
    """Its hook sets `request.user` (lazy) and `request.auser`; the user is read when first used."""


class MessageMiddleware(HooksInEventLoop, messages_middleware.MessageMiddleware):
    """Messages are stored (a cookie, or the session past its size) only when a message was added or
    read; otherwise the response hook has nothing to do."""

    def response_touches_storage(self, request: HttpRequest) -> bool:
        storage = messages.get_messages(request)
        return bool(getattr(storage, "used", False) or getattr(storage, "added_new", False))
