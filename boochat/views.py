from __future__ import annotations

import sys

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import csrf, defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from boochat import outages
from boochat.chat.starting_model import starting_model
from boochat.gateway import app as gateway
from boochat.models import ChatSession, Preset
from providers import control, pools, slots
from providers.access import catalog_for
from providers.catalog import load_catalog
from providers.models import Provider, ProviderKind
from providers.routing import RoutingError, endpoint_for
from settings_app.models import Favorite
from settings_app.picker import build_picker
from settings_app.requests import HtmxHttpRequest
from settings_app.views import api_login_required
from tools.catalog import servers_now


@require_GET
def home(request: HtmxHttpRequest) -> TemplateResponse:
    """The start page: a message box that starts a chat, recent chats, favorites and the hosts."""
    chat_picker = build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user), chat=True)
    return TemplateResponse(request, "home.html", {
        "providers": Provider.objects.all(),
        "picker": chat_picker,
        "selected": starting_model(request.user, chat_picker),  # the model a new chat gets, shown on the chip
        "recent": ChatSession.objects.for_user(request.user).listed().only("id", "title")[:5],
        "presets": Preset.objects.filter(user=request.user).exclude(name=""),
    })


@require_GET
def picker(request: HtmxHttpRequest) -> TemplateResponse:
    """Every model of every enabled provider, Favorites first, grouped by provider."""
    catalog = catalog_for(request.user.pk)
    favorite_ids = Favorite.objects.ids_for(request.user)
    return TemplateResponse(request, "picker.html", {
        "picker": build_picker(catalog, favorite_ids, request.GET.get("q", "")),
        "may_control": may_control_models(request.user),
        "controlled": {p.slug for p in catalog.providers if control.offered(p)},
        # Which member each pool's model would be sent to now (no host is asked: the cached lists).
        "pools_now": {p.slug: pools.members_now(p.slug) for p in catalog.providers if p.kind == ProviderKind.POOL},
        "fleet": slots.fleet_now(),
        # The tool servers this user may use, as last listed (a server that is down never holds the page).
        "tool_servers": servers_now(request.user),
    })


def may_control_models(user: User | AnonymousUser) -> bool:
    return user.is_staff or user.has_perm("providers.control_models")


