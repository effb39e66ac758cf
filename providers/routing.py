"""Where a request for a model goes: the one place that decides (chat, compaction, titles, gateway)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from providers.ids import InvalidModelId, ModelRef, needs_default_provider
from providers.models import ModelOverride, Provider, ProviderKind
from providers.snapshot import Snapshot


class RoutingError(ValueError):
    """A model id that cannot be routed; the message names the id and the reason."""


class UnknownProvider(RoutingError):
    pass


class UnknownModel(RoutingError):
    """The provider exists but does not serve the model."""


class ProviderUnavailable(RoutingError):
    """The provider exists but cannot take requests (disabled, or its API key is not set)."""


@dataclass(frozen=True)
class Endpoint:
    """How to reach one provider: its URLs, timeouts and auth headers."""

    provider: str
    provider_name: str
    kind: str
    base_url: str
    api_base: str
    sidecar_url: str | None
    timeout: httpx.Timeout
    models_timeout: float
    # Carries the provider's API key: kept out of repr() so it never reaches a log line.
    headers: dict[str, str] = field(repr=False)

    def api_url(self, endpoint: str) -> str:
        """An OpenAI-style endpoint on the host itself (`models`, `completions`, `embeddings`)."""
        return f"{self.api_base}/{endpoint}"

    @property
    def running_url(self) -> str | None:
        """llama-swap's list of loaded models."""
        return f"{self.base_url}/running" if self.kind == ProviderKind.LLAMA_SWAP else None


@dataclass(frozen=True)
class Route(Endpoint):
    """Everything needed to send one model's requests to its host."""

    ref: ModelRef = field(kw_only=True)
    pool: ModelRef | None = field(default=None, kw_only=True)  # the pool's model this member serves
    fallbacks: tuple[Route, ...] = field(default=(), kw_only=True, repr=False)  # the pool's next members
    strategy: str = field(default="", kw_only=True)  # the pool's (providers.slots)
    down: bool = field(default=False, kw_only=True)  # a pool's member whose host its last list marks down
    slots: int = field(default=0, kw_only=True)  # a pool's member: its slots as set in admin (0: its host says)

    @property
    def requested(self) -> str:
        """The composite id that was asked for: the pool's, or the model's own."""
        return str(self.pool or self.ref)

    @property
    def candidates(self) -> tuple[Route, ...]:
        """This route, then the members to try when it fails before answering (pools only)."""
        return (self, *self.fallbacks)

    @property
    def wire_model(self) -> str:
        """What the upstream host calls the model: the composite id without its provider prefix."""
        return self.ref.model

    @property
    def uses_sidecar(self) -> bool:
        return self.sidecar_url is not None

    @property
    def chat_completions_url(self) -> str:
        """Chat goes through the provider's sidecar when it has one, else to the host itself."""
        base = _api_base(self.kind, self.sidecar_url) if self.sidecar_url else self.api_base
        return f"{base}/chat/completions"

    @property
    def props_url(self) -> str | None:
        """llama-server's /props for this model, or None where the kind has none."""
        if self.kind == ProviderKind.LLAMA_SWAP:
            return f"{self.base_url}/upstream/{quote(self.wire_model, safe='/')}/props"
        if self.kind == ProviderKind.LLAMA_SERVER:
            # In router mode /props without ?model= is the router's own placeholder (role "router",
            # n_ctx 0); a single-model server ignores the parameter (llama.cpp server source).
            return f"{self.base_url}/props?model={quote(self.wire_model, safe='')}"
        return None


def _api_base(kind: str, base_url: str) -> str:
    # llama-swap and llama-server are configured by host root and serve the OpenAI API under /v1;
    # DeepSeek answers at its root; other OpenAI-compatible APIs are configured with their /v1.
    if kind in (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER):
        return f"{base_url}/v1"
    return base_url


def auth_headers(provider: Provider) -> dict[str, str]:
    """The provider's Authorization header, read from its environment variable at call time."""
    if not provider.api_key_env:
        return {}
    key = os.environ.get(provider.api_key_env, "").strip()
    if not key:
        raise ProviderUnavailable(
            f"provider {provider.slug!r} needs an API key in the environment variable "
            f"{provider.api_key_env}, which is not set"
        )
    return {"Authorization": f"Bearer {key}"}


def endpoint_for(provider: Provider) -> Endpoint:
    """How to reach an already-loaded provider row; refuses disabled ones and missing keys."""
    return Endpoint(**_endpoint_fields(provider))


def route_for(provider: Provider, ref: ModelRef) -> Route:
    """The route of `ref` on an already-loaded provider row."""
    return Route(**_endpoint_fields(provider), ref=ref)


def _endpoint_fields(provider: Provider) -> dict[str, Any]:
    if not provider.enabled:
        raise ProviderUnavailable(f"provider {provider.slug!r} is disabled")
    if provider.kind == ProviderKind.POOL:
        raise ProviderUnavailable(f"provider {provider.slug!r} is a pool: requests go to its members")
    base_url = provider.base_url.rstrip("/")
    return {
        "provider": provider.slug,
        "provider_name": provider.name,
        "kind": provider.kind,
        "base_url": base_url,
        "api_base": _api_base(provider.kind, base_url),
        "sidecar_url": provider.sidecar_url.rstrip("/") or None,
        "timeout": httpx.Timeout(provider.read_timeout, connect=provider.connect_timeout),
        "models_timeout": provider.models_timeout,
        "headers": auth_headers(provider),
    }


