"""Chat pages and the streamed send."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db import IntegrityError
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from boochat import database
from boochat.chat import attachments, export, imports, search
from boochat.chat.autosave import interrupt_stale_answers
from boochat.chat.forms import ChatSettingsForm
from boochat.chat.prompt import active_messages, estimate_tokens, upstream_messages
from boochat.chat.relay import relay
from boochat.chat.titles import generate_title
from boochat.chat.turns import NewTurn, begin_turn, start_turn
from boochat.models import TITLE_MAX_LENGTH, Attachment, ChatSession, Message
from boochat.proxy import UpstreamError, sse_response
from providers.catalog import load_catalog
from providers.context import context_size_for
from providers.routing import RoutingError, resolve
from settings_app.models import Favorite, UserSettings
from settings_app.normalize import normalize_model_id
from settings_app.picker import build_picker
from settings_app.requests import HtmxHttpRequest

MAX_MESSAGE_CHARS = 200_000


CHATS_PER_PAGE = 50


def _sessions(request: HtmxHttpRequest) -> Page[ChatSession]:
    """One page of the user's chats (`?page=`), pinned first, then the latest."""
    chats = ChatSession.objects.for_user(request.user).only("id", "title", "model_id", "updated_at", "pinned")
    return Paginator(chats, CHATS_PER_PAGE).get_page(request.GET.get("page"))


def _context_usage(session: ChatSession, messages: list[Message]) -> dict[str, object] | None:
    """Tokens in use (the host's own count from the last answer when there is one) and available."""
    try:
        size = context_size_for(session.model_id)
        route = resolve(session.model_id)
    except RoutingError:
        return None
    used = next((m.usage["total_tokens"] for m in reversed(messages) if m.usage and m.usage.get("total_tokens")), None)
    if used is not None:
        exact = True
    else:
        compaction, active = active_messages(session)
        prepared = upstream_messages(route, compaction, active, system_prompt=session.system_prompt)
        used, exact = estimate_tokens(prepared), False
    return {"used": used, "available": size.tokens, "source": size.source, "exact": exact,
            "percent": min(100, round(100 * used / max(1, size.tokens)))}


@require_GET
def chat_index(request: HtmxHttpRequest) -> TemplateResponse:
    """The chat start page: past sessions and a form to start a new one."""
    picker = build_picker(load_catalog(), Favorite.objects.ids_for(request.user))
    # "Chat with this" on /models/ links here with the model chosen.
    chosen = request.GET.get("model") or UserSettings.for_user(request.user).default_model
    return TemplateResponse(request, "chat.html", {"sessions": _sessions(request), "session": None,
                                                   "picker": picker, "selected": chosen})


@require_POST
def chat_new(request: HtmxHttpRequest) -> HttpResponseBase:
    """Start a session with the posted model (or the user's default, or the first favorite)."""
    chosen = request.POST.get("model_id") or UserSettings.for_user(request.user).default_model
    if not chosen:
        chosen = next(iter(Favorite.objects.ids_for(request.user)), "")
    if not chosen:
        chosen = next((m.id for m in load_catalog().models), "")
    try:
        model_id = normalize_model_id(chosen)
    except RoutingError as exc:
        messages.error(request, f"Cannot start a chat: {exc}")
        return redirect("chat_index")
    session = ChatSession.objects.create(user=request.user, model_id=model_id)
    return redirect(session)