@require_http_methods(["GET", "POST"])
def host_models(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """A llama-swap or llama-server host's running models with their state; POST `action` load or
    unload (with `model`) or unload_all. Staff, or the providers.control_models permission."""
    if not may_control_models(request.user):
        return HttpResponseForbidden("Loading and unloading models needs the “Can load and unload models on a "
                                     "host” permission.", content_type="text/plain; charset=utf-8")
    provider = get_object_or_404(Provider, slug=slug, kind__in=control.CONTROLLED_KINDS)
    note, error, status = "", "", 200
    try:
        endpoint = endpoint_for(provider)
    except RoutingError as exc:
        return HttpResponse(f"{provider.name}: {exc}", status=409, content_type="text/plain; charset=utf-8")
    if request.method == "POST":
        action, model = request.POST.get("action", ""), request.POST.get("model", "").strip()
        if action not in ("load", "unload", "unload_all") or (action != "unload_all" and not model):
            return HttpResponse("Say what to do: action load or unload with a model, or unload_all.", status=400,
                                content_type="text/plain; charset=utf-8")
        try:
            note = (control.unload_all(endpoint) if action == "unload_all"
                    else control.load(endpoint, model) if action == "load" else control.unload(endpoint, model))
        except control.Refused as exc:  # refused here, before the host was asked: the panel says why
            error, status = str(exc), exc.status
        except control.ControlError as exc:
            error = str(exc)
        if not request.htmx and status == 200:  # a plain form: the page again, with what the host said
            if error:
                messages.error(request, error)
            else:
                messages.info(request, note)
            return redirect(reverse("host_models", args=[slug]))
    controls = True
    try:
        running = control.running(endpoint)
    except control.Refused as exc:  # a single-model llama-server: nothing to offer
        running, controls, error = [], False, error or str(exc)
    except control.ControlError as exc:
        running, error = [], error or str(exc)
    listed = [m.model for p in load_catalog(providers=[provider]).providers for m in p.models]
    active = {r.model for r in running if r.state != "failed"}
    notes = control.notes(endpoint, [*listed, *(r.model for r in running if r.model not in listed)], running)
    context = {
        "provider": provider, "running": running, "error": error, "controls": controls,
        "notes": [n for n in notes if n.text != note], "note": note,
        "idle_models": [m for m in listed if m not in active] if controls else [],
        # Follow the host while something changes: an action asked for here, or a model starting or stopping.
        "polling": any(n.pending for n in notes) or any(not r.settled for r in running),
    }
    return TemplateResponse(request, "host_models.html#panel" if request.htmx else "host_models.html", context,
                            status=status)


@api_login_required
@require_GET
def api_models(request: HtmxHttpRequest) -> JsonResponse:
    """The provider-aware catalog as JSON (no favorites: those are per user, in /api/settings)."""
    return JsonResponse(catalog_for(request.user.pk).as_json())


@require_GET
@never_cache
@login_not_required
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers: "ok" when the app reaches its database and its cache; else 503, naming
    what is down, so that traffic goes to instances that can serve it."""
    states = outages.check_services()
    if all(state == "ok" for state in states.values()):
        return HttpResponse("ok", content_type="text/plain")
    body = "".join(f"{service}: {state}\n" for service, state in states.items())
    return HttpResponse(body, status=503, content_type="text/plain; charset=utf-8",
                        headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})


def _wants_json(request: HttpRequest) -> bool:
    """API clients and the chat page's script read errors as JSON; browsers get Django's pages."""
    return (request.path.startswith("/api/") or request.headers.get("X-BooChat-Stream") == "1"
            or "application/json" in request.headers.get("Accept", ""))


def _unreadable_form(exception: Exception) -> str | None:
    """What was wrong with a form Django could not read, or None for other bad requests."""
    if isinstance(exception, MultiPartParserError):
        if "header size" in str(exception):
            return ("The upload could not be read: the part headers of one of its files (its name and type) are "
                    "longer than the 1 KB Django reads. Give the file a shorter name.")
        return f"The upload could not be read: {exception}"
    if isinstance(exception, TooManyFilesSent):
        return f"Too many files in one request: at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}."
    if isinstance(exception, TooManyFieldsSent):
        return f"Too many form fields in one request: at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}."
    return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 page, but a body past BOOCHAT_MAX_BODY_BYTES is a 413 that says so, and a form
    that cannot be read is a 400 that says why (JSON for API clients and the chat page's script)."""
    if isinstance(exception, RequestDataTooBig):
        status = 413
        message = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (BOOCHAT_MAX_BODY_BYTES)."
    elif (unreadable := _unreadable_form(exception)) is not None:
        status, message = 400, unreadable
    else:
        return defaults.bad_request(request, exception)
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF failure page; JSON for API clients."""
    if _wants_json(request):
        return JsonResponse({"error": f"CSRF check failed: {reason} Send the X-CSRFToken header with the "
                                      f"csrftoken cookie's value, from a logged-in session."}, status=403)
    return csrf.csrf_failure(request, reason)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 page, but a database or cache that cannot be reached is a 503 that says which
    (JSON for API clients); the page is rendered without the request, which would need both."""
    service = outages.service_down(sys.exc_info()[1])  # Django calls this inside its except block
    if service is None:
        return defaults.server_error(request)
    message = outages.unavailable_message(service)
    headers = {"Retry-After": str(outages.RETRY_AFTER_SECONDS)}
    if request.path.startswith("/v1/"):  # the gateway's views (boochat.gateway.views): OpenAI's envelope
        reply = gateway.unavailable(service)
        return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type, headers=reply.headers)
    if _wants_json(request):
        return JsonResponse({"error": message, "unavailable": service}, status=503, headers=headers)
    return HttpResponse(render_to_string("503.html", {"message": message}), status=503, headers=headers)
