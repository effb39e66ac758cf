"""The OpenAI-compatible gateway: one endpoint for external agents, every host behind it.

Requests name models by composite id; each is resolved with `providers.routing` and forwarded with
only `model` rewritten to the host's own id. Answers (SSE included) pass through as they arrive.
Errors use OpenAI's envelope: {"error": {"message", "type", "param", "code"}}.

`/v1/` is its own small ASGI application (boochat.asgi sends it here), not a Django view: it needs
none of Django's request machinery (sessions, CSRF, templates), and that machinery cost more than
the rest of a request (docs/performance.md). It keeps Django's protections: the Host header checked
against ALLOWED_HOSTS, the HTTPS redirect and the security headers of SecurityMiddleware, escaped
`django.request` log lines; and its own: bearer keys from the admin, JSON bodies only, no browser
requests from other origins unless allowed, the body size limit, OpenAI's error envelope.
Keys and providers come from in-process snapshots (providers.snapshot): no query per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from boochat import database, limits, outages
from boochat.gateway.callers import Caller, identify, meter
from boochat.usage.recording import Meter, StreamUsage, usage_in_body
from providers.access import Access, ModelNotAllowed, check_model
from providers.catalog import load_catalog
from providers.http import TransportError, UpstreamResponse
from providers.routing import (
    ProviderUnavailable,
    Route,
    RoutingError,
    UnknownModel,
    UnknownProvider,
    registry,
    resolve,
)
from providers.snapshot import Snapshot
from providers.upstream import UpstreamError, error_from_response, post_json, read_error_body, transport_error
from settings_app.requests import BadJsonBody, json_object

logger = logging.getLogger("django.request")  # where Django logs failed requests
T = TypeVar("T")


# -- plumbing ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    meter: Meter | None = None  # the request's usage, recorded once the reply is sent


@dataclass
class StreamReply:
    """An upstream event stream relayed as it arrives, its `model` fields naming the model as the
    client asked for it (the host writes its own id)."""

    response: UpstreamResponse
    route: Route
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    model: str = ""  # as the client named it
    meter: Meter | None = None  # the request's usage: read from the stream, recorded when it ends

    async def chunks(self) -> AsyncIterator[bytes]:
        rename = _renamer(self.route.wire_model, self.model)
        scan = self.meter.stream if self.meter is not None else None
        if rename is None and scan is None:
            async for chunk in self.response.chunks():
                yield chunk
            return
        # Whole lines only: a `model` field is never cut in two, and each line is passed on at once.
        pending, waiting = b"", self.meter is not None  # for the first byte
        async for chunk in self.response.chunks():
            if waiting and self.meter is not None:
                self.meter.first_byte()
                waiting = False
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut:
                block, pending = pending[:cut], pending[cut:]
                if scan is not None:
                    block = scan.lines(block)
                if block:
                    yield rename(block) if rename else block
        if pending:
            yield rename(pending) if rename else pending

    async def relayed(self) -> AsyncIterator[bytes]:
        """chunks(), read for usage on the way when a subclass re-speaks the stream in another API's
        shapes (this class reads its own as it renames)."""
        scan = self.meter is not None and type(self).chunks is not StreamReply.chunks
        async for chunk in self.chunks():
            if scan and self.meter is not None:
                self.meter.first_byte()
                if self.meter.stream is not None:
                    self.meter.stream.lines(chunk)
            yield chunk

    def finish(self, status: int = 200) -> None:
        if self.meter is not None:
            self.meter.finish(status)


def _renamer(wire: str, model: str) -> Callable[[bytes], bytes] | None:
    """What turns the host's `"model": "<wire>"` fields into the id the client sent, leaving every
    other byte as the host sent it; None when the two are the same."""
    if not model or model == wire:
        return None
    spellings = {json.dumps(wire).encode(), json.dumps(wire, ensure_ascii=False).encode()}  # \u-escaped or not
    pattern = re.compile(rb'"model":\s*(?:' + b"|".join(map(re.escape, spellings)) + rb")")
    named = b'"model":' + json.dumps(model, ensure_ascii=False).encode()
    return lambda data: pattern.sub(lambda _: named, data)


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers=headers or {})


def error(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
          code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """OpenAI's error envelope."""
    return json_reply({"error": {"message": message, "type": type, "param": param, "code": code}}, status, headers)