@require_GET
def chat_session(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    """One session: its messages (compacted ones marked), the composer, and context use."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    interrupt_stale_answers(Message, session=session)
    history = list(session.messages.prefetch_related(attachments.shown_with_messages()))
    compaction = session.latest_compaction()
    catalog = load_catalog()
    try:
        selected = normalize_model_id(session.model_id)
    except RoutingError:
        selected = session.model_id
    context = {
        "sessions": _sessions(request),
        "session": session,
        "history": history,
        "compacted_through": compaction.through_message_id if compaction else 0,
        "compactions": list(session.compactions.all()),
        "picker": build_picker(catalog, Favorite.objects.ids_for(request.user)),
        "selected": selected,
        "usage": _context_usage(session, history),
        "settings_form": ChatSettingsForm.for_session(session),
    }
    return TemplateResponse(request, "chat.html", context)


@require_POST
def chat_set_model(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Change the session's model; always stored as a composite id."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    try:
        session.model_id = normalize_model_id(request.POST.get("model_id", ""))
    except RoutingError as exc:
        if request.htmx:
            return HttpResponse(f"Cannot use this model: {exc}", status=400, content_type="text/plain; charset=utf-8")
        messages.error(request, f"Cannot use this model: {exc}")
        return redirect(session)
    session.save(update_fields=["model_id", "updated_at"])
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return redirect(session)


@require_GET
def chat_message(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    """One saved message, rendered (the page swaps it in when a stream ends)."""
    message = get_object_or_404(Message.objects.select_related("session"), pk=pk, session__user=request.user)
    if interrupt_stale_answers(Message, pk=message.pk):
        message.refresh_from_db()
    compaction = message.session.latest_compaction()
    return TemplateResponse(request, "chat.html#message", {
        "message": message, "compacted_through": compaction.through_message_id if compaction else 0,
    })


def _send_error(request: HtmxHttpRequest, session: ChatSession, status: int, message: str, **extra: str) -> HttpResponseBase:
    if request.headers.get("X-BooChat-Stream") == "1":
        response = JsonResponse({"error": message}, status=status)
        for name, value in extra.items():
            response[name] = value
        return response
    messages.error(request, message)
    return redirect(session)


async def answer_send(request: HtmxHttpRequest, session: ChatSession, turn: NewTurn) -> HttpResponseBase:
    """Ask the host and relay its answer: the SSE bytes as they arrive with `X-BooChat-Stream: 1`
    (the page's script); a plain form post waits for the whole answer and redirects back."""
    try:
        started = await start_turn(session, turn)
    except UpstreamError as exc:
        extra = {"Retry-After": exc.retry_after} if exc.retry_after else {}
        return _send_error(request, session, exc.status, str(exc), **extra)

    if request.headers.get("X-BooChat-Stream") != "1":
        async for _ in relay(started):
            pass
        if not session.title:
            await generate_title(session)
        return redirect(session)
    return sse_response(relay(started), headers={"X-BooChat-Message": str(started.answer.pk),
                                                 "X-BooChat-Provider": started.route.provider})


def _begin_send(request: HtmxHttpRequest, pk: int) -> tuple[ChatSession, NewTurn | HttpResponseBase]:
    """The user's chat and its new turn, saved; or the response that says why not."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    content = request.POST.get("content", "").strip()
    if not content:
        return session, _send_error(request, session, 400, "The message is empty.")
    if len(content) > MAX_MESSAGE_CHARS:
        return session, _send_error(request, session, 413, f"The message is longer than {MAX_MESSAGE_CHARS} characters.")
    try:
        uploads = attachments.read_uploads(request.FILES.getlist("attachments"))
        attachments.check_images_allowed(session.model_id, uploads)
    except attachments.AttachmentError as exc:
        return session, _send_error(request, session, exc.status, f"Nothing was sent: {exc}")
    try:
        return session, begin_turn(session, content, uploads)
    except RoutingError as exc:
        return session, _send_error(request, session, 400, str(exc))
    except IntegrityError:  # the chat was deleted a moment ago
        return session, _send_error(request, session, 404, "This chat was deleted.")


@require_POST
async def chat_send(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Save the user's message and stream the answer from the session's resolved host."""
    # One trip to a thread for the login, the chat and the turn; the connection goes back to the pool
    # after it, since the answer may stream for minutes.
    session, turn = await database.run(_begin_send, request, pk)
    if not isinstance(turn, NewTurn):
        return turn
    return await answer_send(request, session, turn)


@require_POST
def chat_rename(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Rename a chat; htmx gets the title (and the list's link) back, a plain form the chat page."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    title = " ".join(request.POST.get("title", "").split())
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


@require_POST
def chat_settings(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Save the chat's system prompt and parameters; htmx gets the panel back (with errors if any)."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    form = ChatSettingsForm.for_session(session, request.POST)
    saved = form.is_valid()
    if saved:
        form.save(session)
    if request.htmx:
        return TemplateResponse(request, "chat.html#chat_settings", {"session": session, "settings_form": form,
                                                                     "saved": saved})
    if not saved:
        messages.error(request, "Prompt and parameters not saved: " + "; ".join(
            f"{form.fields[name].label or name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()))
    return redirect(session)


@require_POST
def chat_pin(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Pin (`pinned=1`) or unpin a chat: pinned chats head the list."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    ChatSession.objects.filter(pk=session.pk).update(pinned=request.POST.get("pinned") == "1")
    return redirect(session)


@require_http_methods(["GET", "POST"])
def chat_delete(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Ask, then delete a chat with all its messages; an answer still streaming for it stops."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    if request.method == "GET":
        return TemplateResponse(request, "chat_delete.html", {"session": session})
    session.delete()
    messages.success(request, f"Deleted “{session}”.")
    return redirect("chat_index")


@require_GET
def chat_search(request: HtmxHttpRequest) -> TemplateResponse:
    """Chats whose title or messages match `q`; each hit opens the chat at its message."""
    query = request.GET.get("q", "").strip()[:200]
    return TemplateResponse(request, "chat_search.html", {"query": query, "hits": search.search_chats(request.user, query),
                                                         "sessions": _sessions(request)})


@require_GET
def chat_export(request: HtmxHttpRequest, pk: int, extension: str) -> HttpResponseBase:
    """One chat as a Markdown or JSON file."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    history = list(session.messages.all())
    if extension == "md":
        response: HttpResponseBase = HttpResponse(export.chat_as_markdown(session, history),
                                                  content_type="text/markdown; charset=utf-8")
    else:
        response = JsonResponse(export.chat_as_json(session, history), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{export.filename(session, extension)}"'
    return response


@require_POST
def chat_import(request: HtmxHttpRequest) -> HttpResponseBase:
    """Import the chats of an export file (BooChat, Open WebUI, ChatGPT): all of them, or none."""
    upload = request.FILES.get("file")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        if upload is None:
            raise imports.BadExport("Choose an export file to import.")
        if upload.size is not None and upload.size > limit:
            raise imports.BadExport(f"The file is larger than {limit} bytes (BOOCHAT_MAX_BODY_BYTES).")
        report = imports.import_chats(request.user, imports.read_export(upload.read()))
    except imports.BadExport as exc:
        messages.error(request, f"Nothing was imported: {exc}")
        return redirect("chat_index")
    mapped = ", ".join(f"{name} → {composite}" for name, composite in sorted(report.mapped.items()))
    unknown = ", ".join(sorted(report.unknown))
    messages.success(request, f"Imported {report.chats} chat{'s' if report.chats != 1 else ''} with {report.messages} "
                              f"messages." + (f" Models found: {mapped}." if mapped else "")
                              + (f" Kept as text (no host serves them): {unknown}." if unknown else ""))
    return redirect("chat_index")


@require_GET
def chat_export_all(request: HtmxHttpRequest) -> JsonResponse:
    """All of the user's chats as one JSON file."""
    response = JsonResponse(export.all_chats_as_json(request.user), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = 'attachment; filename="boochat-chats.json"'
    return response


@require_POST
async def chat_title(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Give an untitled session a title (task model, see README); returns the title fragment."""
    session = await aget_object_or_404(ChatSession, user_id=(await request.auser()).pk, pk=pk)
    if not session.title:
        await generate_title(session)
    return TemplateResponse(request, "chat.html#session_title", {"session": session, "oob": True})


@require_GET
def chat_attachment(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A file attached to one of the user's questions: an image as it was sent, a text file or PDF as
    the text the model got."""
    attachment = get_object_or_404(Attachment, pk=pk, message__session__user=request.user)
    if attachment.is_image:
        response = HttpResponse(bytes(attachment.data), content_type=attachment.media_type)
    else:
        response = HttpResponse(attachment.text, content_type="text/plain; charset=utf-8")
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=86400"
    return response
