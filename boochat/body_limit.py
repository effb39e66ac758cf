"""Request body sizes, refused at the ASGI edge before the body is read: a declared Content-Length
past the request's limit gets 413 at once, and a chunked body is cut as soon as it passes it.

Django's ASGI handler spools a whole body to a temporary file before any middleware or view runs,
and DATA_UPLOAD_MAX_MEMORY_SIZE does not count uploaded files, so Django's own checks come after the
disk has been filled. Each request's limit follows from what its view accepts: a question with its
files, an export file to import, a settings change; a request without a logged-in session gets a
small one whatever its URL (its session is looked up only when its body is larger than that)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import parse_cookie
from django.urls import Resolver404, resolve

from boochat import database
from boochat.asgi_types import ASGIApp, Message, Receive, ResponseWatch, Scope, Send
from boochat.chat.forms import SYSTEM_PROMPT_MAX_CHARS
from boochat.chat.views import MAX_MESSAGE_CHARS

ANONYMOUS_BODY_BYTES = 64 * 1024  # a login form, with room to spare
FORM_SLACK_BYTES = 64 * 1024  # the fields beside a form's files (CSRF token, ...) and multipart headers
# A question's text, percent-encoded (a plain form post): up to 12 bytes per character of 4-byte UTF-8.
ENCODED_BYTES_PER_CHAR = 12
SETTINGS_BYTES_PER_FAVORITE = 1024  # a model id of up to 330 characters, JSON-escaped, with room to spare
SETTINGS_ROUTES = {"api_settings", "settings", "favorite_toggle", "favorite_remove"}

logger = logging.getLogger("django.request")  # where Django logs refused requests


@dataclass(frozen=True)
class Limit:
    size: int
    reason: str  # what sets the limit, for the 413's message


def _size(count: int) -> str:
    return f"{count:,} bytes"


def gateway_limit() -> Limit:
    return Limit(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "BOOCHAT_MAX_BODY_BYTES")


def anonymous_limit() -> Limit:
    return Limit(ANONYMOUS_BODY_BYTES, "the limit without a logged-in session: log in first")


def send_limit() -> Limit:
    """A question's text and its files, each as large as the larger file limit."""
    largest = max(settings.BOOCHAT_MAX_IMAGE_BYTES, settings.BOOCHAT_MAX_FILE_BYTES)
    size = settings.BOOCHAT_MAX_ATTACHMENTS * largest + MAX_MESSAGE_CHARS * ENCODED_BYTES_PER_CHAR + FORM_SLACK_BYTES
    return Limit(size, f"a question of {MAX_MESSAGE_CHARS:,} characters with {settings.BOOCHAT_MAX_ATTACHMENTS} files "
                       f"of up to {_size(largest)}: BOOCHAT_MAX_ATTACHMENTS, BOOCHAT_MAX_IMAGE_BYTES, BOOCHAT_MAX_FILE_BYTES")


def first_send_limit() -> Limit:
    """A new chat's first message: a send, with the chat's system prompt beside it."""
    send = send_limit()
    return Limit(send.size + SYSTEM_PROMPT_MAX_CHARS * ENCODED_BYTES_PER_CHAR,
                 f"{send.reason}, and a system prompt of {SYSTEM_PROMPT_MAX_CHARS:,} characters")


def import_limit() -> Limit:
    return Limit(settings.BOOCHAT_MAX_IMPORT_BYTES + FORM_SLACK_BYTES,
                 f"an export file of up to {_size(settings.BOOCHAT_MAX_IMPORT_BYTES)}: BOOCHAT_MAX_IMPORT_BYTES")


def settings_limit() -> Limit:
    size = FORM_SLACK_BYTES + settings.BOOCHAT_MAX_FAVORITES * SETTINGS_BYTES_PER_FAVORITE
    return Limit(size, f"a settings change with up to {settings.BOOCHAT_MAX_FAVORITES} favorites: BOOCHAT_MAX_FAVORITES")


