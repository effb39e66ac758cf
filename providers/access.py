"""Which models a user may use: patterns given to Django groups in admin (providers.models.ModelAccess),
narrowed further by a gateway key's scope. A user in no group with patterns may use every model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed

from providers.catalog import Catalog, load_catalog
from providers.ids import InvalidModelId, ModelRef
from providers.routing import Registry, RoutingError, parse_model_ref
from providers.snapshot import Snapshot


class ModelNotAllowed(RoutingError):
    """The user (or the key) may not use this model."""

    status = 403


def parse_patterns(text: str | Iterable[str]) -> tuple[str, ...]:
    """Patterns from one a line (or a list): `provider/*`, `provider/model`, `pool/model`; ValueError names a bad one."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    patterns = []
    for line in lines:
        pattern = line.strip()
        if not pattern:
            continue
        if not isinstance(pattern, str) or "/" not in pattern:
            raise ValueError(f"{pattern!r} is not a model pattern: write provider/*, provider/model or pool/model.")
        provider, _, model = pattern.partition("/")
        try:
            ModelRef.parse(f"{provider}/x" if model == "*" else pattern)
        except InvalidModelId as exc:
            raise ValueError(f"{pattern!r} is not a model pattern: {exc}") from None
        patterns.append(pattern)
    return tuple(dict.fromkeys(patterns))


def matches(patterns: Iterable[str], model_id: str) -> bool:
    """Whether a composite id is one of `patterns` (`provider/*` takes every model of the provider)."""
    provider = model_id.partition("/")[0]
    return any(pattern == model_id or pattern == f"{provider}/*" for pattern in patterns)


@dataclass(frozen=True)
class Access:
    """What one user (through one key, if any) may use: a model every pattern set allows; no sets
    means every model."""

    pattern_sets: tuple[tuple[str, ...], ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.pattern_sets)

    def allows(self, model_id: str) -> bool:
        return all(matches(patterns, model_id) for patterns in self.pattern_sets)

    def narrowed(self, scope: Iterable[str]) -> Access:
        """This access within a key's scope (an empty scope narrows nothing)."""
        scope = tuple(scope)
        return Access((*self.pattern_sets, scope)) if scope else self


EVERYTHING = Access()


def _load_access() -> dict[int, tuple[str, ...]]:
    """Users in a restricting group -> every pattern their groups allow."""
    from providers.models import ModelAccess

    by_group = {row.group_id: parse_patterns(row.patterns) for row in ModelAccess.objects.all()}
    allowed: dict[int, list[str]] = defaultdict(list)
    memberships = get_user_model().groups.through.objects.filter(group_id__in=by_group)
    for user_id, group_id in memberships.values_list("user_id", "group_id"):
        allowed[user_id].extend(by_group[group_id])
    return {user_id: tuple(dict.fromkeys(patterns)) for user_id, patterns in allowed.items()}


# Restricted users and their patterns: the gateway reads it on every request without a query.
restricted_users = Snapshot(_load_access)


def follow_changes() -> None:
    """Forget the snapshot when group rows or memberships change in this process (AppConfig.ready)."""
    from django.contrib.auth.models import Group

    from providers.models import ModelAccess

    restricted_users.follow(ModelAccess, Group)
    m2m_changed.connect(restricted_users.forget, sender=get_user_model().groups.through)


def access_for(user_id: int | None, snapshot: dict[int, tuple[str, ...]] | None = None) -> Access:
    """What this user may use (from the snapshot: no query while it is fresh)."""
    if user_id is None:
        return EVERYTHING
    patterns = (snapshot if snapshot is not None else restricted_users.get()).get(user_id)
    return EVERYTHING if patterns is None else Access((patterns,))


def check_model(access: Access, model_id: str, snapshot: Registry | None = None) -> str:
    """The composite id of `model_id`; ModelNotAllowed if `access` does not allow it (RoutingError if
    it names no known provider)."""
    composite = str(parse_model_ref(model_id, snapshot)[0])
    if not access.allows(composite):
        raise ModelNotAllowed(f"You may not use the model {composite!r}: ask an administrator for access.")
    return composite


def allowed_catalog(catalog: Catalog, access: Access) -> Catalog:
    """The catalog with only the models `access` allows (the same object when it allows all)."""
    if not access.restricted:
        return catalog
    return replace(catalog, providers=tuple(
        replace(provider, models=tuple(m for m in provider.models if access.allows(m.id)))
        for provider in catalog.providers))


def catalog_for(user_id: int | None) -> Catalog:
    """The model catalog as this user may use it."""
    return allowed_catalog(load_catalog(), access_for(user_id))
