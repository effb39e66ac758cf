"""The model picker's content: Favorites first, then one group per provider."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from providers.catalog import Catalog, CatalogModel, ProviderStatus


def dom_id(model_id: str) -> str:
    """A stable, selector-safe DOM id for a composite model id (ids may hold '/', '.', ':')."""
    return "m-" + hashlib.sha1(model_id.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PickerRow:
    model: CatalogModel
    favorite: bool

    # Computed here rather than in the template: the picker renders hundreds of rows.
    @property
    def dom_id(self) -> str:
        return dom_id(self.model.id)

    @property
    def filter_text(self) -> str:
        return f"{self.model.id} {self.model.display_name} {self.model.upstream_name}".lower()

    @property
    def pressed(self) -> str:
        return "true" if self.favorite else "false"

    @property
    def action_label(self) -> str:
        if self.favorite:
            return f"Remove {self.model.label} from favorites"
        return f"Add {self.model.label} to favorites"


@lru_cache(maxsize=256)
def render_rows(rows: tuple[PickerRow, ...], in_favorites: bool) -> SafeString:
    """The `<li>` rows of one list. Rows are plain values, so equal rows give equal HTML: a list
    is rendered once per content and favorite state, not on every page view (a lab's picker has
    hundreds of rows)."""
    return render_to_string("picker.html#model_rows", {"rows": rows, "in_favorites": in_favorites})


@dataclass(frozen=True)
class PickerGroup:
    provider: ProviderStatus
    rows: tuple[PickerRow, ...]

    @property
    def rows_html(self) -> SafeString:
        return render_rows(self.rows, False)


@dataclass(frozen=True)
class Picker:
    favorites: tuple[PickerRow, ...]
    groups: list[PickerGroup]
    unavailable_favorites: list[str]  # favorites not in the catalog: hidden here, never deleted
    query: str = ""

    @property
    def favorites_html(self) -> SafeString:
        return render_rows(self.favorites, True)

    @property
    def available_ids(self) -> set[str]:
        return {r.model.id for g in self.groups for r in g.rows}

    def row(self, model_id: str) -> PickerRow | None:
        return next((r for g in self.groups for r in g.rows if r.model.id == model_id), None)


def _matches(model: CatalogModel, query: str) -> bool:
    haystack = PickerRow(model, False).filter_text
    return all(word in haystack for word in query.lower().split())


def build_picker(catalog: Catalog, favorite_ids: list[str], query: str = "", *, chat: bool = False) -> Picker:
    """Group the catalog for display; the Favorites section keeps the user's order. `chat`: only the
    models that can chat (no embedding models)."""
    favorites = set(favorite_ids)
    by_id = catalog.by_id()
    query = query.strip()

    def shown(model: CatalogModel) -> bool:
        return (not chat or not model.embedding) and (not query or _matches(model, query))

    groups = [
        PickerGroup(provider, tuple(PickerRow(m, m.id in favorites) for m in provider.models if shown(m)))
        for provider in catalog.providers
    ]
    return Picker(
        favorites=tuple(PickerRow(by_id[i], True) for i in favorite_ids if i in by_id and shown(by_id[i])),
        groups=groups,
        unavailable_favorites=[i for i in favorite_ids if i not in by_id],
        query=query,
    )
