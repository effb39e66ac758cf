"""Talking to a resolved host: the request with its auth and timeouts, a pool's failover before the
first byte, and the host's failures turned into messages that name the provider. Every call goes
through a `Route` from `providers.routing`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from providers import slots
from providers.http import TransportError, UpstreamResponse, send
from providers.routing import Route

_MAX_ERROR_BODY = 64 * 1024
logger = logging.getLogger(__name__)


class UpstreamError(Exception):
    """A host refused or failed a request; `str()` is a message for people and names the provider."""

    def __init__(self, message: str, *, status: int = 502, retry_after: str | None = None,
                 n_ctx: int | None = None, n_prompt_tokens: int | None = None, failover: bool = False):
        super().__init__(message)
        self.failover = failover  # the host took nothing of the request: a pool's next member may
        self.status = status
        self.retry_after = retry_after
        self.n_ctx = n_ctx
        self.n_prompt_tokens = n_prompt_tokens

    @property
    def over_context(self) -> bool:
        return self.n_ctx is not None


def error_from_response(route: Route, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """An UpstreamError for a non-200 answer, in any of the error shapes docs/wire.md lists."""
    name = f"{route.provider_name} ({route.provider})"
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        detail = str(error.get("message") or error.get("type") or "")
        if error.get("type") == "exceed_context_size_error" and isinstance(error.get("n_ctx"), int):
            return UpstreamError(
                f"{name}: {detail}", status=400, n_ctx=error["n_ctx"],
                n_prompt_tokens=error.get("n_prompt_tokens") if isinstance(error.get("n_prompt_tokens"), int) else None,
            )
    elif isinstance(error, str):
        detail = error
    else:
        detail = body[:500].decode("utf-8", errors="replace").strip()
    if status == 429:
        retry_after = headers.get("retry-after")
        wait = f"; try again in {retry_after} s" if retry_after else ""
        return UpstreamError(f"{name} is busy (too many requests){wait}.", status=503, retry_after=retry_after)
    if status == 402:
        return UpstreamError(f"{name}: {detail or 'payment required'} (check the account's balance).", status=402)
    if status in (401, 403):
        return UpstreamError(f"{name} refused the API key: {detail or status}.", status=502)
    if status == 404 or "no router for requested model" in detail or "could not find suitable inference handler" in detail:
        return UpstreamError(f"{name} does not serve {route.wire_model!r}: {detail or 'not found'}.", status=404)
    if status == 503:
        return UpstreamError(f"{name} is not ready: {detail or 'unavailable'}.", status=503, retry_after=headers.get("retry-after"))
    return UpstreamError(f"{name} answered HTTP {status}: {detail or 'no details'}.", status=502 if status >= 500 else status)


def transport_error(route: Route, exc: TransportError) -> UpstreamError:
    name = f"{route.provider_name} ({route.provider})"
    if exc.kind == "connect_timeout":
        return UpstreamError(f"{name} did not accept the connection within {route.timeout.connect:g} s.", status=504,
                             failover=True)
    if exc.kind == "read_timeout":
        return UpstreamError(f"{name} did not answer within {route.timeout.read:g} s.", status=504)
    if exc.kind == "connect":
        return UpstreamError(f"{name} is unreachable (connection refused or host down).", status=502, failover=True)
    return UpstreamError(f"{name}: connection failed ({exc.cause_name}).", status=502)


async def send_to(route: Route, url: str, body: bytes, headers: Mapping[str, str] | None = None) -> UpstreamResponse:
    """POST a JSON `body` to one of the route's URLs with its auth and timeouts; raise UpstreamError
    when the host cannot be reached. The response may carry any status."""
    try:
        return await send("POST", url, body=body,
                          headers={**route.headers, "Content-Type": "application/json", **(headers or {})},
                          connect_timeout=route.timeout.connect, read_timeout=route.timeout.read)
    except TransportError as exc:
        raise transport_error(route, exc) from None


async def post_json(route: Route, url_of: Callable[[Route], str], body: dict[str, Any],
                    headers: Mapping[str, str] | None = None, *, session: str = "") -> tuple[Route, UpstreamResponse]:
    """POST `body`, its `model` the host's own id, to `url_of(route)`. A pool's request first waits
    for a member with room (providers.slots; `session` is the client's own key for its prefix
    affinity), counted there until its response is closed. A pool's next member is tried when one
    refuses the connection, does not take it in time, or answers 5xx (503 while loading): before any
    byte of an answer, once per member. Returns the route that answered and its response, of any
    status; raises UpstreamError when the last one cannot be reached or the pool's line refuses."""
    candidates, admission = route.candidates, None
    if route.pool is not None:
        try:
            admission = await slots.admit(route, body, session=session)
        except slots.QueueRefused as exc:
            raise UpstreamError(str(exc), status=503, retry_after=str(exc.retry_after)) from None
        candidates = admission.candidates
    try:
        for index, candidate in enumerate(candidates):
            if admission is not None and index:
                await admission.lease.move_to(candidate)
            payload = json.dumps({**body, "model": candidate.wire_model}).encode()
            following = candidates[index + 1].ref if index + 1 < len(candidates) else None
            try:
                response = await send_to(candidate, url_of(candidate), payload, headers)
            except UpstreamError as exc:
                if following is None or not exc.failover:
                    raise
                logger.info("%s: %s refused (%s); trying %s", candidate.ref, candidate.provider, exc, following)
                continue
            if response.status >= 500 and following is not None:
                detail = error_from_response(candidate, response.status, await read_error_body(response), response.headers)
                logger.info("%s: %s answered HTTP %d (%s); trying %s", candidate.ref, candidate.provider,
                            response.status, detail, following)
                continue
            if admission is not None:
                response.attach(watch=admission.lease.watch, on_close=admission.lease.end)
                if response.status == 200:
                    slots.remember(admission, candidate, session=session)
                    slots.learn_in_background(candidate)
            return candidate, response
    except BaseException:
        if admission is not None:
            admission.lease.end()
        raise
    raise AssertionError("a route has at least one candidate")


