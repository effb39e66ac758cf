"""The model catalog: every enabled provider's models, fetched concurrently and cached per provider.

A page never waits on a host that has answered before: a stale list is served at once and refreshed
in the background. Only a provider with no cached list at all is fetched while the page waits, and
then no longer than its own `models_timeout`. The cache is Django's (Redis when `REDIS_URL` is set),
keyed by provider slug and address, so two hosts serving `qwen3-8b` never share an entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache

from providers.http import async_client
from providers.ids import InvalidModelId, ModelRef, validate_model_name
from providers.models import ModelOverride, ModelPurpose, Provider, ProviderKind
from providers.routing import Endpoint, RoutingError, endpoint_for, registry

logger = logging.getLogger(__name__)

UP, SLOW, DOWN = "up", "slow", "down"
_CACHE_VERSION = 1
# Keep a provider's last good list long after it went down: serving it is the point of the cache.
_CACHE_SECONDS = 7 * 24 * 3600
MAX_LISTING_BYTES = 4 * 1024 * 1024  # a few hundred models take ~100 KB; more is a broken host
MAX_MODELS_PER_PROVIDER = 2000
_refresher = ThreadPoolExecutor(max_workers=4, thread_name_prefix="catalog-refresh")
_in_flight: set[Future[None]] = set()


@dataclass(frozen=True)
class CatalogModel:
    id: str  # composite: sam-desktop/qwen3-8b
    provider: str
    model: str  # the host's own id
    display_name: str
    upstream_name: str  # what the host calls it for people ("Qwen3 30B"), may be empty
    loaded: bool | None  # None: the kind has no notion of loading, or the host did not say
    context_size: int | None
    embedding: bool = False  # embeddings only: not offered for chat

    @property
    def label(self) -> str:
        return f"{self.display_name} · {self.provider}"


@dataclass(frozen=True)
class ProviderStatus:
    slug: str
    name: str
    kind: str
    is_default: bool
    state: str  # up / slow / down
    latency_ms: float | None
    refreshed_at: datetime | None  # the last time the list was fetched successfully
    checked_at: datetime | None
    last_error: str | None
    models: tuple[CatalogModel, ...]
    router: bool = False  # a llama-server in router mode (it loads and unloads models)


@dataclass(frozen=True)
class Catalog:
    providers: tuple[ProviderStatus, ...]

    @property
    def models(self) -> list[CatalogModel]:
        return [model for provider in self.providers for model in provider.models]

    def by_id(self) -> dict[str, CatalogModel]:
        return {model.id: model for model in self.models}

    def as_json(self) -> dict[str, Any]:
        """The `/api/models` payload. It never carries favorites."""
        return {
            "providers": [
                {
                    "slug": p.slug,
                    "name": p.name,
                    "kind": p.kind,
                    "default": p.is_default,
                    "state": p.state,
                    "latency_ms": p.latency_ms,
                    "refreshed_at": p.refreshed_at.isoformat() if p.refreshed_at else None,
                    "last_error": p.last_error,
                }
                for p in self.providers
            ],
            "models": [
                {
                    "id": m.id,
                    "provider": m.provider,
                    "model": m.model,
                    "display_name": m.display_name,
                    "loaded": m.loaded,
                    "context_size": m.context_size,
                    "embedding": m.embedding,
                }
                for m in self.models
            ],
        }


class ListingError(Exception):
    """A model list that could not be fetched or read; the message is shown to people."""


# -- reading what hosts send ---------------------------------------------------------------------


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_model_list(payload: Any) -> tuple[list[dict[str, Any]], int]:
    """Entries of a `/v1/models` answer in any shape docs/wire.md lists; odd entries are skipped and counted."""
    data = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(data, list):
        raise ListingError("the model list is not an OpenAI list (no 'data' array)")
    entries, skipped = [], 0
    for item in data[:MAX_MODELS_PER_PROVIDER]:
        model_id = item.get("id") if isinstance(item, dict) else None
        try:
            validate_model_name(model_id if isinstance(model_id, str) else "")
        except InvalidModelId:
            skipped += 1
            continue
        status = item.get("status")
        status_value = status.get("value") if isinstance(status, dict) else None
        meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
        name = item.get("name")
        architecture = item.get("architecture") if isinstance(item.get("architecture"), dict) else {}
        outputs = architecture.get("output_modalities")
        aliases = item.get("aliases") if isinstance(item.get("aliases"), list) else []
        entries.append({
            "id": model_id,
            "aliases": [alias for alias in aliases if isinstance(alias, str) and alias and alias != model_id],
            "name": name.strip() if isinstance(name, str) else "",
            # A host that lists what a model outputs and leaves out text serves embeddings only.
            "embedding": isinstance(outputs, list) and bool(outputs) and "text" not in outputs,
            "loaded": {"loaded": True, "unloaded": False}.get(str(status_value)),
            "context_size": _positive_int(item.get("context_length")) or _positive_int(meta.get("n_ctx")),
        })
    return entries, skipped


def parse_running(payload: Any) -> set[str]:
    """Model ids llama-swap reports in `/running` (any state but stopping)."""
    running = payload.get("running") if isinstance(payload, dict) else None
    if not isinstance(running, list):
        raise ListingError("/running is not a list")
    return {
        item["model"]
        for item in running
        if isinstance(item, dict) and isinstance(item.get("model"), str) and item.get("state") != "stopping"
    }


async def _get_json(client: httpx.AsyncClient, url: str, endpoint: Endpoint) -> Any:
    path = url.removeprefix(endpoint.base_url) or "/"
    async with client.stream("GET", url, headers=endpoint.headers, timeout=endpoint.models_timeout) as response:
        if response.status_code != 200:
            raise ListingError(f"{path} answered HTTP {response.status_code}")
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_LISTING_BYTES:
                raise ListingError(f"{path} sent more than {MAX_LISTING_BYTES // (1024 * 1024)} MB")
    try:
        return json.loads(body)
    except ValueError:
        raise ListingError(f"{path} did not answer JSON") from None


async def fetch_listing(client: httpx.AsyncClient, endpoint: Endpoint) -> dict[str, Any]:
    """One provider's models and loaded state, as a cache entry."""
    started = time.monotonic()
    payload = await _get_json(client, endpoint.api_url("models"), endpoint)
    entries, skipped = parse_model_list(payload)
    data = payload.get("data", payload) if isinstance(payload, dict) else payload
    total = len(data)
    # Only a llama-server in router mode gives each model a status; a single-model one serves the one it has.
    router = endpoint.kind == ProviderKind.LLAMA_SERVER and any(
        isinstance(item, dict) and isinstance(item.get("status"), dict) for item in data)
    if endpoint.kind == ProviderKind.LLAMA_SERVER:
        for entry in entries:  # loading and sleeping router models are not ready to answer
            entry["loaded"] = entry["loaded"] is True if router else True
    elif endpoint.running_url and any(entry["loaded"] is None for entry in entries):
        # llama-swap before v236 has no `status` in /v1/models; /running says what is loaded.
        try:
            running = parse_running(await _get_json(client, endpoint.running_url, endpoint))
        except (ListingError, httpx.HTTPError, ValueError):
            running = None
        if running is not None:
            for entry in entries:
                entry["loaded"] = entry["id"] in running
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    now = time.time()
    return {
        "models": entries,
        "refreshed_at": now,
        "checked_at": now,
        "latency_ms": latency_ms,
        "state": SLOW if latency_ms > endpoint.models_timeout * 500 else UP,
        "error": _listing_note(skipped, total),
        "router": router,
    }


