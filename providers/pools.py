"""Model pools: a pool's model is served by one of its members, chosen for each request.

Order (docs/wire.md, "Pools"): members whose provider is disabled are skipped; first the member that
served the conversation's previous turn, while its model is loaded there (its KV cache is); then
members whose model is loaded now (no swap); then members whose host has nothing loaded; then the
list order; last the members whose host is down as its last model list says (it may have come back
since; the list is refreshed in the background). The others follow as fallbacks, tried when the chosen one fails
before answering (providers.upstream). Nothing here asks a host: the choice reads the cached model lists.
This order is where a request starts; when it is sent, providers.slots picks among the members that
are up by the pool's strategy (cached prefix, free slots), and makes it wait in line when all are full.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from providers.catalog import DOWN, cached_listings
from providers.ids import ModelRef
from providers.models import Provider, ProviderKind
from providers.routing import ProviderUnavailable, Registry, Route, RoutingError, UnknownModel, registry, route_for

logger = logging.getLogger(__name__)


def choose(ref: ModelRef, pool: Provider, snapshot: Registry, *, sticky: str = "") -> Route:
    """The route of the member chosen for `ref` (a pool's model), with the others as fallbacks."""
    ranked, notes = rank(ref, pool, snapshot, sticky=sticky)
    logger.info("%s: %s", ref, "; ".join([f"{r.ref}: {why}" for r, why in ranked] + notes))
    first, *rest = (replace(route, pool=ref, strategy=pool.strategy) for route, _ in ranked)
    return replace(first, fallbacks=tuple(rest))


def rank(ref: ModelRef, pool: Provider, snapshot: Registry, *, sticky: str = "") -> tuple[list[tuple[Route, str]], list[str]]:
    """The members that can take `ref` now, best first, each with why it stands there; and notes on
    the members skipped. ProviderUnavailable when none can."""
    members = snapshot.pools.get((pool.slug, ref.model))
    if not members:
        raise UnknownModel(f"model {str(ref)!r}: pool {pool.slug!r} has no model {ref.model!r}")
    if not pool.enabled:
        raise ProviderUnavailable(f"provider {pool.slug!r} is disabled")
    routes, notes = [], []
    for member in members:
        slug, _, model = member.partition("/")
        provider = snapshot.providers.get(slug)
        try:
            if provider is None:
                raise RoutingError(f"unknown provider {slug!r}")
            routes.append(replace(route_for(provider, ModelRef(slug, model)), slots=snapshot.slots.get((slug, model), 0)))
        except RoutingError as exc:
            notes.append(f"{member}: skipped, {exc}")
    listings = cached_listings(snapshot.providers[r.provider] for r in routes)
    ranked = []
    for order, route in enumerate(routes):
        listing = listings.get(route.provider)
        if listing is not None and listing.get("state") == DOWN:
            # Its last list may be older than its recovery: still worth a try when the others fail.
            ranked.append((4, order, replace(route, down=True), f"{route.provider} is down, tried last"))
            continue
        loaded = {m["id"] for m in (listing or {}).get("models", []) if m.get("loaded")}
        if route.ref.model in loaded:
            place, why = (0, "served the previous turn, loaded") if str(route.ref) == sticky else (1, "loaded")
        elif listing is not None and not loaded:
            place, why = 2, f"{route.provider} has nothing loaded"
        else:
            place, why = 3, "in list order"
        ranked.append((place, order, route, why))
    if not ranked:
        raise ProviderUnavailable(f"no member of {ref} can take requests now ({'; '.join(notes)})")
    ranked.sort(key=lambda item: item[:2])
    return [(route, why) for _, _, route, why in ranked], notes


def members_now(pool_slug: str, snapshot: Registry | None = None) -> dict[str, tuple[str, str]]:
    """For each model of a pool, the member a new chat would be sent to now and why: model -> (composite
    id of the member, reason). Models no member can take now are left out. No host is asked."""
    snapshot = snapshot or registry.get()
    pool = snapshot.providers.get(pool_slug)
    chosen: dict[str, tuple[str, str]] = {}
    if pool is None or pool.kind != ProviderKind.POOL:
        return chosen
    for slug, model in snapshot.pools:
        if slug != pool_slug:
            continue
        try:
            ranked, _ = rank(ModelRef(slug, model), pool, snapshot)
        except RoutingError:
            continue
        route, why = ranked[0]
        chosen[model] = (str(route.ref), why)
    return chosen
