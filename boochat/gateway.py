"""The OpenAI-compatible gateway: one endpoint for external agents, every host behind it.

Requests name models by composite id; each is resolved with `providers.routing.resolve` and
forwarded with only `model` rewritten to the host's own id. Answers (SSE included) pass through
as they arrive. Errors use OpenAI's envelope: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from functools import wraps
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from boochat.models import GatewayKey
from boochat.proxy import error_from_response, read_error_body, sse_response, transport_error, upstream_client
from providers.catalog import load_catalog
from providers.routing import (
    ProviderUnavailable,
    RoutingError,
    UnknownProvider,
    aresolve,
    canonical_model_id,
)

KEY_PREFIX = "bc-"
_KEY_CACHE_SECONDS = 60


# -- keys -----------------------------------------------------------------------------------------


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, name: str) -> tuple[GatewayKey, str]:
    """A new key row and the key itself, which exists only in the caller's hands from here on."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = GatewayKey.objects.create(name=name, prefix=key[:10], key_hash=hash_key(key))
    return row, key


def forget_key(row: GatewayKey) -> None:
    """Drop a key's cached lookup (after revoking it) so it stops working at once."""
    cache.delete(f"gateway-key:{row.key_hash}")


def error(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
          code: str | None = None, headers: dict[str, str] | None = None) -> JsonResponse:
    """OpenAI's error envelope."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JsonResponse(body, status=status, headers=headers)


async def _key_id(key: str) -> int | None:
    digest = hash_key(key)
    cache_key = f"gateway-key:{digest}"
    cached = await cache.aget(cache_key)
    if cached is None:
        row = await GatewayKey.objects.active().filter(key_hash=digest).values("id").afirst()
        cached = row["id"] if row else 0
        # The ORM lookup costs more than the rest of a small request: keep the answer a minute.
        await cache.aset(cache_key, cached, _KEY_CACHE_SECONDS)
    if cached and await cache.aadd(f"gateway-key-used:{cached}", 1, _KEY_CACHE_SECONDS):
        await GatewayKey.objects.filter(pk=cached).aupdate(last_used_at=timezone.now())
    return cached or None


def gateway_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Bearer-key authentication (or BOOCHAT_GATEWAY_OPEN), no session, no CSRF."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.BOOCHAT_GATEWAY_OPEN:
            scheme, _, key = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not key.strip() or await _key_id(key.strip()) is None:
                return error(401, "Missing or invalid API key: send 'Authorization: Bearer <key>' "
                                  "with a key created in BooChat's admin.",
                             code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        return await view(request, *args, **kwargs)

    return csrf_exempt(login_not_required(wrapper))


# -- models ---------------------------------------------------------------------------------------


def _model_entries() -> dict[str, dict[str, Any]]:
    catalog = load_catalog()
    entries = {}
    for provider in catalog.providers:
        created = int(provider.refreshed_at.timestamp()) if provider.refreshed_at else 0
        for model in provider.models:
            entry: dict[str, Any] = {"id": model.id, "object": "model", "created": created, "owned_by": provider.slug}
            if model.context_size:
                entry["context_length"] = model.context_size
            entries[model.id] = entry
    return entries


@gateway_view
@require_GET
async def list_models(request: HttpRequest) -> JsonResponse:
    """Every available model of every enabled provider, by composite id."""
    entries = await sync_to_async(_model_entries)()
    return JsonResponse({"object": "list", "data": list(entries.values())})


@gateway_view
@require_GET
async def retrieve_model(request: HttpRequest, model_id: str) -> JsonResponse:
    """One model; the official SDKs send the id's `/` as `%2F`, which arrives decoded here."""
    try:
        composite = await sync_to_async(canonical_model_id)(model_id)
    except UnknownProvider as exc:
        return error(400, str(exc), param="model", code="unknown_provider")
    except RoutingError as exc:
        return error(400, str(exc), param="model", code="invalid_model")
    entry = (await sync_to_async(_model_entries)()).get(composite)
    if entry is None:
        return error(404, f"The model {composite!r} is not available.", param="model", code="model_not_found")
    return JsonResponse(entry)


