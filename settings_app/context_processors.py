"""What every page's template needs from the user's settings."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from settings_app.models import Theme, UserSettings


def theme(request: HttpRequest) -> dict[str, object]:
    """`theme` (light, dark or system) for <html data-theme>; read only by templates that use it, so
    HTMX fragments cost no query."""

    def read() -> str:
        user = request.user
        return UserSettings.theme_for(user) if user.is_authenticated else Theme.SYSTEM

    return {"theme": SimpleLazyObject(read)}
