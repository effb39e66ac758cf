"""The user's Keys, Connect and Usage pages, and staff's view of everyone's usage."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBase, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from boochat import limits
from boochat.account.forms import MAX_KEYS, KeyForm
from boochat.gateway.keys import create_key
from boochat.models import GatewayKey, UsageRecord
from boochat.usage import reports
from providers.access import access_for, catalog_for
from providers.context import context_size_for
from providers.routing import RoutingError
from settings_app.requests import HtmxHttpRequest


def _standings(request: HtmxHttpRequest) -> list[limits.Standing]:
    keys = GatewayKey.objects.for_user(request.user).active().exclude(
        requests_per_minute=None, tokens_per_day=None, concurrent_streams=None)
    subjects = [limits.Subject(f"key:{key.pk}", limits.LimitValues(
        key.requests_per_minute, key.tokens_per_day, key.concurrent_streams), f"key {key.name}") for key in keys]
    subjects += limits.subjects_for(request.user.pk)
    return limits.standings(subjects)


@require_http_methods(["GET", "POST"])
def keys(request: HtmxHttpRequest) -> TemplateResponse:
    """The user's gateway keys; POST makes one, shown once on the page that answers."""
    form = KeyForm(request.POST or None)
    created: tuple[GatewayKey, str] | None = None
    if request.method == "POST" and form.is_valid():
        if GatewayKey.objects.for_user(request.user).active().count() >= MAX_KEYS:
            form.add_error(None, f"You have {MAX_KEYS} active keys, the most one user keeps: revoke one first.")
        else:
            created = create_key(user=request.user, name=form.cleaned_data["name"],
                                 expires_at=form.cleaned_data["expires"], scope=form.cleaned_data["scope"])
            form = KeyForm()
    rows = GatewayKey.objects.for_user(request.user).order_by("revoked_at", "-created_at")
    return TemplateResponse(request, "keys.html", {
        "form": form, "created": created, "keys": rows, "now": timezone.now(), "standings": _standings(request),
        "base_url": gateway_url(request)}, status=400 if request.method == "POST" and not created else 200)


@require_POST
def key_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Revoke one of the user's keys; every worker refuses it within a second."""
    key = get_object_or_404(GatewayKey.objects.for_user(request.user), pk=pk)
    if key.revoked_at is None:
        GatewayKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        messages.success(request, f"Revoked the key {key.name} ({key.prefix}…).")
    return redirect("keys")


def gateway_url(request: HtmxHttpRequest) -> str:
    """The gateway's base URL: BOOCHAT_PUBLIC_URL's, else as the browser reached this page."""
    root = settings.BOOCHAT_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")
    return f"{root}/v1"


def _context_size(model: Any) -> int | None:
    if model.context_size:
        return int(model.context_size)
    try:
        return context_size_for(model.id).tokens
    except RoutingError:
        return None


def opencode_config(base_url: str, models: list[dict[str, Any]]) -> str:
    """opencode's config for the gateway: each model with its context limit, so it compacts in time."""
    entries = {}
    for model in models:
        entry: dict[str, Any] = {"name": model["label"]}
        if model["context"]:
            entry["limit"] = {"context": model["context"], "output": min(model["context"] // 2, 8192)}
        entries[model["id"]] = entry
    config = {"$schema": "https://opencode.ai/config.json", "provider": {"boochat": {
        "npm": "@ai-sdk/openai-compatible", "name": "BooChat",
        "options": {"baseURL": base_url, "apiKey": "{env:BOOCHAT_API_KEY}"}, "models": entries}}}
    return json.dumps(config, indent=2, ensure_ascii=False)


@require_GET
def connect(request: HtmxHttpRequest) -> TemplateResponse:
    """How to reach the gateway: its URL, the models this user may use, setups to paste."""
    base_url = gateway_url(request)
    models = [{"id": m.id, "label": m.label, "context": _context_size(m), "embedding": m.embedding}
              for m in catalog_for(request.user.pk).models]
    example = next((m["id"] for m in models if not m["embedding"]), "provider/model")
    return TemplateResponse(request, "connect.html", {
        "base_url": base_url, "gateway_root": base_url.removesuffix("/v1"), "models": models, "example": example,
        "opencode": opencode_config(base_url, [m for m in models if not m["embedding"]]),
        "restricted": access_for(request.user.pk).restricted,
    })


def _period(request: HtmxHttpRequest) -> str:
    period = request.GET.get("period", reports.DEFAULT_PERIOD)
    return period if period in reports.PERIODS else reports.DEFAULT_PERIOD


def _csv(records: Any, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(reports.csv_lines(records), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def chart_bars(bars: list[Any]) -> list[dict[str, Any]]:
    """The chart's bars as SVG geometry (a 100-unit-high viewBox, 10 units a bar): no inline style under the CSP."""
    top = max([bar.tokens for bar in bars] + [1])
    shapes = []
    for index, bar in enumerate(bars):
        height = round(bar.tokens * 96 / top, 2) if bar.tokens else 0
        shapes.append({"label": bar.label, "tokens": bar.tokens, "requests": bar.requests,
                       "x": index * 10 + 1, "y": 100 - height, "height": height})
    return shapes


@require_GET
def usage(request: HtmxHttpRequest) -> HttpResponseBase:
    """The user's own usage over 24 h, 7 d or 30 d: by model and by key, a chart, the limits."""
    period = _period(request)
    records = UsageRecord.objects.filter(user=request.user, at__gte=reports.period_start(period))
    if request.GET.get("format") == "csv":
        return _csv(records, f"boochat-usage-{period}.csv")
    bars = reports.chart(records, period)
    return TemplateResponse(request, "usage.html", {
        "period": period, "periods": list(reports.PERIODS), "totals": reports.totals(records),
        "by_model": reports.by(records, "model_id"), "by_key": reports.by(records, "key__name"),
        "chart": bars, "chart_max": max([bar.tokens for bar in bars] + [1]),
        "bars": chart_bars(bars), "chart_width": len(bars) * 10, "standings": _standings(request), "everyone": False,
    })


@require_GET
def usage_all(request: HtmxHttpRequest) -> HttpResponseBase:
    """Everyone's usage, by user, host and model (staff only)."""
    if not request.user.is_staff:
        raise PermissionDenied("Everyone's usage is for staff.")
    period = _period(request)
    records = UsageRecord.objects.filter(at__gte=reports.period_start(period))
    if request.GET.get("format") == "csv":
        return _csv(records, f"boochat-usage-all-{period}.csv")
    bars = reports.chart(records, period)
    return TemplateResponse(request, "usage.html", {
        "period": period, "periods": list(reports.PERIODS), "totals": reports.totals(records),
        "by_user": reports.by(records, "user__username"), "by_host": reports.by_host(records),
        "by_model": reports.by(records, "model_id"), "chart": bars,
        "chart_max": max([bar.tokens for bar in bars] + [1]), "everyone": True,
        "bars": chart_bars(bars), "chart_width": len(bars) * 10,
    })
