"""Normalization of model ids that people and API clients send as favorites or settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from providers.catalog import load_catalog
from providers.ids import MODEL_MAX_LENGTH, SLUG_MAX_LENGTH
from providers.routing import ProviderUnavailable, RoutingError, canonical_model_id, parse_model_ref
from settings_app.text import quoted

# Longer is no composite id; refused before parsing, so no error message quotes all of it.
ID_MAX_LENGTH = SLUG_MAX_LENGTH + 1 + MODEL_MAX_LENGTH


class InvalidModelIds(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def normalize_model_id(value: Any, *, known: frozenset[str] | set[str] = frozenset()) -> str:
    """The composite id for `value`; ids in `known` (already stored) are kept as they are."""
    if not isinstance(value, str):
        raise RoutingError(f"{quoted(value)} is not a string")
    if value in known:
        return value
    if len(value) > ID_MAX_LENGTH:
        raise RoutingError(f"{quoted(value)} is longer than a model id can be ({ID_MAX_LENGTH} characters)")
    return canonical_model_id(value)


def chat_model_id(value: Any) -> str:
    """normalize_model_id() for a model to chat with: one of a disabled provider, or listed as serving
    embeddings only, is refused."""
    model_id = normalize_model_id(value)
    _, provider = parse_model_ref(model_id)
    if not provider.enabled:
        raise ProviderUnavailable(f"{model_id} is on provider {provider.slug!r} ({provider.name}), which is disabled; "
                                  f"choose a model of another provider, or an admin can enable it")
    listed = load_catalog().by_id().get(model_id)
    if listed is not None and listed.embedding:
        raise RoutingError(f"{model_id} serves embeddings only; it cannot chat")
    return model_id


def normalize_model_ids(values: Any, *, field: str, known: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Composite ids in order, duplicates collapsed (first wins); every bad entry is reported at once.

    Bare and `llama-swap/` ids get the default provider. Ids already stored (`known`) are accepted
    even when their provider no longer exists, so a client can send back what it read.
    """
    if not isinstance(values, list):
        raise InvalidModelIds([f"{field} must be a list of model ids"])
    if len(values) > settings.BOOCHAT_MAX_FAVORITES:
        raise InvalidModelIds([f"{field} has {len(values)} entries; a user keeps at most "
                               f"{settings.BOOCHAT_MAX_FAVORITES} favorites (BOOCHAT_MAX_FAVORITES)"])
    ids: dict[str, None] = {}  # ordered, and a constant-time duplicate check
    errors: list[str] = []
    for index, value in enumerate(values):
        try:
            ids.setdefault(normalize_model_id(value, known=known))
        except RoutingError as exc:
            errors.append(f"{field}[{index}]: {exc}")
    if errors:
        raise InvalidModelIds(errors)
    return list(ids)
