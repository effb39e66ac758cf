"""The list of a user's chats and what is done to whole chats: search, rename, pin, delete, export
and import; and the user's presets. A new chat: new_chat_views.py; archive, trash and folders:
organize_views.py."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from boochat.chat import export, imports, search
from boochat.chat.branches import Tree
from boochat.chat.organize_views import trash, undo_offer
from boochat.chat.starting_model import starting_model
from boochat.models import TITLE_MAX_LENGTH, ChatSession, Folder, Message, MessageState, Preset
from providers.access import catalog_for
from providers.routing import RoutingError
from settings_app.models import Favorite
from settings_app.normalize import chat_model_id
from settings_app.picker import build_picker
from settings_app.requests import HtmxHttpRequest
from settings_app.text import cut, unstorable

CHATS_PER_PAGE = 50


def chat_list(request: HtmxHttpRequest) -> Page[ChatSession]:
    """One page of the user's listed chats (`?page=`: not archived), pinned first, then the latest;
    `answering` marks those with an answer being written."""
    answering = Message.objects.filter(session=OuterRef("pk"), state=MessageState.STREAMING)
    chats = (ChatSession.objects.for_user(request.user).listed()
             .only("id", "title", "model_id", "updated_at", "pinned", "folder_id")
             .annotate(answering=Exists(answering)))
    return Paginator(chats, CHATS_PER_PAGE).get_page(request.GET.get("page"))


def sidebar(request: HtmxHttpRequest) -> dict[str, object]:
    """What the chat list beside a chat needs: a page of chats, the user's folders, and the Undo of a
    delete just made."""
    return {"sessions": chat_list(request), "folders": list(Folder.objects.filter(user=request.user)),
            "undo": undo_offer(request)}


@require_GET
def chat_index(request: HtmxHttpRequest) -> TemplateResponse:
    """The chat start page: past sessions and a form to start a new one."""
    return _start_page(request)


def _start_page(request: HtmxHttpRequest, status: int = 200) -> TemplateResponse:
    picker = build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user), chat=True)
    # "Chat with this" on /models/ links here with the model chosen.
    starting = starting_model(request.user, picker)
    return TemplateResponse(request, "chat.html", {**sidebar(request), "session": None,
                                                   "picker": picker, "selected": request.GET.get("model") or starting,
                                                   "import_model": starting,
                                                   "presets": Preset.objects.filter(user=request.user).exclude(name="")},
                            status=status)


@require_POST
def chat_rename(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Rename a chat; htmx gets the title (and the list's link) back, a plain form the chat page."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    title = " ".join(request.POST.get("title", "").split())
    if problem := unstorable(title):
        return HttpResponse(f"Not renamed: the title contains {problem}, which cannot be stored.", status=400,
                            content_type="text/plain; charset=utf-8")
    error = ("The title is empty." if not title else
             f"The title is longer than {TITLE_MAX_LENGTH} characters." if len(title) > TITLE_MAX_LENGTH else "")
    if not error:
        session.title = title
        ChatSession.objects.filter(pk=session.pk).update(title=title, title_claimed_at=timezone.now())
    if request.htmx:
        return TemplateResponse(request, "chat.html#session_title", {"session": session, "oob": True, "error": error})
    if error:
        messages.error(request, error)
    return redirect(session)


@require_http_methods(["GET", "POST"])
def presets(request: HtmxHttpRequest) -> HttpResponseBase:
    """The user's presets and model defaults (they are made from a chat's panel); POST `delete` removes one."""
    mine = Preset.objects.filter(user=request.user)
    if request.method == "POST":
        deleted, _ = mine.filter(pk=request.POST.get("delete", "")).delete() if request.POST.get("delete", "").isdigit() else (0, {})
        if not deleted:
            messages.error(request, "No such preset (deleted already?).")
        return redirect("presets")
    return TemplateResponse(request, "presets.html", {"presets": mine})


@require_POST
def chat_pin(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Pin (`pinned=1`) or unpin a chat: pinned chats head the list."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    ChatSession.objects.filter(pk=session.pk).update(pinned=request.POST.get("pinned") == "1")
    return redirect(session)


@require_http_methods(["GET", "POST"])
def chat_delete(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """POST: move a chat to the trash, with an Undo on the next page (BOOCHAT_TRASH_DAYS=0: delete it
    now); an answer still streaming for it stops. GET: a page that asks first (for links)."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    if request.method == "GET":
        return TemplateResponse(request, "chat_delete.html", {"session": session,
                                                              "days": settings.BOOCHAT_TRASH_DAYS})
    trash(request, [session])
    return redirect("chat_index")