def unavailable(service: str) -> Reply:
    """503 in OpenAI's envelope: BooChat's database or cache (boochat.outages) cannot be reached."""
    return error(503, outages.unavailable_message(service), type="server_error", code=f"{service}_unavailable",
                 headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})


async def _current(snapshot: Snapshot[Any]) -> Any:
    kept = snapshot.fresh()
    return kept if kept is not None else await database.run(snapshot.get)


_UNAUTHORIZED = ("Missing, invalid, revoked or expired API key: send 'Authorization: Bearer <key>' (or "
                 "'x-api-key: <key>') with a key made on BooChat's Keys page.")


def not_allowed(exc: ModelNotAllowed) -> Reply:
    return error(403, str(exc), type="permission_error", param="model", code="model_not_allowed")


def not_routed(exc: RoutingError) -> Reply:
    """The reply to a model id that leads to no host: an unknown provider or model, a disabled one."""
    if isinstance(exc, UnknownProvider):
        return error(400, str(exc), param="model", code="unknown_provider")
    if isinstance(exc, UnknownModel):
        return error(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, ProviderUnavailable):
        return error(503, str(exc), type="upstream_error", param="model", code="provider_unavailable")
    return error(400, str(exc), param="model", code="invalid_model")


def limit_reached(exc: limits.LimitReached) -> Reply:
    return error(429, str(exc), type="rate_limit_error", code="rate_limit_exceeded",
                 headers={"Retry-After": str(exc.retry_after)})


def presented_key(headers: dict[bytes, bytes]) -> str:
    """The key a request carries: `Authorization: Bearer <key>`, or Anthropic's `x-api-key`."""
    scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return headers.get(b"x-api-key", b"").decode("latin-1").strip()


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]], declared: int | None) -> bytes | Reply | None:
    """The request body; a 413 reply past the limit; None if the client left while sending it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    too_big = error(413, f"The request body is larger than {limit} bytes.")
    if declared is not None and declared > limit:
        return too_big
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return too_big
        if not message.get("more_body"):
            return bytes(body)


# -- models ---------------------------------------------------------------------------------------


def _model_entries(access: Access) -> dict[str, dict[str, Any]]:
    catalog = load_catalog()
    entries = {}
    for provider in catalog.providers:
        created = int(provider.refreshed_at.timestamp()) if provider.refreshed_at else 0
        for model in provider.models:
            if not access.allows(model.id):
                continue
            entry: dict[str, Any] = {"id": model.id, "object": "model", "created": created, "owned_by": provider.slug}
            if model.context_size:
                entry["context_length"] = model.context_size
            entries[model.id] = entry
    return entries


async def list_models(access: Access) -> Reply:
    """Every available model of every enabled provider that the caller may use, by composite id."""
    entries = await database.run(_model_entries, access)
    return json_reply({"object": "list", "data": list(entries.values())})


async def retrieve_model(model_id: str, access: Access) -> Reply:
    """One model; the official SDKs send the id's `/` as `%2F`, which arrives decoded here."""
    try:
        composite = check_model(access, model_id, await _current(registry))
    except ModelNotAllowed as exc:
        return not_allowed(exc)
    except UnknownProvider as exc:
        return error(400, str(exc), param="model", code="unknown_provider")
    except RoutingError as exc:
        return error(400, str(exc), param="model", code="invalid_model")
    entry = (await database.run(_model_entries, access)).get(composite)
    if entry is None:
        return error(404, f"The model {composite!r} is not available.", param="model", code="model_not_found")
    return json_reply(entry)


# -- inference ------------------------------------------------------------------------------------


