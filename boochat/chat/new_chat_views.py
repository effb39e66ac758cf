"""A new chat before its first message: its page, where nothing is saved, and what the first message
takes with it (the model, a preset's or the model's prompt and parameters). The first message saves
the chat with its first turn (views.chat_new), so "+ New chat" leaves no empty chats behind."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from boochat.chat.forms import ChatSettingsForm
from boochat.chat.library_views import sidebar
from boochat.chat.starting_model import starting_model
from boochat.models import ChatSession, Preset
from providers.access import access_for, catalog_for, check_model
from providers.capabilities import Reasoning, reasoning_for
from providers.routing import Route, RoutingError, resolve
from settings_app.models import Favorite
from settings_app.normalize import chat_model_id
from settings_app.picker import Picker, build_picker
from settings_app.requests import HtmxHttpRequest

DRAFT_KEY = "boochat-new-chat-draft"  # Home's question, waiting for the new chat's page to send it


def _picker(request: HtmxHttpRequest) -> Picker:
    return build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user), chat=True)


def chosen_model(request: HtmxHttpRequest, chosen: str) -> str:
    """The model asked for, else the one starting_model() picks, as a composite id the user may chat
    with; RoutingError (ModelNotAllowed among them) says why not."""
    return check_model(access_for(request.user.pk), chat_model_id(chosen or starting_model(request.user, _picker(request))))


def chosen_preset(request: HtmxHttpRequest, preset_id: str) -> Preset | None:
    """The user's named preset `preset_id` ("": none); ValueError when there is no such preset."""
    if not preset_id:
        return None
    presets = Preset.objects.filter(user=request.user).exclude(name="")
    preset = presets.filter(pk=preset_id).first() if preset_id.isdigit() else None
    if preset is None:
        raise ValueError("that preset does not exist (deleted meanwhile?)")
    return preset


def unsaved_chat(request: HtmxHttpRequest, model_id: str, preset: Preset | None) -> ChatSession:
    """The chat as it starts, not saved: the chosen preset's prompt and parameters, else the model's
    saved defaults, else none."""
    preset = preset or Preset.objects.filter(user=request.user, for_model=model_id).first()
    return ChatSession(user=request.user, model_id=model_id, system_prompt=preset.system_prompt if preset else "",
                       parameters=dict(preset.parameters) if preset else {})


def next_route(session: ChatSession) -> Route | None:
    """Where the chat's next answer would go (a pool's member chosen once for the whole page); None if nowhere."""
    try:
        return resolve(session.model_id)
    except RoutingError:
        return None


def reasoning_of(session: ChatSession, route: Route | None = None) -> Reasoning:
    """The reasoning controls of the chat's model: of `route`'s model when it is resolved already."""
    try:
        return reasoning_for(str(route.ref) if route is not None else session.model_id)
    except RoutingError:
        return Reasoning()


def new_chat_page(request: HtmxHttpRequest) -> HttpResponseBase:
    """The new chat's page: the composer, the model (`?model=`, else starting_model()) and the prompt
    and parameters (`?preset=`, else the model's defaults) it starts with. Nothing is saved."""
    try:
        model_id = chosen_model(request, request.GET.get("model", ""))
        preset = chosen_preset(request, request.GET.get("preset", ""))
    except (RoutingError, ValueError) as exc:
        messages.error(request, f"Cannot start a chat: {exc}")
        return redirect("chat_index")
    draft = request.session.pop(DRAFT_KEY, "")
    return render_new_chat(request, unsaved_chat(request, model_id, preset), preset=preset, draft=draft, autosend=bool(draft))


def render_new_chat(request: HtmxHttpRequest, session: ChatSession, *, preset: Preset | None = None, draft: str = "",
                    autosend: bool = False, data: object = None, status: int = 200) -> TemplateResponse:
    """chat.html for `session`, not saved yet: the panel's fields go with the first message (bound to
    `data` when a refused one is shown again), and `draft` waits in the message box (sent at once
    with `autosend`)."""
    picker = _picker(request)
    route = next_route(session)
    return TemplateResponse(request, "chat.html", {
        **sidebar(request), "session": session, "history": [], "picker": picker, "selected": session.model_id,
        "import_model": starting_model(request.user, picker),
        "settings_form": ChatSettingsForm.for_first_message(session, reasoning_of(session, route), data),
        "member": str(route.ref) if route is not None and route.pool else "",
        "presets": Preset.objects.filter(user=request.user).exclude(name=""), "preset": preset,
        "draft": draft, "autosend": autosend,
    }, status=status)


@require_POST
def chat_start(request: HtmxHttpRequest) -> HttpResponseBase:
    """Home's message box: the new chat's page with the posted model, which sends the question typed."""
    try:
        model_id = chosen_model(request, request.POST.get("model_id", ""))
    except RoutingError as exc:
        messages.error(request, f"Cannot start a chat: {exc}")
        return redirect("chat_index")
    if content := request.POST.get("content", "").strip():
        request.session[DRAFT_KEY] = content
    return redirect(f"{reverse('chat_new')}?{urlencode({'model': model_id})}")