async def _post_chat(route: Route, body: dict[str, Any],
                     headers: Mapping[str, str] | None = None) -> tuple[Route, UpstreamResponse]:
    """POST a chat completion; return the route that answered and its open 200 response, or raise UpstreamError."""
    route, response = await post_json(route, lambda r: r.chat_completions_url, body, headers)
    if response.status != 200:
        raise error_from_response(route, response.status, await read_error_body(response), response.headers)
    return route, response


async def open_chat_stream(route: Route, body: dict[str, Any]) -> tuple[Route, UpstreamResponse]:
    """POST a streaming chat completion; return the route that answered (a pool's member may stand
    in for another) and the open 200 response, or raise UpstreamError. The host may take minutes (a
    model swap): callers give their database connection back first."""
    return await _post_chat(route, body, {"Accept": "text/event-stream"})


async def read_error_body(response: UpstreamResponse) -> bytes:
    """The start of a failed answer's body (enough for its error message), then the response closed.
    A host that breaks off while sending it gives what arrived."""
    raw = bytearray()
    try:
        async for chunk in response.chunks():
            raw += chunk
            if len(raw) > _MAX_ERROR_BODY:
                break
    except TransportError:
        pass
    finally:
        response.close()
    return bytes(raw)


async def complete_chat(route: Route, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """A non-streaming chat completion (titles, summaries); raise UpstreamError on any failure. The
    host may take seconds: callers give their database connection back first."""
    route, response = await _post_chat(route, {"messages": messages, "stream": False, **options})
    try:
        raw = await response.read()
    except TransportError as exc:
        raise transport_error(route, exc) from None
    finally:
        response.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise UpstreamError(f"{route.provider_name} ({route.provider}) answered with invalid JSON.") from None
    return answer if isinstance(answer, dict) else {}


def answer_text(answer: dict[str, Any]) -> str:
    """The assistant text of a non-streaming completion (empty when the shape is unexpected)."""
    try:
        content = answer["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""