def _upstream_failure(route: Route, response: UpstreamResponse, raw: bytes) -> Reply:
    """A host's error keeps its status. An error object it sent keeps its fields (n_ctx, ...), with
    the provider named in its message and OpenAI's four fields filled in; other shapes are wrapped."""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    upstream_error = payload.get("error") if isinstance(payload, dict) else None
    retry_after = response.headers.get("retry-after")
    if isinstance(upstream_error, dict) and response.status != 404:
        message = str(upstream_error.get("message") or upstream_error.get("type") or "error")
        body = {"error": {"type": "upstream_error", "param": None, "code": None, **upstream_error,
                          "message": f"{route.provider_name} ({route.provider}): {message}"}}
        return json_reply(body, response.status, {"Retry-After": retry_after} if retry_after else None)
    failure = error_from_response(route, response.status, raw, response.headers)
    headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
    status = 404 if failure.status == 404 else response.status
    return error(status, str(failure), type="upstream_error", code="model_not_found" if status == 404 else None,
                 headers=headers)


def _unreachable(failure: UpstreamError) -> Reply:
    if failure.retry_after:  # a pool's members all busy, its line full or waited out (providers.slots)
        return error(failure.status, str(failure), type="upstream_error", code="pool_busy",
                     headers={"Retry-After": failure.retry_after})
    return error(failure.status, str(failure), type="upstream_error", code="provider_unreachable")


_CACHED = re.compile(rb'"(?:cached_tokens|cache_n)":\s*(\d+)')


def _cache_header(content: bytes) -> dict[str, str]:
    """`X-BooChat-Cache`: the prompt tokens the host says came from its cache (streams carry them in
    their last chunk's `usage.prompt_tokens_details.cached_tokens`)."""
    found = _CACHED.search(content)
    return {"X-BooChat-Cache": found.group(1).decode()} if found else {}


def session_key(body: dict[str, Any], headers: dict[bytes, bytes]) -> str:
    """The client's own key for its conversation, if it sends one (a pool's prefix affinity uses
    it): the `X-Session-Id` header, else OpenAI's `prompt_cache_key` or `user`, else Anthropic's
    `metadata.user_id`."""
    metadata = body.get("metadata")
    for key in (headers.get(b"x-session-id", b"").decode("latin-1"), body.get("prompt_cache_key"), body.get("user"),
                metadata.get("user_id") if isinstance(metadata, dict) else None):
        if isinstance(key, str) and key.strip():
            return key.strip()[:200]
    return ""


async def route_of(model: Any) -> Route | Reply:
    """The route of a request's `model`, or the error reply naming what is wrong with it."""
    if not isinstance(model, str) or not model:
        return error(400, "'model' is required: a model id such as 'sam-desktop/qwen3-8b'.", param="model")
    try:
        return resolve(model, await _current(registry))
    except RoutingError as exc:
        return not_routed(exc)


def served_by(route: Route) -> dict[str, str]:
    """The header naming the model (a pool's member) that answered."""
    return {"X-BooChat-Served-By": quote(str(route.ref), safe="/")}  # header values are Latin-1