def route_limit(path: str) -> Limit:
    """The limit of a logged-in user's request to `path`, from the view the URL conf sends it to."""
    try:
        name = resolve(path).url_name
    except Resolver404:
        name = None
    if name == "chat_send":
        return send_limit()
    if name == "chat_new":
        return first_send_limit()
    if name == "chat_import":
        return import_limit()
    if name in SETTINGS_ROUTES:
        return settings_limit()
    return Limit(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "BOOCHAT_MAX_BODY_BYTES")


def _header(scope: Scope, name: bytes) -> str:
    return "; ".join(value.decode("latin-1") for key, value in scope["headers"] if key == name)


def _has_user(session_key: str) -> bool:
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return SESSION_KEY in session


async def logged_in(scope: Scope) -> bool:
    """Whether the request's session cookie names a session with a user in it."""
    session_key = parse_cookie(_header(scope, b"cookie")).get(settings.SESSION_COOKIE_NAME)
    return bool(session_key) and await database.run(_has_user, session_key)


class Limits:
    """The limits of one request, found as its body grows: nothing is looked up for a small body."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        self.gateway = self.path.startswith("/v1/")
        self._route: Limit | None = None
        self._logged_in: bool | None = None

    async def exceeded(self, size: int) -> Limit | None:
        """The limit a body of `size` bytes passes, or None if it fits."""
        if self.gateway:
            limit = gateway_limit()
            return limit if size > limit.size else None
        if size <= ANONYMOUS_BODY_BYTES:
            return None
        if self._logged_in is None:
            self._logged_in = await logged_in(self.scope)
        if not self._logged_in:
            return anonymous_limit()
        if self._route is None:
            self._route = route_limit(self.path)
        return self._route if size > self._route.size else None


def _wants_json(scope: Scope, path: str) -> bool:
    return (path.startswith(("/api/", "/v1/")) or _header(scope, b"x-boochat-stream") == "1"
            or "application/json" in _header(scope, b"accept"))


def _declared_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value.isdigit() else None  # the server refuses malformed ones before the app runs


async def refuse(scope: Scope, send: Send, limit: Limit, path: str) -> None:
    """A 413 that names the limit, as JSON for API clients (OpenAI's envelope at /v1/), as text for
    browsers; the connection is closed after it, the rest of the body unread."""
    message = f"The request body is larger than {limit.size} bytes ({limit.reason})."
    if path.startswith("/v1/"):
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})
        content_type = "application/json"
    elif _wants_json(scope, path):
        body, content_type = json.dumps({"error": message}), "application/json"
    else:
        body, content_type = message + "\n", "text/plain; charset=utf-8"
    logger.warning("Payload Too Large: %s", path.encode("unicode_escape").decode("ascii"), extra={"status_code": 413})
    encoded = body.encode()
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(encoded)).encode()),
               (b"connection", b"close"), (b"x-content-type-options", b"nosniff"),
               (b"x-frame-options", settings.X_FRAME_OPTIONS.encode("latin-1"))]
    if settings.SECURE_REFERRER_POLICY:
        headers.append((b"referrer-policy", str(settings.SECURE_REFERRER_POLICY).encode("latin-1")))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": encoded})


def with_body_limit(app: ASGIApp) -> ASGIApp:
    """`app`, whose HTTP requests never get a body past their limit: a declared length past it is
    refused before the app runs; a body without one is cut when it passes it (the app sees the
    client leave) and refused."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        limits = Limits(scope)
        declared = _declared_length(scope)
        if declared is None and not _header(scope, b"transfer-encoding"):
            return await app(scope, receive, send)  # HTTP/1.1: no length and no chunks, no body
        if declared is not None:
            if (limit := await limits.exceeded(declared)) is not None:
                return await refuse(scope, send, limit, limits.path)
            return await app(scope, receive, send)  # the server delivers no more than it declared

        received = 0
        passed: Limit | None = None
        response = ResponseWatch(send)

        async def receive_within_limit() -> Message:
            nonlocal received, passed
            if passed is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                passed = await limits.exceeded(received)
                if passed is not None:
                    return {"type": "http.disconnect"}
            return message

        await app(scope, receive_within_limit, response.send)
        if passed is not None and not response.started:
            await refuse(scope, send, passed, limits.path)

    return application