def _listing_note(skipped: int, total: int) -> str | None:
    notes = []
    if skipped:
        notes.append(f"{skipped} malformed model entr{'y' if skipped == 1 else 'ies'} skipped")
    if total > MAX_MODELS_PER_PROVIDER:
        notes.append(f"only the first {MAX_MODELS_PER_PROVIDER} of {total} models are listed")
    return "; ".join(notes) or None


def _describe(exc: BaseException, endpoint: Endpoint) -> str:
    if isinstance(exc, (asyncio.TimeoutError, httpx.TimeoutException)):
        return f"no answer within {endpoint.models_timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(exc, (ListingError, RoutingError)):
        return str(exc)
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP error: {type(exc).__name__}"
    return f"unexpected answer: {type(exc).__name__}"


async def _refresh_one(client: httpx.AsyncClient, endpoint: Endpoint, previous: dict[str, Any] | None) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(fetch_listing(client, endpoint), endpoint.models_timeout)
    except Exception as exc:  # every failure of one host becomes its state, never the page's
        error = _describe(exc, endpoint)
        logger.warning("model list of provider %s: %s", endpoint.provider, error)
        kept = previous or {}
        return {
            "models": kept.get("models", []),
            "refreshed_at": kept.get("refreshed_at"),
            "checked_at": time.time(),
            "latency_ms": None,
            "state": DOWN,
            "error": error,
            "router": kept.get("router", False),
        }