async def forward(endpoint: str, raw: bytes, caller: Caller, headers: dict[bytes, bytes] | None = None) -> Reply | StreamReply:
    """Check the caller may use the body's model and is within its limits, resolve the model and send
    the body, `model` rewritten, to the resolved host. The reply carries the request's usage meter."""
    try:
        body = json_object(raw)
    except BadJsonBody as exc:
        return error(400, f"The request body {exc}.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error(400, "'model' is required: a model id such as 'sam-desktop/qwen3-8b'.", param="model")
    metered = meter(caller, endpoint, model)
    try:
        reply = await _routed(endpoint, body, model, caller, metered, session_key(body, headers or {}))
    except asyncio.CancelledError:  # the client left while waiting (in a pool's line): its limit given back
        metered.finish(499)
        raise
    reply.meter = metered
    return reply


async def _routed(endpoint: str, body: dict[str, Any], model: str, caller: Caller, metered: Meter,
                  session: str = "") -> Reply | StreamReply:
    try:
        snapshot = await _current(registry)
        if caller.access.restricted:
            metered.use.model_id = check_model(caller.access, model, snapshot)
        route = resolve(model, snapshot)
        metered.use.model_id = route.requested
    except ModelNotAllowed as exc:
        return not_allowed(exc)
    except RoutingError as exc:
        return not_routed(exc)

    streamed = body.get("stream") is True
    try:
        metered.admission = await limits.aadmit(caller.subjects, stream=streamed)
    except limits.LimitReached as exc:
        return limit_reached(exc)
    if streamed and endpoint in _USAGE_ON_REQUEST:
        options = body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        if not asked:  # the host counts the tokens only when asked; the client does not see the answer
            body = {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
        metered.stream = StreamUsage(drop=not asked)
    try:
        route, response = await post_json(route, _URLS.get(endpoint) or (lambda r: r.api_url(endpoint)), body,
                                          session=session)
    except UpstreamError as failure:
        return _unreachable(failure)
    metered.use.served_by = str(route.ref)
    served = served_by(route)
    if response.status != 200:
        reply = _upstream_failure(route, response, await read_error_body(response))
        reply.headers.update(served)
        return reply
    content_type = response.headers.get("content-type", "application/json")
    if streamed and content_type.startswith("text/event-stream"):
        return StreamReply(response, route, content_type, served, model)
    metered.stream = None
    metered.first_byte()
    try:
        content = await response.read()
    except TransportError as exc:
        return _unreachable(transport_error(route, exc))
    finally:
        response.close()
    rename = _renamer(route.wire_model, model)
    metered.use.add_usage(usage_in_body(content))
    return Reply(200, rename(content) if rename else content, content_type, {**served, **_cache_header(content)})


async def admitted(endpoint: str, raw: bytes, caller: Caller,
                   answer: Callable[[], Awaitable[Reply | StreamReply]]) -> Reply | StreamReply:
    """An agent API's `answer()` behind the model access, limits and usage record that forward()
    applies (a body it cannot read is left to `answer()` to refuse)."""
    try:
        body = json_object(raw)
    except BadJsonBody:
        return await answer()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return await answer()
    metered = meter(caller, endpoint, model)
    reply: Reply | StreamReply
    refused = True
    try:
        if caller.access.restricted:
            metered.use.model_id = check_model(caller.access, model, await _current(registry))
        metered.admission = await limits.aadmit(caller.subjects, stream=body.get("stream") is True)
    except ModelNotAllowed as exc:
        reply = not_allowed(exc)
    except limits.LimitReached as exc:
        reply = limit_reached(exc)
    except RoutingError:
        refused = False
        reply = await answer()  # the API's own refusal of the id
    else:
        refused = False
        metered.stream = StreamUsage(drop=False) if body.get("stream") is True else None
        try:
            reply = await answer()
        except asyncio.CancelledError:  # the client left while waiting (in a pool's line)
            metered.finish(499)
            raise
        if isinstance(reply, Reply) and reply.status == 200:
            metered.first_byte()
            metered.use.add_usage(usage_in_body(reply.body))
    if refused and endpoint.startswith("messages") and isinstance(reply, Reply):
        from boochat.gateway.agent_apis import anthropic_envelope  # Anthropic's clients read its shape

        reply = anthropic_envelope(reply)
    metered.use.served_by = unquote(reply.headers.get("X-BooChat-Served-By", ""))
    reply.meter = metered
    return reply


_URLS: dict[str, Callable[[Route], str]] = {"chat/completions": lambda route: route.chat_completions_url}
AGENT_APIS = ("responses", "messages", "messages/count_tokens")  # boochat.gateway.agent_apis
_USAGE_ON_REQUEST = ("chat/completions", "completions")  # streams whose usage comes when asked for


# -- the ASGI application ---------------------------------------------------------------------------

_POST_ENDPOINTS = ("chat/completions", "completions", "embeddings", "responses", "messages", "messages/count_tokens")


def _host(headers: dict[bytes, bytes]) -> str | None:
    """The request's Host if ALLOWED_HOSTS allows it (as HttpRequest.get_host() checks), else None."""
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return host if domain and validate_host(domain, allowed) else None


def _is_secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    """As HttpRequest.is_secure(): the scheme, or the proxy's header when SECURE_PROXY_SSL_HEADER is set."""
    if settings.SECURE_PROXY_SSL_HEADER:
        name, value = settings.SECURE_PROXY_SSL_HEADER
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
        if header in headers:
            return headers[header].decode("latin-1").split(",")[0].strip() == value
    return scope.get("scheme") == "https"


def _cross_origin(origin: str, host: str, secure: bool) -> bool:
    """A browser's request from another site (a web page calling a gateway open on loopback)."""
    return origin != f"{'https' if secure else 'http'}://{host}" and origin not in settings.BOOCHAT_GATEWAY_ALLOWED_ORIGINS


def _is_json(headers: dict[bytes, bytes]) -> bool:
    media_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def dispatch(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                    headers: dict[bytes, bytes], secure: bool) -> Reply | StreamReply | None:
    """The reply to one /v1/ request (None if the client left while sending its body)."""
    host = _host(headers)
    if host is None:
        return error(400, f"Invalid Host header {headers.get(b'host', b'').decode('latin-1')!r}: add it to "
                          f"BOOCHAT_ALLOWED_HOSTS.", code="invalid_host")
    if settings.SECURE_SSL_REDIRECT and not secure:
        query = f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
        return Reply(301, b"", headers={"Location": f"https://{settings.SECURE_SSL_HOST or host}{scope['path']}{query}"})
    origin = headers.get(b"origin", b"").decode("latin-1")
    if origin and _cross_origin(origin, host, secure):
        return error(403, f"Requests from web pages at {origin} are refused: add the origin to "
                          f"BOOCHAT_GATEWAY_ALLOWED_ORIGINS to allow them.", code="origin_not_allowed")
    cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
    path, method = scope["path"].removeprefix("/v1/"), scope["method"]
    if path in _POST_ENDPOINTS:
        allowed = "POST"
    elif path == "models" or (path.startswith("models/") and len(path) > len("models/")):
        allowed = "GET"
    else:
        return error(404, f"Unknown endpoint {scope['path']!r}: the gateway serves /v1/models, "
                          f"/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, "
                          f"/v1/messages and /v1/messages/count_tokens.", code="unknown_url")
    if method == "OPTIONS" and origin:  # a CORS preflight from an allowed origin
        return Reply(204, b"", headers={**cors, "Access-Control-Allow-Methods": allowed, "Access-Control-Max-Age": "600",
                                        "Access-Control-Allow-Headers": "authorization, content-type, x-api-key, anthropic-version"})
    if method != allowed:
        reply: Reply | StreamReply | None = error(405, f"{scope['path']} accepts {allowed}, not {method}.",
                                                  headers={"Allow": allowed})
    else:
        reply = await _answer(scope, receive, headers, path, allowed)
    if path.startswith("messages") and isinstance(reply, Reply) and reply.status >= 400:
        from boochat.gateway import agent_apis  # it builds on this module

        reply = agent_apis.anthropic_envelope(reply)
    if reply is not None:
        reply.headers.update(cors)
    return reply


async def _answer(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], headers: dict[bytes, bytes],
                  path: str, allowed: str) -> Reply | StreamReply | None:
    client = scope.get("client")
    caller = await identify(presented_key(headers), client[0] if client else "")
    if caller is None:
        return error(401, _UNAUTHORIZED, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    if path == "models":
        return await list_models(caller.access)
    if allowed == "GET":
        return await retrieve_model(path.removeprefix("models/"), caller.access)
    if not _is_json(headers):
        return error(415, "The request body must be JSON: send 'Content-Type: application/json'.")
    try:
        declared = int(headers[b"content-length"]) if b"content-length" in headers else None
    except ValueError:
        return error(400, "The Content-Length header is not a number.")
    body = await _read_body(receive, declared)
    if body is None or isinstance(body, Reply):
        return body
    if path in AGENT_APIS:
        from boochat.gateway import agent_apis  # it builds on this module

        return await _unless_client_leaves(admitted(path, body, caller, lambda: agent_apis.answer(path, body, headers)),
                                           receive)
    return await _unless_client_leaves(forward(path, body, caller, headers), receive)


async def _unless_client_leaves(work: Awaitable[T], receive: Callable[[], Awaitable[dict[str, Any]]]) -> T | None:
    """`work`, or None when the client leaves first (waiting in a pool's line, or for a host that is
    loading the model): then the work is cancelled, and its place in line given up."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, gone):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    return None if task.cancelled() else task.result()


async def _disconnected(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _header_list(content_type: str, headers: dict[str, str], secure: bool) -> list[tuple[bytes, bytes]]:
    """The reply's headers with those Django's SecurityMiddleware adds to every response."""
    security = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": settings.X_FRAME_OPTIONS}
    if settings.SECURE_REFERRER_POLICY:
        security["Referrer-Policy"] = settings.SECURE_REFERRER_POLICY
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        security["Cross-Origin-Opener-Policy"] = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        security["Strict-Transport-Security"] = hsts
    return [(b"content-type", content_type.encode("latin-1"))] + [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in {**security, **headers}.items()]


async def _relay(reply: StreamReply, send: Callable[[dict[str, Any]], Awaitable[None]],
                 receive: Callable[[], Awaitable[dict[str, Any]]], secure: bool) -> None:
    """Pass the host's events on as they arrive, while listening for the client to leave: then the
    host's connection is closed at once (even while the host is quiet), so it stops generating.
    The stream and the listener run side by side, and the first to end stops the other (as
    Starlette's StreamingResponse does)."""

    async def stream() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _header_list(
            reply.content_type, {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **reply.headers}, secure)})
        try:
            async for chunk in reply.relayed():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TransportError as exc:
            message = (f"Lost the connection to provider {reply.route.provider!r} mid-answer "
                       f"({exc.cause_name}).")
            event = {"error": {"message": message, "type": "upstream_error", "param": None,
                               "code": "upstream_disconnected"}}
            await send({"type": "http.response.body", "body": b"data: " + json.dumps(event).encode() + b"\n\n",
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def listen_for_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = {asyncio.ensure_future(stream()), asyncio.ensure_future(listen_for_disconnect())}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # a failure of the stream itself is the request's
    finally:
        for task in tasks:
            task.cancel()
        reply.response.close()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _escaped(path: str) -> str:
    """The path as Django's log_response writes it: control characters escaped, one line."""
    return path.encode("unicode_escape").decode("ascii")


async def application(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                      send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """ASGI entry for /v1/ (HTTP only; boochat.asgi routes here)."""
    headers = dict(scope["headers"])
    secure = _is_secure(scope, headers)
    try:
        reply = await dispatch(scope, receive, headers, secure)
    except Exception as exc:
        if service := outages.service_down(exc):
            logger.error("Service Unavailable: %s: the %s: %s", _escaped(scope["path"]), service, exc)
            reply = unavailable(service)
        else:
            logger.exception("Internal Server Error: %s", _escaped(scope["path"]))
            reply = error(500, "BooChat failed on this request; the error is in its log.", type="server_error")
    if reply is None:
        return  # the client left before its request was complete
    if isinstance(reply, StreamReply):
        try:
            await _relay(reply, send, receive, secure)
        finally:
            reply.finish()
        return
    if reply.status >= 400:
        log = logger.error if reply.status >= 500 else logger.warning
        log("%s: %s", _phrase(reply.status), _escaped(scope["path"]), extra={"status_code": reply.status})
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": _header_list(
            reply.content_type, {"Content-Length": str(len(reply.body)), **reply.headers}, secure)})
        await send({"type": "http.response.body", "body": reply.body})
    finally:
        if reply.meter is not None:
            reply.meter.finish(reply.status)
