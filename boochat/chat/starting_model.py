"""Which model a new chat starts with, when the user has not just chosen one."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

from boochat.models import ChatSession
from providers.models import ModelOverride
from providers.routing import RoutingError
from settings_app.models import UserSettings
from settings_app.normalize import normalize_model_id
from settings_app.picker import Picker


def starting_model(user: User | AnonymousUser, picker: Picker) -> str:
    """The first of these the chat picker offers: the user's own default (settings), the model of their
    latest chat, the admin's default (BOOCHAT_DEFAULT_MODEL, else the model marked in admin or the
    provider file), the first favorite, the first chat model of the default provider; else ""."""
    offered = picker.available_ids
    return next((model_id for model_id in _candidates(user, picker) if model_id in offered), "")


def _candidates(user: User | AnonymousUser, picker: Picker) -> Iterator[str]:
    if isinstance(user, User):
        yield _composite(UserSettings.objects.filter(user=user).values_list("default_model", flat=True).first() or "")
        yield from (_composite(m) for m in ChatSession.objects.for_user(user).order_by("-updated_at", "-id")
                    .values_list("model_id", flat=True)[:1])
    yield admin_default_model()
    yield from (row.model.id for row in picker.favorites)
    yield from (row.model.id for group in picker.groups if group.provider.is_default for row in group.rows)


def admin_default_model() -> str:
    """BOOCHAT_DEFAULT_MODEL, else the model override marked "default for new chats"; "" when neither."""
    if settings.BOOCHAT_DEFAULT_MODEL:
        return _composite(settings.BOOCHAT_DEFAULT_MODEL)
    marked = ModelOverride.objects.filter(new_chats=True).select_related("provider").first()
    return str(marked) if marked is not None else ""


def _composite(model_id: str) -> str:
    """A stored id as the picker names it (bare and legacy ids mean the default provider); "" if it cannot be."""
    if not model_id:
        return ""
    try:
        return normalize_model_id(model_id)
    except RoutingError:
        return ""