@require_GET
def chat_search(request: HtmxHttpRequest) -> TemplateResponse:
    """Chats whose title or messages match `q`; each hit opens the chat at its message."""
    query = request.GET.get("q", "").strip()[:200]
    if problem := unstorable(query):
        messages.error(request, f"Nothing was searched: the search contains {problem}, which no chat can hold.")
        return TemplateResponse(request, "chat_search.html", {"query": query, "hits": [], "sessions": chat_list(request)},
                                status=400)
    return TemplateResponse(request, "chat_search.html", {"query": query, "hits": search.search_chats(request.user, query),
                                                         "sessions": chat_list(request)})


@require_GET
def chat_export(request: HtmxHttpRequest, pk: int, extension: str) -> HttpResponseBase:
    """One chat as a Markdown or JSON file."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    tree = Tree(session.messages.all())
    if extension == "md":
        response: HttpResponseBase = HttpResponse(export.chat_as_markdown(session, tree.shown(session.shown_leaf_id)),
                                                  content_type="text/markdown; charset=utf-8")
    else:
        response = JsonResponse(export.chat_as_json(session, list(tree.by_id.values())), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{export.filename(session, extension)}"'
    return response


@require_POST
def chat_import(request: HtmxHttpRequest) -> HttpResponseBase:
    """Import the chats of an export file (BooChat, Open WebUI, ChatGPT): all of them, or none."""
    upload = request.FILES.get("file")
    limit = settings.BOOCHAT_MAX_IMPORT_BYTES
    try:
        if upload is None:
            raise imports.BadExport("Choose an export file to import.")
        if upload.size is not None and upload.size > limit:
            raise imports.BadExport(f"The file is larger than {limit} bytes (BOOCHAT_MAX_IMPORT_BYTES).")
        chats = imports.read_export(upload.read())
        continue_with = _continue_with(request)
        report = imports.import_chats(request.user, chats, continue_with=continue_with)
    except imports.BadExport as exc:
        messages.error(request, f"Nothing was imported: {exc}")
        return _start_page(request, status=exc.status)
    mapped = _listed(f"{name} → {composite}" for name, composite in sorted(report.mapped.items()))
    unknown = _listed(sorted(report.unknown))
    n = report.left_out
    left_out = (f" {n} message{'s' if n != 1 else ''} in a cycle {'were' if n != 1 else 'was'} left out (following "
                "their parents leads back to them, never to the start of the chat)." if n else "")
    messages.success(request, f"Imported {report.chats} chat{'s' if report.chats != 1 else ''} with {report.messages} "
                              f"messages." + (f" Models found: {mapped}." if mapped else "")
                              + (f" Kept as text (no host serves them): {unknown}." if unknown else "") + left_out
                              + (f" {report.continued} chat{'s' if report.continued != 1 else ''} continue with "
                                 f"{continue_with or 'their own model (none is served here)'}."
                                 if report.continued else ""))
    return redirect("chat_index")


def _continue_with(request: HtmxHttpRequest) -> str:
    """The model chosen to continue imported chats whose model no host serves (default: the one a new
    chat would start with); BadExport when it cannot be used."""
    chosen = request.POST.get("continue_with", "").strip()
    if not chosen:
        return starting_model(request.user, build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user), chat=True))
    try:
        return chat_model_id(chosen)
    except RoutingError as exc:
        raise imports.BadExport(f"The model to continue with cannot be used: {exc}.") from None


def _listed(names: Iterable[str], most: int = 10) -> str:
    """The first `most` of `names`, each cut short, and how many more: a report stays small."""
    names = list(names)
    return ", ".join(cut(name) for name in names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


@require_GET
def chat_export_all(request: HtmxHttpRequest) -> JsonResponse:
    """All of the user's chats as one JSON file."""
    response = JsonResponse(export.all_chats_as_json(request.user), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = 'attachment; filename="boochat-chats.json"'
    return response
