from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from providers.access import catalog_for
from providers.routing import RoutingError
from settings_app.models import Favorite, Theme, TooManyFavorites, UserSettings
from settings_app.normalize import (
    InvalidModelIds,
    chat_model_id,
    normalize_model_id,
    normalize_model_ids,
)
from settings_app.picker import build_picker
from settings_app.requests import HtmxHttpRequest
from settings_app.text import UnstorableText, check_json_text, cut, quoted

SETTINGS_FIELDS = {"default_model", "favorite_models", "favorite_models_add", "favorite_models_remove", "theme"}


def json_error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def api_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """JSON APIs answer 401 instead of redirecting to the login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return json_error(401, "authentication required: log in first")
        return view(request, *args, **kwargs)

    return login_not_required(wrapper)


def settings_payload(user: Any) -> dict[str, Any]:
    user_settings = UserSettings.for_user(user)
    return {
        "default_model": user_settings.default_model or None,
        "favorite_models": Favorite.objects.ids_for(user),
        "theme": user_settings.theme,
    }


def theme_error(value: object) -> str | None:
    """Why `value` is not a theme, or None."""
    if value in Theme.values:
        return None
    return f"theme: {quoted(value)} is not one of {', '.join(Theme.values)}"


@api_login_required
@require_http_methods(["GET", "PATCH"])
def api_settings(request: HtmxHttpRequest) -> JsonResponse:
    """Read or change the user's settings; `favorite_models` is a list of composite ids."""
    if request.method == "GET":
        return JsonResponse(settings_payload(request.user))
    try:
        body = json.loads(request.body or b"null")
    except RequestDataTooBig:
        return json_error(413, f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "the body is not valid JSON")
    except RecursionError:
        return json_error(400, "the body is JSON nested too deeply")
    if not isinstance(body, dict):
        return json_error(400, "the body must be a JSON object")
    try:
        check_json_text(body)
    except UnstorableText as exc:
        return json_error(400, str(exc))
    if unknown := sorted(set(body) - SETTINGS_FIELDS):
        named = ", ".join(cut(name) for name in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        return json_error(400, f"unknown field(s): {named}; expected {', '.join(sorted(SETTINGS_FIELDS))}")

    user = request.user
    stored = set(Favorite.objects.ids_for(user))
    errors: list[str] = []
    changes: dict[str, Any] = {}
    for field in ("favorite_models", "favorite_models_add", "favorite_models_remove"):
        if field in body:
            try:
                changes[field] = normalize_model_ids(body[field], field=field, known=stored)
            except InvalidModelIds as exc:
                errors += exc.errors
    if "default_model" in body and body["default_model"] not in (None, ""):
        try:
            changes["default_model"] = chat_model_id(body["default_model"])
        except RoutingError as exc:
            errors.append(f"default_model: {exc}")
    elif "default_model" in body:
        changes["default_model"] = ""
    if errors:
        return json_error(400, "invalid model ids: " + "; ".join(errors), errors=errors)
    if "theme" in body:
        if error := theme_error(body["theme"]):
            return json_error(400, error)
        changes["theme"] = body["theme"]

    try:
        with transaction.atomic():  # all of it or, past the limit, nothing
            if "favorite_models" in changes:
                Favorite.objects.replace(user=user, model_ids=changes["favorite_models"])
            for model_id in changes.get("favorite_models_add", []):
                Favorite.objects.add(user=user, model_id=model_id)
            for model_id in changes.get("favorite_models_remove", []):
                Favorite.objects.remove(user=user, model_id=model_id)
            if fields := {name: changes[name] for name in ("default_model", "theme") if name in changes}:
                UserSettings.objects.update_or_create(user=user, defaults=fields)
    except TooManyFavorites as exc:
        return json_error(400, str(exc))
    return JsonResponse(settings_payload(user))


def _back(request: HtmxHttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = fallback
    return redirect(target, permanent=False)


def _refuse(request: HtmxHttpRequest, message: str, fallback: str) -> HttpResponse:
    if request.htmx:
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
    messages.error(request, message)
    return _back(request, fallback)


@require_POST
def favorite_toggle(request: HtmxHttpRequest) -> HttpResponse:
    """Star (`star=<id>`) or unstar (`unstar=<id>`) a model, as the picker's buttons say; a plain
    `model_id` flips it. htmx gets the re-rendered row and Favorites section."""
    wanted = "star" if "star" in request.POST else "unstar" if "unstar" in request.POST else None
    stored = set(Favorite.objects.ids_for(request.user))
    try:
        model_id = normalize_model_id(request.POST.get(wanted or "model_id", ""), known=stored)
    except RoutingError as exc:
        return _refuse(request, f"Cannot star this model: {exc}", "picker")
    try:
        if wanted is None:
            is_favorite = Favorite.objects.toggle(user=request.user, model_id=model_id)
        else:
            is_favorite = wanted == "star"
            Favorite.objects.set(user=request.user, model_id=model_id, favorite=is_favorite)
    except TooManyFavorites as exc:
        return _refuse(request, f"Cannot star this model: {exc}", "picker")
    if not request.htmx:
        return _back(request, "picker")
    picker = build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user))
    response = TemplateResponse(
        request,
        "picker.html#toggle_result",
        {"picker": picker, "row": picker.row(model_id), "is_favorite": is_favorite},
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
def favorite_remove(request: HtmxHttpRequest) -> HttpResponse:
    """Remove the posted `model_id` from favorites (the only way an unavailable favorite goes away)."""
    model_id = request.POST.get("model_id", "")
    if not model_id:
        return _refuse(request, "Which favorite? The form sent no model_id.", "settings")
    Favorite.objects.remove(user=request.user, model_id=model_id)
    messages.success(request, f"Removed {model_id} from your favorites.")
    return _back(request, "settings")


@require_http_methods(["GET", "POST"])
def settings_page(request: HtmxHttpRequest) -> TemplateResponse | HttpResponse:
    """The user's settings: default model, theme, and favorites, including unavailable ones."""
    user_settings = UserSettings.for_user(request.user)
    error = None
    status = 200
    if request.method == "POST" and "theme" in request.POST:
        if theme_error(request.POST["theme"]):
            error, status = "Theme: choose light, dark or as the system.", 400
        else:
            user_settings.theme = request.POST["theme"]
            user_settings.save(update_fields=["theme", "updated_at"])
            messages.success(request, "Theme saved.")
            return redirect("settings")
    elif request.method == "POST":
        chosen = request.POST.get("default_model", "")
        try:
            user_settings.default_model = chat_model_id(chosen) if chosen else ""
        except RoutingError as exc:
            error = f"Default model: {exc}"
        else:
            user_settings.save(update_fields=["default_model", "updated_at"])
            messages.success(request, "Settings saved.")
            return redirect("settings")
    catalog = catalog_for(request.user.pk)
    favorite_ids = Favorite.objects.ids_for(request.user)
    picker = build_picker(catalog, favorite_ids, chat=True)  # the default model for new chats
    by_id = catalog.by_id()
    return TemplateResponse(
        request,
        "settings.html",
        {
            "picker": picker,
            "favorites": [(model_id, by_id.get(model_id)) for model_id in favorite_ids],
            "selected": user_settings.default_model,
            "error": error,
            "themes": Theme.choices,
            "chosen_theme": user_settings.theme,
        },
        status=status,
    )

