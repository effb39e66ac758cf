"""Django's ASGI handler, with a short path for the one request whose speed users feel: the streamed
chat send (`POST /chat/<pk>/send` with `X-BooChat-Stream: 1`, as the page's script sends it).

Under ASGI, Django's middleware chain hops to a worker thread and back for each hook of each
middleware, and the send's view hops again for each step of its database work: together about a
third of the send's time to its first byte (bench/chat_relay.py). On the short path the same hooks
of the same middleware, in the same order, run in one worker thread, followed by the view's
database work, so the send crosses to a thread once, before it asks the host (the response hooks
set headers and cookies, and run on the event loop unless the session has to be saved).

Sends that arrive while that thread is busy are admitted together, as one batch
(db_threads.Batched): the batch reads its sessions, their users (boochat.sessions), its chat
sessions and their histories in one query each, and saves every question and answer row in one
insert (chat.new_turns). A lone send is a batch of one; a burst of 500 costs two batches of five
statements where it cost 3,000 statements (bench/streams_load.py, 500 chats at once, same machine:
time to first byte p99 6.3-8.6 s before, 2.0-2.6 s with batches of at most 100, 1.1-1.3 s with 500).

That thread, and the one that saves the answer when it ends, are boochat.db_threads' long-lived
threads: on SQLite each keeps its connection (a new one costs about a millisecond, and the last one
closed checkpoints the WAL), elsewhere the connection goes back to the pool after each piece of
work. What stays Django's: reading the body, the request signals, disconnects, sending and closing
the response; its thread-sensitive part (the signals) runs on one long-lived thread shared by all
sends, where Django would start a thread for each request and another to join it.

Nothing is decided differently. Until the request is accepted (hooks that return a response, a
hook that raises, a session that is not the user's) nothing has been written, and the original
request goes through Django's full chain, which answers it as it always does (login redirect, CSRF
403, bad host 400, 404). The hooks run on a copy of the request, so the full chain starts from the
request as it arrived, and what the hooks log while trying it is dropped (Django's run logs the
refusal once). A middleware that is not a MiddlewareMixin, and is not known to do nothing
for a chat send, turns the short path off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from io import BytesIO
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, get_resolver, set_urlconf
from django.utils.deprecation import MiddlewareMixin
from django.utils.log import log_response
from django.utils.module_loading import import_string

from boochat import chat_views, db_threads
from boochat.chat import NewTurn
from boochat.models import ChatSession
from boochat.sessions import read_together

logger = logging.getLogger(__name__)

# Middleware that are not MiddlewareMixin hooks, and what they do, which a chat send does not need.
PASSIVE_MIDDLEWARE = {
    "boochat.static.StaticFilesMiddleware": "answers only requests for files under STATIC_URL",
    "django_htmx.middleware.HtmxMiddleware": "sets request.htmx, which a chat send does not read",
}


class _Trying(logging.Filter):
    """Drops log records made in a thread while the short path tries a request: if the request is
    refused, Django's full chain runs the same hook again and logs the refusal."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "active", False)


_TRYING = _Trying()
logging.getLogger("django.security.csrf").addFilter(_TRYING)  # the one hook that logs its refusals


def _unused_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover - never called
    raise AssertionError("the short path calls middleware hooks, never the chain")


