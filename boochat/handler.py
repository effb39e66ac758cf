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
work.

Around the view, the send takes the steps of Django's ASGIHandler.handle() in its order: the body,
request_started, the request (create_request), the response (send_response), response.close() and
its request_finished, or request_finished alone when the browser leaves first (then the response's
stream is closed, and the answer saved as interrupted). What it does not take is handle()'s cost
per request: request_started is sent for each send, in order, by one hop to a long-lived thread for
all the sends that arrive together, where Django hops once for each request; and the request is
made once, from the body in memory. For 500 sends at once that halved the event loop's work, and
time to first byte p99 went from 337-354 ms to 249-272 ms with the app called directly (385-394 ms
to 333-373 ms through uvicorn in bench/streams_load.py, which also measures uvicorn's own work).
That thread runs the sends' thread-sensitive work (the signals) where Django would start a thread
for each request and another to join it.

Nothing is decided differently. Until the request is accepted (hooks that return a response, a
hook that raises, a session that is not the user's) nothing has been written, and a new request,
made from the same scope and body, goes through Django's full chain, which answers it as it always
does (login redirect, CSRF 403, bad host 400, 404); what the hooks logged while trying it is
dropped (Django's run logs the refusal once). A body too large for DATA_UPLOAD_MAX_MEMORY_SIZE goes
to Django's handler whole, which answers it. A middleware that is not a MiddlewareMixin, and is not
known to do nothing for a chat send, turns the short path off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, get_resolver, set_script_prefix, set_urlconf
from django.utils.deprecation import MiddlewareMixin
from django.utils.log import log_response
from django.utils.module_loading import import_string

from boochat import chat_views, db_threads
from boochat.chat import NewTurn
from boochat.models import ChatSession
from boochat.proxy import cancel_on_disconnect
from boochat.sessions import read_together

logger = logging.getLogger(__name__)

# Middleware that are not MiddlewareMixin hooks, and what they do, which a chat send does not need.
PASSIVE_MIDDLEWARE = {
    "boochat.static.StaticFilesMiddleware": "answers only requests for files under STATIC_URL",
    "django_htmx.middleware.HtmxMiddleware": "sets request.htmx, which a chat send does not read",
    "axes.middleware.AxesMiddleware": "answers only a login attempt that was locked out",
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


def _on_send_thread(work: Callable[[list[Any]], list[Any]], items: list[Any]) -> Awaitable[list[Any]]:
    return sync_to_async(work, thread_sensitive=False, executor=_SEND_THREAD)(items)


def _request_started(scopes: list[dict[str, Any]]) -> list[Exception | None]:
    """Django's request_started for each request, in the order they came, on the send thread (where
    Django's handler would send it for them); what each raised, or None."""
    raised: list[Exception | None] = []
    for scope in scopes:
        try:
            request_started.send(sender=Handler, scope=scope)
        except Exception as exc:  # that request fails as Django's would; the others go on
            raised.append(exc)
        else:
            raised.append(None)
    return raised


async def _receive_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """The request body's messages as they came (None if the client left first), up to the one that
    takes it past DATA_UPLOAD_MAX_MEMORY_SIZE."""
    messages, size, limit = [], 0, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        messages.append(message)
        size += len(message.get("body", b""))
        if not message.get("more_body") or (limit is not None and size > limit):
            return messages


def _replaying(messages: list[dict[str, Any]], receive: Callable[[], Awaitable[dict[str, Any]]]
               ) -> Callable[[], Awaitable[dict[str, Any]]]:
    """`receive`, giving `messages` (already received) first."""
    waiting = list(messages)

    async def replayed() -> dict[str, Any]:
        return waiting.pop(0) if waiting else await receive()

    return replayed


class Handler(ASGIHandler):
    """Django's ASGIHandler; streamed chat sends take the short path (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.short_path = ShortPath.for_settings()
        if self.short_path is not None:
            # At most 500 sends a batch. 500 chats at once, three alternating runs: time to first byte
            # p99 1.44-1.65 s with batches of 100, 1.25-1.28 s with 250, 1.13-1.27 s with 500.
            self.started = db_threads.Batched(_request_started, limit=500, run=_on_send_thread)
            self.sends = db_threads.Batched(self.short_path.begin, limit=500, orphaned=chat_views.abandon_turns)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        match = ShortPath.match(scope) if self.short_path is not None and scope["type"] == "http" else None
        if match is None:
            return await super().__call__(scope, receive, send)
        received = await _receive_body(receive)
        if received is None:
            return  # the browser left before its request was complete
        body = b"".join(m.get("body", b"") for m in received)
        if settings.DATA_UPLOAD_MAX_MEMORY_SIZE is not None and len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return await super().__call__(scope, _replaying(received, receive), send)  # Django says it is too large
        async with ThreadSensitiveContext(executor=_SEND_THREAD):
            await self._handle_send(scope, body, receive, send, match)

    async def _handle_send(self, scope: dict[str, Any], body: bytes, receive: Callable[..., Any],
                           send: Callable[..., Any], match: ResolverMatch) -> None:
        """What Django's handle() does, with the request signal and the send's admission each shared
        by the sends that arrive together."""
        set_script_prefix(get_script_prefix(scope))
        set_urlconf(settings.ROOT_URLCONF)
        db_threads.use_shared_threads()  # for the answer's final save
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(cancel_on_disconnect(receive, task))
        try:
            if (raised := await self.started.submit(scope)) is not None:
                raise raised
            request, response = self.create_request(scope, BytesIO(body))
            if request is not None:
                request.resolver_match = match
                response = await self._respond(request, body, match)
            await self.send_response(response, send)
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise
            task.uncancel()  # the browser left: as Django, the request ends here
            await request_finished.asend(sender=self.__class__)
            return
        finally:
            watcher.cancel()
        await sync_to_async(response.close)()

    async def _respond(self, request: HttpRequest, body: bytes, match: ResolverMatch) -> HttpResponseBase:
        begun = await self.sends.submit((request, match))
        if begun is None:  # refused before anything was written: Django's full chain answers
            original, _ = self.create_request(request.scope, BytesIO(body))
            return await self.run_get_response(original)
        session, turn = begun
        if isinstance(turn, HttpResponseBase):
            response = turn
        else:
            try:
                response = await chat_views.answer_send(request, session, turn)
            except Exception as exc:
                response = await sync_to_async(response_for_exception)(request, exc)
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            await sync_to_async(log_response, thread_sensitive=False)(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request)
        session_changed = getattr(request, "session", None) is not None and request.session.modified
        if session_changed or settings.SESSION_SAVE_EVERY_REQUEST:
            return await sync_to_async(self.short_path.respond)(request, response)  # the session middleware saves it
        return self.short_path.respond(request, response)  # headers and cookies only: no thread needed
