from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from boochat.picker import build_picker
from providers.catalog import load_catalog
from providers.models import Provider
from settings_app.models import Favorite
from settings_app.views import api_login_required


@require_GET
def home(request: HttpRequest) -> TemplateResponse:
    """The start page: the configured providers."""
    return TemplateResponse(request, "home.html", {"providers": Provider.objects.all()})


@require_GET
def picker(request: HttpRequest) -> TemplateResponse:
    """Every model of every enabled provider, Favorites first, grouped by provider."""
    catalog = load_catalog()
    favorite_ids = Favorite.objects.ids_for(request.user)
    return TemplateResponse(
        request, "picker.html", {"picker": build_picker(catalog, favorite_ids, request.GET.get("q", ""))}
    )


@api_login_required
@require_GET
def api_models(request: HttpRequest) -> JsonResponse:
    """The provider-aware catalog as JSON (no favorites: those are per user, in /api/settings)."""
    return JsonResponse(load_catalog().as_json())


@require_GET
@never_cache
@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: the app answers and reaches its database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
