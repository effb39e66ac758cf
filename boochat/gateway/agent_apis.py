"""The agent APIs beside Chat Completions: OpenAI's Responses (`/v1/responses`, boochat.gateway.responses)
and Anthropic's Messages (`/v1/messages`, `/v1/messages/count_tokens`, boochat.gateway.messages).

Both go through the gateway's own checks (keys, body size, content type) and its routing, pools and
failover (`route_of`, `proxy.post_json`), and name the answering model in `X-BooChat-Served-By`.

Where the answer comes from:
- Messages: recent llama.cpp `llama-server` builds serve `/v1/messages` and
  `/v1/messages/count_tokens` themselves (server.cpp), and llama-swap forwards them; their answers
  have Anthropic's shapes, so llama-swap and llama-server hosts get the request as it came (after
  BooChat has checked it, so a bad block is the same 400 everywhere). A host that answers 404 there
  (an older build) is asked again through Chat Completions, and not asked natively for a while.
  Two `tool_choice` forms that llama.cpp's conversion would change (`tool` naming one tool, and
  `none`) always go through Chat Completions.
- Responses: always through Chat Completions. llama-server's own `/v1/responses` events carry no
  `sequence_number`, `output_index` or `content_index` (server-task.cpp), which the openai SDK's
  stream helpers and the Responses event contract need, so its answers are not equivalent.
- Everything else (DeepSeek, OpenAI-compatible APIs, hosts with a sidecar): Chat Completions.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from boochat.gateway.app import (
    Reply,
    StreamReply,
    _unreachable,
    _upstream_failure,
    error,
    served_by,
    session_key,
)
from boochat.gateway.chat_stream import ChatPieces, Piece
from providers.capabilities import LLAMA_KINDS
from providers.http import TransportError, UpstreamResponse
from providers.routing import Route
from providers.upstream import UpstreamError, post_json, read_error_body, transport_error
from settings_app.requests import BadJsonBody, json_object

_NATIVE_RETRY = 600.0  # seconds before a host that lacked a native endpoint is asked again
_lacking: dict[str, float] = {}  # a native endpoint's URL -> when it answered 404

Body = dict[str, Any]


class BadRequest(ValueError):
    """A request field the API does not take; the message names it."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def bad_request(exc: BadRequest) -> Reply:
    return error(400, str(exc), param=exc.param)


async def answer(path: str, raw: bytes, headers: dict[bytes, bytes]) -> Reply | StreamReply:
    """The reply to a request of one of the agent APIs."""
    from boochat.gateway import messages, responses, token_counts  # they build on this module

    try:
        body = json_object(raw)
    except BadJsonBody as exc:
        return error(400, f"The request body {exc}.")
    if path == "responses":
        return await responses.answer(body, headers, session=session_key(body, headers))
    if path == "messages":
        return await messages.answer(body, session=session_key(body, headers))
    return await token_counts.count_tokens(body)


def anthropic_envelope(reply: Reply) -> Reply:
    """An error reply in Anthropic's envelope ({"type": "error", "error": {"type", "message"}})."""
    try:
        message = json.loads(reply.body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = reply.body.decode("utf-8", errors="replace") or f"HTTP {reply.status}"
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
            503: "overloaded_error", 529: "overloaded_error"}.get(reply.status, "api_error" if reply.status >= 500
                                                                   else "invalid_request_error")
    body = json.dumps({"type": "error", "error": {"type": kind, "message": str(message)}}).encode()
    return Reply(reply.status, body, reply.content_type, reply.headers)


# -- sending --------------------------------------------------------------------------------------


def can_pass_through(route: Route, endpoint: str) -> bool:
    """Whether every member a request may go to is a llama.cpp host that serves `endpoint` itself."""
    now = time.monotonic()
    return all(candidate.kind in LLAMA_KINDS and not candidate.uses_sidecar
               and now - _lacking.get(candidate.api_url(endpoint), -_NATIVE_RETRY) >= _NATIVE_RETRY
               for candidate in route.candidates)


async def send(route: Route, endpoint: str, body: Body, *, session: str = "") -> tuple[Route, UpstreamResponse] | Reply | None:
    """POST `body` to the host's `endpoint` (`chat/completions` or a native one), a pool's members
    tried in turn (`session`: the client's key for its prefix affinity). The open 200 response; an
    error reply; None when a native endpoint is missing."""
    native = endpoint != "chat/completions"
    try:
        route, response = await post_json(route, (lambda r: r.api_url(endpoint)) if native
                                          else (lambda r: r.chat_completions_url), body, session=session)
    except UpstreamError as failure:
        return _unreachable(failure)
    if response.status == 200:
        return route, response
    raw = await read_error_body(response)
    if native and response.status in (404, 405) and b"model" not in raw:
        _lacking[route.api_url(endpoint)] = time.monotonic()
        return None
    reply = _upstream_failure(route, response, raw)
    reply.headers.update(served_by(route))
    return reply


async def read_json(route: Route, response: UpstreamResponse) -> Any | Reply:
    """A whole 200 answer, parsed."""
    try:
        raw = await response.read()
    except TransportError as exc:
        return _unreachable(transport_error(route, exc))
    finally:
        response.close()
    try:
        return json.loads(raw)
    except ValueError:
        return error(502, f"{route.provider_name} ({route.provider}) answered with invalid JSON.", type="upstream_error")


# -- streams re-spoken ----------------------------------------------------------------------------


class Transcoder(Protocol):
    def start(self) -> bytes: ...

    def feed(self, pieces: list[Piece]) -> bytes: ...

    def finish(self, failure: str) -> bytes: ...


@dataclass
class TranslatedStream(StreamReply):
    """A host's Chat Completions stream, re-spoken event by event in another API's shapes."""

    transcoder: Transcoder | None = None
    after: Callable[[], Awaitable[None]] | None = None  # run once the stream has ended well or badly

    async def chunks(self) -> AsyncIterator[bytes]:
        assert self.transcoder is not None
        parser, failure = ChatPieces(), ""
        yield self.transcoder.start()
        try:
            async for chunk in self.response.chunks():
                pieces = parser.feed(chunk)
                if pieces and (out := self.transcoder.feed(pieces)):
                    yield out
            pieces = parser.close()
            if pieces and (out := self.transcoder.feed(pieces)):
                yield out
            if not parser.done and not parser.finished:
                failure = f"{self.route.provider_name} ({self.route.provider}) ended the answer early."
        except TransportError as exc:
            failure = (f"Lost the connection to provider {self.route.provider!r} mid-answer "
                       f"({exc.cause_name}).")
        yield self.transcoder.finish(failure)
        if self.after is not None:
            await self.after()


def sse_event(name: str, data: Body) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"
