"""How many tokens a model's context holds, found in this order (docs/wire.md) and cached per composite id.

1. an admin or provider-file override;
2. the host's model list (`context_length`, or `meta.n_ctx` from llama-server);
3. `GET /upstream/<id>/props` (`default_generation_settings.n_ctx`), only when the model is already
   loaded: through llama-swap that request would otherwise load it and may unload another;
4. `n_ctx` learned from an `exceed_context_size_error`;
5. a per-kind default (DeepSeek: its documented sizes).

A pool's model, unless overridden, holds its smallest member's context: a request may go to any
member (failover included), so that is the size every member can take. Members whose size is only a
per-kind default count only when no member's size is known.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache

from providers.catalog import load_catalog
from providers.models import ProviderKind
from providers.props import fetch_props
from providers.routing import Registry, Route, RoutingError, UnknownModel, parse_model_ref, registry, route_for

# DeepSeek's /models has no sizes; these are from its API documentation.
DEEPSEEK_CONTEXT = {"deepseek-chat": 131072, "deepseek-reasoner": 131072}
KIND_DEFAULT = {
    ProviderKind.DEEPSEEK: 131072,
    ProviderKind.LLAMA_SWAP: 4096,  # llama-server's -c default
    ProviderKind.LLAMA_SERVER: 4096,
    ProviderKind.OPENAI: 8192,
}
_CACHE_SECONDS = 600
_LEARNED_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class ContextSize:
    tokens: int
    source: str  # override / listing / props / learned / default
    at: float


def _key(model_id: str) -> str:
    return f"ctx:1:{model_id}"


def _learned_key(model_id: str) -> str:
    return f"ctx-learned:1:{model_id}"


def fetch_props_n_ctx(route: Route) -> int | None:
    """`default_generation_settings.n_ctx` from the model's llama-server, or None."""
    props = fetch_props(route)
    settings = props.get("default_generation_settings") if props else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return n_ctx if isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and n_ctx > 0 else None


def context_size_for(model_id: str) -> ContextSize:
    """The context size of a model (any id form), with where it came from."""
    snapshot = registry.get()
    ref, provider = parse_model_ref(model_id, snapshot)
    composite = str(ref)
    if override := snapshot.context_sizes.get((provider.slug, ref.model)):
        return ContextSize(override, "override", time.time())
    if provider.kind == ProviderKind.POOL:
        return _pool_context_size(composite, snapshot)
    if cached := cache.get(_key(composite)):
        return ContextSize(**cached)

    listed = next((m for m in load_catalog(providers=[provider]).models if m.id == composite), None)
    found: tuple[int, str] | None = None
    if listed is not None and listed.context_size:
        found = (listed.context_size, "listing")
    elif listed is not None and listed.loaded and provider.enabled:
        if n_ctx := fetch_props_n_ctx(route_for(provider, ref)):
            found = (n_ctx, "props")
    if found is None and (learned := cache.get(_learned_key(composite))):
        found = (learned, "learned")
    if found is None:
        default = DEEPSEEK_CONTEXT.get(ref.model) if provider.kind == ProviderKind.DEEPSEEK else None
        found = (default or KIND_DEFAULT[ProviderKind(provider.kind)], "default")
    result = ContextSize(found[0], found[1], time.time())
    # A default is a guess: look again soon, when the model may be loaded and props can tell.
    cache.set(_key(composite), result.__dict__, timeout=60 if result.source == "default" else _CACHE_SECONDS)
    return result


def _pool_context_size(pool_id: str, snapshot: Registry) -> ContextSize:
    slug, _, model = pool_id.partition("/")
    if (slug, model) not in snapshot.pools:
        raise UnknownModel(f"model {pool_id!r}: pool {slug!r} has no model {model!r}")
    sizes = []
    for member in snapshot.pools[(slug, model)]:
        host = snapshot.providers.get(member.partition("/")[0])
        if host is not None and host.enabled and host.kind != ProviderKind.POOL:
            sizes.append(context_size_for(member))
    known = [size for size in sizes if size.source != "default"] or sizes
    if not known:
        raise RoutingError(f"model {pool_id!r}: no member of the pool can take requests")
    return min(known, key=lambda size: size.tokens)


def learn_context_size(model_id: str, n_ctx: int) -> None:
    """Remember the `n_ctx` a host reported in an exceed_context_size_error."""
    ref, _ = parse_model_ref(model_id)
    cache.set(_learned_key(str(ref)), n_ctx, timeout=_LEARNED_SECONDS)
    cache.set(_key(str(ref)), ContextSize(n_ctx, "learned", time.time()).__dict__, timeout=_CACHE_SECONDS)