async def refresh_listings(endpoints: list[Endpoint], previous: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Fetch every endpoint's list concurrently; keys are cache keys."""
    async with async_client() as client:
        results = await asyncio.gather(
            *(_refresh_one(client, endpoint, previous.get(cache_key(endpoint))) for endpoint in endpoints)
        )
    return {cache_key(endpoint): result for endpoint, result in zip(endpoints, results, strict=True)}


# -- caching ---------------------------------------------------------------------------------------


def cache_key(endpoint: Endpoint) -> str:
    # The address is part of the key: after a provider is pointed elsewhere its old list is not served.
    address = hashlib.sha256(f"{endpoint.kind} {endpoint.api_base}".encode()).hexdigest()[:12]
    return f"catalog:{_CACHE_VERSION}:{endpoint.provider}:{address}"


def _store(results: dict[str, dict[str, Any]]) -> None:
    cache.set_many(results, timeout=_CACHE_SECONDS)


def _refresh_in_background(endpoints: list[Endpoint], previous: dict[str, dict[str, Any]]) -> Future[None] | None:
    # One refresh per provider at a time across every app process sharing the cache.
    claimed = [e for e in endpoints if cache.add(f"{cache_key(e)}:refreshing", 1, timeout=e.models_timeout + 5)]
    if not claimed:
        return None

    def run() -> None:
        try:
            _store(asyncio.run(refresh_listings(claimed, previous)))
        finally:
            cache.delete_many([f"{cache_key(e)}:refreshing" for e in claimed])

    future = _refresher.submit(run)
    _in_flight.add(future)
    future.add_done_callback(_in_flight.discard)
    return future


def wait_for_background_refreshes(timeout: float) -> None:
    """Block until the background refreshes started so far are done (tests, benchmarks, shutdown)."""
    wait(list(_in_flight), timeout=timeout)


def _timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _status(provider: Provider, entry: dict[str, Any], overrides: dict[str, ModelOverride]) -> ProviderStatus:
    state = entry.get("state", DOWN)
    models = []
    for listed in entry.get("models", []):
        override = overrides.get(listed["id"])
        if override is not None and override.hidden:
            continue
        ref = ModelRef(provider.slug, listed["id"])
        models.append(CatalogModel(
            id=str(ref),
            provider=provider.slug,
            model=listed["id"],
            display_name=(override.display_name if override and override.display_name else ref.display_name),
            upstream_name=listed.get("name", ""),
            loaded=None if state == DOWN else listed.get("loaded"),  # a down host's cached list cannot say
            context_size=(override.context_size if override and override.context_size else listed.get("context_size")),
            embedding=(override.purpose == ModelPurpose.EMBEDDING if override and override.purpose
                       else bool(listed.get("embedding"))),
        ))
    return ProviderStatus(
        slug=provider.slug,
        name=provider.name,
        kind=provider.kind,
        is_default=provider.is_default,
        state=state,
        latency_ms=entry.get("latency_ms"),
        refreshed_at=_timestamp(entry.get("refreshed_at")),
        checked_at=_timestamp(entry.get("checked_at")),
        last_error=entry.get("error"),
        models=tuple(models),
        router=bool(entry.get("router")),
    )


def _pool_status(row: Provider, overrides: Iterable[ModelOverride], listed: dict[str, ProviderStatus]) -> ProviderStatus:
    """A pool as its members' hosts stand: a model is loaded where any member that is up has it
    loaded; the pool is up while any member's host is."""
    by_id = {m.id: m for status in listed.values() for m in status.models}
    models: list[CatalogModel] = []
    hosts: set[str] = set()
    for override in overrides:
        if override.hidden:
            continue
        hosts.update(member.partition("/")[0] for member in override.members)
        members = [by_id[m] for m in override.members if m in by_id]
        up = [m for m in members if listed[m.provider].state != DOWN]
        models.append(CatalogModel(
            id=f"{row.slug}/{override.model}", provider=row.slug, model=override.model,
            display_name=override.display_name or override.model, upstream_name="",
            loaded=True if any(m.loaded for m in up) else False if up and all(m.loaded is False for m in up) else None,
            context_size=override.context_size or min((m.context_size for m in members if m.context_size), default=None),
            embedding=bool(members) and all(m.embedding for m in members),
        ))
    up_hosts = [listed[slug] for slug in hosts if slug in listed and listed[slug].state != DOWN]
    return ProviderStatus(
        slug=row.slug, name=row.name, kind=row.kind, is_default=row.is_default, state=UP if up_hosts else DOWN,
        latency_ms=None, refreshed_at=max((s.refreshed_at for s in up_hosts if s.refreshed_at), default=None),
        checked_at=None, last_error=None if up_hosts else "no member's host is up", models=tuple(models),
    )


def cached_listings(providers: Iterable[Provider]) -> dict[str, dict[str, Any]]:
    """Each provider's last model list as cached, without waiting on any host: slug -> cache entry.
    Lists past their freshness (or never fetched) are refreshed in the background, so that a host
    marked down comes back by itself where requests only read the cache (the gateway's)."""
    endpoints = {}
    for row in providers:
        try:
            endpoints[row.slug] = endpoint_for(row)
        except RoutingError:
            continue
    keys = {slug: cache_key(endpoint) for slug, endpoint in endpoints.items()}
    cached = cache.get_many(list(keys.values()))
    due = time.time() - settings.BOOCHAT_CATALOG_TTL
    stale = [endpoints[slug] for slug, key in keys.items() if key not in cached or cached[key].get("checked_at", 0) <= due]
    if stale:
        _refresh_in_background(stale, {key: cached[key] for key in map(cache_key, stale) if key in cached})
    return {slug: cached[key] for slug, key in keys.items() if key in cached}


def listed_model_ids(provider: Provider) -> frozenset[str] | None:
    """The ids (and aliases) of the models the provider's host listed last, from the cache; None
    when it has never listed them."""
    entry = cached_listings([provider]).get(provider.slug)
    if entry is None or entry.get("refreshed_at") is None:
        return None
    return frozenset(name for model in entry.get("models", []) for name in (model["id"], *model.get("aliases", ())))


def load_catalog(*, providers: Iterable[Provider] | None = None, background: bool = True) -> Catalog:
    """The catalog of enabled providers: cached lists at once, missing ones fetched (bounded by timeouts).
    A pool's models are shown as its members' hosts stand."""
    wanted = list(providers if providers is not None else Provider.objects.enabled().prefetch_related("overrides"))
    rows = [row for row in wanted if row.kind != ProviderKind.POOL]
    pools = {row.slug: (row, list(row.overrides.all())) for row in wanted if row.kind == ProviderKind.POOL}
    if pools:  # the members' hosts too, even when only the pool was asked for
        known, registered = {row.slug for row in rows}, registry.get().providers
        member_hosts = {m.partition("/")[0] for _, overrides in pools.values() for o in overrides for m in o.members}
        rows += [registered[slug] for slug in sorted(member_hosts - known)
                 if slug in registered and registered[slug].enabled and registered[slug].kind != ProviderKind.POOL]
    endpoints: dict[str, Endpoint] = {}
    unusable: dict[str, dict[str, Any]] = {}
    for row in rows:
        try:
            endpoints[row.slug] = endpoint_for(row)
        except RoutingError as exc:  # e.g. its API key variable is not set: no call is made
            unusable[row.slug] = {"state": DOWN, "error": str(exc), "checked_at": time.time()}
    cached = cache.get_many([cache_key(e) for e in endpoints.values()])

    missing = [e for e in endpoints.values() if cache_key(e) not in cached]
    missing_keys = {cache_key(e) for e in missing}
    if missing:
        fetched = async_to_sync(refresh_listings)(missing, {})
        _store(fetched)
        cached.update(fetched)
    ttl = settings.BOOCHAT_CATALOG_TTL
    stale = [
        e for e in endpoints.values()
        if cache_key(e) not in missing_keys and cached[cache_key(e)].get("checked_at", 0) + ttl <= time.time()
    ]
    if stale and background:
        _refresh_in_background(stale, {cache_key(e): cached[cache_key(e)] for e in stale})
    elif stale:
        fetched = async_to_sync(refresh_listings)(stale, {cache_key(e): cached[cache_key(e)] for e in stale})
        _store(fetched)
        cached.update(fetched)

    statuses = {}
    for row in rows:
        entry = unusable.get(row.slug) or cached[cache_key(endpoints[row.slug])]
        overrides = {o.model: o for o in row.overrides.all()}
        statuses[row.slug] = _status(row, entry, overrides)
    for slug, (row, pool_models) in pools.items():
        statuses[slug] = _pool_status(row, pool_models, statuses)
    return Catalog(tuple(statuses[row.slug] for row in wanted))
