"""The model picker's content: Favorites first, then one group per provider."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from providers.catalog import Catalog, CatalogModel, ProviderStatus


def dom_id(model_id: str) -> str:
    """A stable, selector-safe DOM id for a composite model id (ids may hold '/', '.', ':')."""
    return "m-" + hashlib.sha1(model_id.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PickerRow:
    model: CatalogModel
    favorite: bool

    @property
    def dom_id(self) -> str:
        return dom_id(self.model.id)


@dataclass(frozen=True)
class PickerGroup:
    provider: ProviderStatus
    rows: list[PickerRow]


@dataclass(frozen=True)
class Picker:
    favorites: list[PickerRow]
    groups: list[PickerGroup]
    unavailable_favorites: list[str]  # favorites not in the catalog: hidden here, never deleted
    query: str = ""

    @property
    def available_ids(self) -> set[str]:
        return {r.model.id for g in self.groups for r in g.rows}

    def row(self, model_id: str) -> PickerRow | None:
        return next((r for g in self.groups for r in g.rows if r.model.id == model_id), None)


def _matches(model: CatalogModel, query: str) -> bool:
    haystack = f"{model.id} {model.display_name} {model.upstream_name}".lower()
    return all(word in haystack for word in query.lower().split())


def build_picker(catalog: Catalog, favorite_ids: list[str], query: str = "") -> Picker:
    """Group the catalog for display; the Favorites section keeps the user's order."""
    favorites = set(favorite_ids)
    by_id = catalog.by_id()
    query = query.strip()
    groups = [
        PickerGroup(
            provider,
            [PickerRow(m, m.id in favorites) for m in provider.models if not query or _matches(m, query)],
        )
        for provider in catalog.providers
    ]
    return Picker(
        favorites=[
            PickerRow(by_id[i], True) for i in favorite_ids if i in by_id and (not query or _matches(by_id[i], query))
        ],
        groups=groups,
        unavailable_favorites=[i for i in favorite_ids if i not in by_id],
        query=query,
    )