# -- the registry snapshot ------------------------------------------------------------------------
#
# Routing runs on every chat turn and every gateway request, so it reads the provider rows (and the
# context sizes set in admin, read on every chat turn) from an in-process snapshot instead of
# querying each time (see providers.snapshot; the querysets' update() and the signals in
# providers.apps drop it).


@dataclass(frozen=True)
class Registry:
    providers: dict[str, Provider]
    default: Provider | None
    # (provider slug, model) -> tokens, from ModelOverride rows that set a context size.
    context_sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    # (pool slug, model) -> the composite ids of its members, in order.
    pools: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # (provider slug, model) -> whether it takes images, from ModelOverride rows that say.
    accepts_images: dict[tuple[str, str], bool] = field(default_factory=dict)
    # (provider slug, model) -> whether it calls tools, from ModelOverride rows that say.
    calls_tools: dict[tuple[str, str], bool] = field(default_factory=dict)
    # (provider slug, model) -> requests its host serves at once, from ModelOverride rows that say.
    slots: dict[tuple[str, str], int] = field(default_factory=dict)


def _load_registry() -> Registry:
    providers = {p.slug: p for p in Provider.objects.all()}
    sizes = ModelOverride.objects.exclude(context_size=None).values_list("provider__slug", "model", "context_size")
    pools = ModelOverride.objects.filter(provider__kind=ProviderKind.POOL).values_list("provider__slug", "model", "members")
    images = ModelOverride.objects.exclude(accepts_images=None).values_list("provider__slug", "model", "accepts_images")
    slots = ModelOverride.objects.exclude(slots=None).values_list("provider__slug", "model", "slots")
    tools = ModelOverride.objects.exclude(calls_tools=None).values_list("provider__slug", "model", "calls_tools")
    return Registry(providers, next((p for p in providers.values() if p.is_default), None),
                    context_sizes={(slug, model): size for slug, model, size in sizes},
                    pools={(slug, model): tuple(members) for slug, model, members in pools},
                    accepts_images={(slug, model): bool(accepts) for slug, model, accepts in images},
                    slots={(slug, model): count for slug, model, count in slots},
                    calls_tools={(slug, model): bool(calls) for slug, model, calls in tools})


registry = Snapshot(_load_registry)


def parse_model_ref(model_id: str, snapshot: Registry | None = None) -> tuple[ModelRef, Provider]:
    """Parse a composite, bare or legacy id against the registry; unknown providers are errors."""
    if not isinstance(model_id, str):
        raise RoutingError(f"a model id must be a string, not {type(model_id).__name__}")
    snapshot = snapshot or registry.get()
    try:
        if needs_default_provider(model_id):
            provider = snapshot.default
            if provider is None:
                raise RoutingError(
                    f"model {model_id!r} names no provider and no default provider is configured"
                )
            return ModelRef.parse(model_id, default_provider=provider.slug), provider
        ref = ModelRef.parse(model_id)
    except InvalidModelId as exc:
        raise RoutingError(f"invalid model id: {exc}") from None
    provider = snapshot.providers.get(ref.provider)
    if provider is None:
        raise UnknownProvider(f"model {model_id!r}: unknown provider {ref.provider!r}")
    return ref, provider


def resolve(model_id: str, snapshot: Registry | None = None, *, sticky: str = "") -> Route:
    """Resolve any model id (composite, bare, or legacy `llama-swap/`) to its route. A pool's model
    resolves to the member chosen for this request (providers.pools), its other members as fallbacks;
    `sticky` names the member that served the conversation's previous turn."""
    snapshot = snapshot or registry.get()
    ref, provider = parse_model_ref(model_id, snapshot)
    if provider.kind == ProviderKind.POOL:
        from providers import pools  # it reads the hosts' state from the catalog, which routes too

        return pools.choose(ref, provider, snapshot, sticky=sticky)
    route = route_for(provider, ref)
    if provider.kind == ProviderKind.LLAMA_SERVER:
        check_listed(provider, ref)
    return route


def check_listed(provider: Provider, ref: ModelRef) -> None:
    """Raise UnknownModel when the provider's cached model list lacks `ref`. A plain llama-server
    answers any model name with the model it has loaded, so the refusal has to be ours; a host that
    has never listed its models is let through. No host is asked."""
    from providers.catalog import listed_model_ids  # the catalog routes its own requests through here

    listed = listed_model_ids(provider)
    if listed is not None and ref.model not in listed:
        served = ", ".join(sorted(listed)[:5]) or "nothing"
        raise UnknownModel(f"{provider.name} ({provider.slug}) does not serve {ref.model!r}: it lists {served}.")


async def aresolve(model_id: str, *, sticky: str = "") -> Route:
    """`resolve()` from async code (no database query while the registry snapshot is fresh)."""
    return resolve(model_id, await registry.aget(), sticky=sticky)


def canonical_model_id(model_id: str) -> str:
    """The composite id for `model_id` (bare and legacy ids get the default provider's prefix)."""
    ref, _ = parse_model_ref(model_id)
    return str(ref)