class ShortPath:
    """The hooks of settings.MIDDLEWARE in Django's order, called directly in one thread."""

    def __init__(self, middleware: list[str]):
        self.request_hooks: list[Callable[..., Any]] = []
        self.view_hooks: list[Callable[..., Any]] = []
        self.response_hooks: list[Callable[..., Any]] = []
        for path in middleware:
            if path in PASSIVE_MIDDLEWARE:
                continue
            factory = import_string(path)
            if not (isinstance(factory, type) and issubclass(factory, MiddlewareMixin)):
                raise ValueError(f"{path} is not a MiddlewareMixin: the chat send's short path cannot run it")
            try:
                instance = factory(_unused_response)
            except MiddlewareNotUsed:
                continue
            for name, hooks in (("process_request", self.request_hooks), ("process_view", self.view_hooks),
                                ("process_response", self.response_hooks)):
                if hasattr(instance, name):
                    hooks.append(getattr(instance, name))
        self.response_hooks.reverse()

    @classmethod
    def for_settings(cls) -> ShortPath | None:
        try:
            return cls(settings.MIDDLEWARE)
        except ValueError as exc:
            logger.warning("Chat sends take Django's full middleware chain: %s", exc)
            return None

    @staticmethod
    def match(scope: dict[str, Any]) -> ResolverMatch | None:
        """The URL match when the ASGI request `scope` is a streamed chat send, else None."""
        if scope["method"] != "POST" or (b"x-boochat-stream", b"1") not in scope["headers"]:
            return None
        try:  # the request's path_info, as ASGIRequest computes it
            match = get_resolver().resolve(scope["path"].removeprefix(get_script_prefix(scope)))
        except Resolver404:
            return None
        return match if match.func is chat_views.chat_send else None

    def _hooks(self, request: HttpRequest, hooks: list[Callable[..., Any]], *args: Any) -> bool:
        """Run `hooks`; False if one refuses (or raises)."""
        _TRYING.local.active = True
        try:
            return all(hook(request, *args) is None for hook in hooks)
        except Exception:  # Django's chain meets the same exception and answers it as it does
            logger.debug("chat send handed to Django's full chain", exc_info=True)
            return False
        finally:
            _TRYING.local.active = False

    def admit(self, sends: list[tuple[HttpRequest, ResolverMatch]]) -> list[int]:
        """Run each send's request hooks, then its view hooks; the indexes of those none refused. The
        view hooks check the login: the sessions they read were read together, in one query."""
        admitted = [i for i, (request, _) in enumerate(sends) if self._hooks(request, self.request_hooks)]
        with read_together(getattr(sends[i][0], "session", None) for i in admitted):
            return [i for i in admitted
                    if self._hooks(sends[i][0], self.view_hooks, sends[i][1].func, sends[i][1].args, sends[i][1].kwargs)]

    def begin(self, sends: list[tuple[HttpRequest, ResolverMatch]]) -> list[tuple[ChatSession, NewTurn | HttpResponseBase] | None]:
        """For each send: its session and new turn (or the response that refuses it, such as an empty
        message), or None for Django's full chain to answer (a hook refused, the session is not the
        user's). One query for the sessions and one trip for the turns (chat.new_turns), whatever
        the number of sends; if that fails, each send is tried alone and fails alone."""
        try:
            admitted = self.admit(sends)
            sessions = dict(zip(admitted, chat_views.owned_sessions(
                [(sends[i][0].user, sends[i][1].kwargs["pk"]) for i in admitted]), strict=True))
            owned = [i for i in admitted if sessions[i] is not None]
            turns = dict(zip(owned, chat_views.begin_sends([(sends[i][0], sessions[i]) for i in owned]), strict=True))
        except Exception:
            if len(sends) == 1:
                logger.debug("chat send handed to Django's full chain", exc_info=True)
                return [None]
            return [self.begin([send])[0] for send in sends]
        return [(sessions[i], turns[i]) if i in turns else None for i in range(len(sends))]

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        for hook in self.response_hooks:
            response = hook(request, response)
        return response


# Django runs each request's thread-sensitive work (its request signals, which need no thread of their
# own under ASGI) in a thread it starts for the request and joins, from another new thread, when it
# ends. Streamed chat sends share this one long-lived thread instead: two thread starts less per send
# (bench/streams_load.py: 4-9 % less worker CPU and 11 MB less RSS at 500 chats).
_SEND_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-send")
_send_match: ContextVar[ResolverMatch | None] = ContextVar("boochat_chat_send_match", default=None)


class Handler(ASGIHandler):
    """Django's ASGIHandler; streamed chat sends take the short path (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.short_path = ShortPath.for_settings()
        if self.short_path is not None:
            # At most 500 sends a batch. 500 chats at once, three alternating runs: time to first byte
            # p99 1.44-1.65 s with batches of 100, 1.25-1.28 s with 250, 1.13-1.27 s with 500.
            self.sends = db_threads.Batched(self.short_path.begin, limit=500, orphaned=chat_views.abandon_turns)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        match = ShortPath.match(scope) if self.short_path is not None and scope["type"] == "http" else None
        if match is None:
            return await super().__call__(scope, receive, send)
        token = _send_match.set(match)
        try:
            async with ThreadSensitiveContext(executor=_SEND_THREAD):
                await self.handle(scope, receive, send)
        finally:
            _send_match.reset(token)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        match = _send_match.get()
        if match is not None and (response := await self._chat_send(request, match)) is not None:
            response._resource_closers.append(request.close)  # the copy's is there already
            if response.status_code >= 400:
                await sync_to_async(log_response, thread_sensitive=False)(
                    "%s: %s", response.reason_phrase, request.path, response=response, request=request)
            return response
        return await super().get_response_async(request)

    async def _chat_send(self, original: HttpRequest, match: ResolverMatch) -> HttpResponseBase | None:
        set_urlconf(settings.ROOT_URLCONF)
        try:
            body = original.body
        except Exception:  # too large, or unreadable: Django's chain says so
            return None
        request = ASGIRequest(original.scope, BytesIO(body))
        request.resolver_match = match
        db_threads.use_shared_threads()  # for the answer's final save
        begun = await self.sends.submit((request, match))
        if begun is None:
            return None
        session, turn = begun
        if isinstance(turn, HttpResponseBase):
            response = turn
        else:
            try:
                response = await chat_views.answer_send(request, session, turn)
            except Exception as exc:
                response = await sync_to_async(response_for_exception)(request, exc)
        response._resource_closers.append(request.close)
        session_changed = getattr(request, "session", None) is not None and request.session.modified
        if session_changed or settings.SESSION_SAVE_EVERY_REQUEST:
            return await sync_to_async(self.short_path.respond)(request, response)  # the session middleware saves it
        return self.short_path.respond(request, response)  # headers and cookies only: no thread needed