# -- inference ------------------------------------------------------------------------------------


async def _relay(response: httpx.Response, provider: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        message = f"Lost the connection to provider {provider!r} mid-answer ({type(exc).__name__})."
        body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": "upstream_disconnected"}}
        yield b"data: " + json.dumps(body).encode() + b"\n\n"
    finally:
        # Also when the client goes away: the host's connection closes and it stops generating.
        await response.aclose()


def _upstream_failure(route: Any, response: httpx.Response, raw: bytes) -> HttpResponse:
    """A host's error keeps its status. An error object it sent keeps its fields (n_ctx, ...), with
    the provider named in its message and OpenAI's four fields filled in; other shapes are wrapped."""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    upstream_error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(upstream_error, dict) and response.status_code != 404:
        message = str(upstream_error.get("message") or upstream_error.get("type") or "error")
        body = {"error": {"type": "upstream_error", "param": None, "code": None, **upstream_error,
                          "message": f"{route.provider_name} ({route.provider}): {message}"}}
        headers = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else None
        return JsonResponse(body, status=response.status_code, headers=headers)
    failure = error_from_response(route, response.status_code, raw, response.headers)
    headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
    status = 404 if failure.status == 404 else response.status_code
    return error(status, str(failure), type="upstream_error", code="model_not_found" if status == 404 else None, headers=headers)


async def forward(request: HttpRequest, endpoint: str) -> HttpResponse:
    """Resolve the body's model and send the body, `model` rewritten, to the resolved host."""
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        return error(413, f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    except (ValueError, UnicodeDecodeError):
        return error(400, "The request body is not valid JSON.")
    if not isinstance(body, dict):
        return error(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return error(400, "'model' is required: a model id such as 'sam-desktop/qwen3-8b'.", param="model")
    try:
        route = await aresolve(model)
    except UnknownProvider as exc:
        return error(400, str(exc), param="model", code="unknown_provider")
    except ProviderUnavailable as exc:
        return error(503, str(exc), type="upstream_error", param="model", code="provider_unavailable")
    except RoutingError as exc:
        return error(400, str(exc), param="model", code="invalid_model")

    body["model"] = route.wire_model
    url = route.chat_completions_url if endpoint == "chat/completions" else route.api_url(endpoint)
    client = upstream_client()
    headers = {**route.headers, "Content-Type": "application/json", "Accept-Encoding": "identity"}
    upstream = client.build_request("POST", url, content=json.dumps(body).encode(), headers=headers, timeout=route.timeout)
    try:
        response = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        failure = transport_error(route, exc)
        return error(failure.status, str(failure), type="upstream_error", code="provider_unreachable")
    if response.status_code != 200:
        return _upstream_failure(route, response, await read_error_body(response))
    content_type = response.headers.get("content-type", "application/json")
    if body.get("stream") is True and content_type.startswith("text/event-stream"):
        return sse_response(_relay(response, route.provider), content_type=content_type)
    try:
        content = await response.aread()
    except httpx.HTTPError as exc:
        failure = transport_error(route, exc)
        return error(failure.status, str(failure), type="upstream_error", code="provider_unreachable")
    finally:
        await response.aclose()
    return HttpResponse(content, status=200, content_type=content_type)


@gateway_view
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    """POST /v1/chat/completions, streaming or not."""
    return await forward(request, "chat/completions")


@gateway_view
@require_POST
async def completions(request: HttpRequest) -> HttpResponse:
    """POST /v1/completions."""
    return await forward(request, "completions")


@gateway_view
@require_POST
async def embeddings(request: HttpRequest) -> HttpResponse:
    """POST /v1/embeddings."""
    return await forward(request, "embeddings")
