"""One chat: its page, the streamed send, and what is done to its messages (edit and resend,
regenerate on any host, branches, delete a turn)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, OperationalError, transaction
from django.http import HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from boochat import database
from boochat.autosave import interrupt_stale_answers
from boochat.chat import attachments, jobs
from boochat.chat.branches import Tree, page_of
from boochat.chat.forms import ChatSettingsForm
from boochat.chat.library_views import sidebar
from boochat.chat.new_chat_views import (
    chosen_model,
    chosen_preset,
    chosen_tools,
    new_chat_page,
    next_route,
    offered_tools,
    reasoning_of,
    render_new_chat,
    unsaved_chat,
)
from boochat.chat.prompt import estimated_tokens_of, latest_compaction
from boochat.chat.starting_model import starting_model
from boochat.chat.titles import generate_title
from boochat.chat.turns import CannotContinue, NewTurn, begin_continue, begin_edit, begin_regenerate, begin_turn
from boochat.limits import LimitReached
from boochat.models import Attachment, ChatSession, Message, MessageState, ToolDecision, UsageRecord
from boochat.proxy import sse_response
from boochat.usage.recording import admit_answer
from providers.access import ModelNotAllowed, access_for, catalog_for, check_model
from providers.context import context_size_for
from providers.routing import Route, RoutingError, UnknownModel
from providers.upstream import UpstreamError
from settings_app.models import Favorite
from settings_app.normalize import chat_model_id, normalize_model_id
from settings_app.picker import build_picker
from settings_app.requests import HtmxHttpRequest
from settings_app.text import unstorable
from tools.catalog import servers_now

MAX_MESSAGE_CHARS = 200_000


def _context_usage(session: ChatSession, branch_ids: list[int], route: Route | None) -> dict[str, object] | None:
    """Tokens the shown branch uses (the host's own count from its last answer when there is one) and available."""
    if route is None:
        return None
    try:
        size = context_size_for(session.model_id)
    except RoutingError:
        return None
    on_branch = set(branch_ids)
    counted = (Message.objects.filter(session=session, usage__total_tokens__gt=0).order_by("-pk")
               .values_list("pk", "usage__total_tokens"))
    used = next((tokens for pk, tokens in counted.iterator(chunk_size=100) if pk in on_branch), None)
    if used is not None:
        exact = True
    else:
        used, exact = estimated_tokens_of(session, route, branch_ids), False
    return {"used": used, "available": size.tokens, "source": size.source, "exact": exact,
            "percent": min(100, round(100 * used / max(1, size.tokens)))}


def _message_id(request: HtmxHttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


@require_GET
def chat_session(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """One session: the latest turns of the branch it shows (compacted messages marked), the composer,
    and context use. `?before=<message>` shows the turns before that one's (htmx: only them, to go
    above it); `?at=<message>` shows the branch and the turns that hold that message (a search hit)."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    if request.GET.get("before", "").strip() and _message_id(request, "before") is None:
        return HttpResponse("`before` must be the id of a message of this chat.", status=400,
                            content_type="text/plain; charset=utf-8")
    interrupt_stale_answers(Message, session=session)
    tree = Tree.shape_of(session)
    at = tree.by_id.get(_message_id(request, "at") or 0)
    if at is not None and at not in tree.shown(session.shown_leaf_id):
        _show(session, tree.latest_leaf(at).pk)
    branch = tree.shown(session.shown_leaf_id)
    branch_ids = [m.pk for m in branch]
    page = page_of(branch, settings.BOOCHAT_CHAT_PAGE_TURNS, before=_message_id(request, "before"),
                   around=at.pk if at else None)
    loaded = session.messages.filter(pk__in=page.messages).prefetch_related(attachments.shown_with_messages()).in_bulk()
    history = [loaded[pk] for pk in page.messages if pk in loaded]
    compaction = latest_compaction(session, branch_ids)
    context: dict[str, object] = {
        "session": session,
        "history": history,
        "branches": tree.navigation(tree.by_id[pk] for pk in page.messages),
        "compacted_through": compaction.through_message_id if compaction else 0,
        "earlier_url": f"{session.get_absolute_url()}?before={page.earlier}" if page.earlier else "",
    }
    if request.htmx and "before" in request.GET:
        response = TemplateResponse(request, "chat.html#earlier", context)
    else:
        catalog = catalog_for(request.user.pk)
        try:
            selected = normalize_model_id(session.model_id)
        except RoutingError:
            selected = session.model_id
        picker = build_picker(catalog, Favorite.objects.ids_for(request.user), chat=True)
        route = next_route(session)
        context.update({
            **sidebar(request),
            "import_model": starting_model(request.user, picker),
            "later_url": (f"{session.get_absolute_url()}?before={page.later_before}" if page.later_before
                          else session.get_absolute_url()) if page.later else "",
            "compactions": list(session.compactions.all()),
            "picker": picker,
            "selected": selected,
            "usage": _context_usage(session, branch_ids, route),
            "settings_form": ChatSettingsForm.for_session(session, reasoning_of(session, route)),
            "member": str(route.ref) if route is not None and route.pool else "",
            "tool_servers": offered_tools(request, route),
            "shares": list(session.shares.filter(revoked_at__isnull=True)),
            "trash_days": settings.BOOCHAT_TRASH_DAYS,
        })
        response = TemplateResponse(request, "chat.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
def chat_tools(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Turn tool servers (by slug) or single tools (by function name) on for this chat: the posted
    `tools`, all of them, replace the chat's choice. htmx gets the control back."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    servers = servers_now(request.user)
    try:
        session.tools = chosen_tools(request, servers)
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    session.save(update_fields=["tools", "updated_at"])
    if request.htmx:
        return TemplateResponse(request, "chat.html#tools_control", {"session": session, "tool_servers": servers,
                                                                     "keep_open": True})
    messages.success(request, "Tools saved: the next answer may use them.")
    return redirect(session)


def _show(session: ChatSession, leaf_id: int | None) -> None:
    session.shown_leaf_id = leaf_id
    ChatSession.objects.filter(pk=session.pk).update(shown_leaf=leaf_id)


@require_POST
def chat_branch(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Show the branch through the posted `message` (a sibling chosen with ‹ ›), down to its newest end."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    tree = Tree.shape_of(session)
    chosen = tree.by_id.get(int(request.POST["message"])) if request.POST.get("message", "").isdigit() else None
    if chosen is None:
        return HttpResponse("No such message in this chat.", status=400, content_type="text/plain; charset=utf-8")
    _show(session, tree.latest_leaf(chosen).pk)
    return redirect(session)


@require_POST
def chat_set_model(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Change the session's model; always stored as a composite id."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    try:
        session.model_id = check_model(access_for(request.user.pk), chat_model_id(request.POST.get("model_id", "")))
    except RoutingError as exc:
        if request.htmx:
            return HttpResponse(f"Cannot use this model: {exc}", status=400, content_type="text/plain; charset=utf-8")
        messages.error(request, f"Cannot use this model: {exc}")
        return redirect(session)
    session.save(update_fields=["model_id", "updated_at"])
    if request.htmx:
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return redirect(session)


def _owned_message(request: HtmxHttpRequest, pk: int, **conditions: object) -> Message:
    return get_object_or_404(Message.objects.select_related("session"), pk=pk, session__user=request.user,
                             session__deleted_at__isnull=True, **conditions)


def _owned_answer(request: HtmxHttpRequest, pk: int) -> int | None:
    return Message.objects.filter(pk=pk, session__user=request.user, role=Message.Role.ASSISTANT).values_list(
        "pk", flat=True).first()


@require_GET
async def chat_answer_stream(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Follow an answer by SSE, from where the reader left it (`Last-Event-ID`, or `?after=`) or
    from its start: the sender after a network drop, a reload, another tab or device."""
    after = request.headers.get("Last-Event-ID", request.GET.get("after", "0")).strip() or "0"
    if not after.isdigit():
        return HttpResponse("Last-Event-ID must be the number of an event of this answer.", status=400,
                            content_type="text/plain; charset=utf-8")
    if await database.run(_owned_answer, request, pk) is None:
        return HttpResponse("No such answer.", status=404, content_type="text/plain; charset=utf-8")
    return sse_response(jobs.follow(pk, int(after)), headers={"X-BooChat-Message": str(pk)})


@require_POST
async def chat_stop(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Stop the chat's answer being written, from any tab, device, worker or instance; what arrived is kept."""
    answers = await database.run(_streaming_answers, request, pk)
    if answers is None:
        return HttpResponse("No such chat.", status=404, content_type="text/plain; charset=utf-8")
    for answer_pk in answers:
        await jobs.stop_answer(answer_pk)
    if request.headers.get("X-BooChat-Stream") == "1" or request.htmx:
        return HttpResponse(status=204)
    return redirect("chat_session", pk=pk)


@require_POST
async def chat_tool_decision(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """The user's choice for a tool call waiting for approval (`call`, `choice`: run, always or deny),
    from any tab, device, worker or instance; the answer's job reads it and goes on."""
    choice, call_id = request.POST.get("choice", ""), request.POST.get("call", "")
    if choice not in ToolDecision.Choice.values:
        return HttpResponse("`choice` must be run, always or deny.", status=400, content_type="text/plain; charset=utf-8")
    found = await database.run(_decide, request, pk, call_id, choice)
    if found is None:
        return HttpResponse("No such tool call waits for approval in your answers.", status=404,
                            content_type="text/plain; charset=utf-8")
    await jobs.tool_decided(pk)
    if request.headers.get("X-BooChat-Stream") == "1" or request.htmx:
        return HttpResponse(status=204)
    return redirect("chat_session", pk=found)


def _decide(request: HtmxHttpRequest, pk: int, call_id: str, choice: str) -> int | None:
    """Save the decision (the first one wins); "always" also lets this chat run the tool without asking.
    The chat's id, or None if no such call waits in the user's streaming answers."""
    answer = Message.objects.filter(pk=pk, session__user=request.user, session__deleted_at__isnull=True,
                                    role=Message.Role.ASSISTANT, state=MessageState.STREAMING).select_related("session").first()
    call = next((c for r in answer.tool_rounds for c in r["calls"] if c["id"] == call_id), None) if answer else None
    if answer is None or call is None or call["state"] != "waiting":
        return None
    try:
        with transaction.atomic():
            ToolDecision.objects.create(answer=answer, call_id=call_id, choice=choice)
    except IntegrityError:  # decided already, in another tab
        return answer.session_id
    if choice == ToolDecision.Choice.ALWAYS:
        with transaction.atomic():
            session = ChatSession.objects.select_for_update().get(pk=answer.session_id)
            if call["function"] not in session.tools_always:
                session.tools_always = [*session.tools_always, call["function"]]
                session.save(update_fields=["tools_always"])
    return answer.session_id


def _streaming_answers(request: HtmxHttpRequest, pk: int) -> list[int] | None:
    session = ChatSession.objects.for_user(request.user).filter(pk=pk).first()
    if session is None:
        return None
    return list(session.messages.filter(role=Message.Role.ASSISTANT, state=MessageState.STREAMING).values_list("pk", flat=True))


@require_GET
def chat_message(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    """One saved message, rendered (the page swaps it in when a stream ends)."""
    message = _owned_message(request, pk)
    if interrupt_stale_answers(Message, pk=message.pk):
        message.refresh_from_db()
    tree = Tree.shape_of(message.session)
    compaction = latest_compaction(message.session, (m.pk for m in tree.path_to(message.pk)))
    return TemplateResponse(request, "chat.html#message", {
        "message": message, "branches": tree.navigation([message]), "session": message.session,
        "compacted_through": compaction.through_message_id if compaction else 0,
    })


def _send_error(request: HtmxHttpRequest, session: ChatSession, status: int, message: str, **extra: str) -> HttpResponseBase:
    if request.headers.get("X-BooChat-Stream") == "1":
        response = JsonResponse({"error": message}, status=status)
        for name, value in extra.items():
            response[name] = value
        return response
    messages.error(request, message)
    if session.pk is None:  # a new chat's first message: chat_new shows its page again
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    return redirect(session)


async def answer_send(request: HtmxHttpRequest, session: ChatSession, turn: NewTurn) -> HttpResponseBase:
    """Start the answer's job and follow it: the SSE as it is written with `X-BooChat-Stream: 1` (the
    page's script); a plain form post waits for the whole answer, or a tool call waiting for approval,
    and redirects back. The job goes on if the browser leaves."""
    job = jobs.start_job(session, turn)
    try:
        route = await asyncio.shield(job.started)
    except UpstreamError as exc:
        extra = {"Retry-After": exc.retry_after} if exc.retry_after else {}
        return _send_error(request, session, exc.status, str(exc), **extra)

    if request.headers.get("X-BooChat-Stream") != "1":
        async for piece in jobs.follow(job.answer_pk):
            if b"event: tool" in piece and b'"state":"waiting"' in piece:
                return redirect(session)  # a tool call waits for the user's approval: the page asks for it
        if not session.title:
            await generate_title(session)
        return redirect(session)
    headers = {"X-BooChat-Message": str(job.answer_pk), "X-BooChat-Provider": route.provider if route else "",
               "X-BooChat-Follow": reverse("chat_answer_stream", args=[job.answer_pk])}
    if turn.answer.parent_id:  # the page shows the saved question at once: the answer's end then moves nothing
        headers["X-BooChat-Question"] = reverse("chat_message", args=[turn.answer.parent_id])
    return sse_response(jobs.follow(job.answer_pk), headers=headers)


def _begin(request: HtmxHttpRequest, session: ChatSession, begin: Callable[[str], NewTurn], *,
           question: bool = True, model_id: str = "") -> NewTurn | HttpResponseBase:
    """The turn `begin` saves with the posted question (if it asks one); or the response that says why
    not (nothing saved): the message, the user's model access, their limits."""
    content = request.POST.get("content", "").strip()
    if question and not content:
        return _send_error(request, session, 400, "The message is empty.")
    if len(content) > MAX_MESSAGE_CHARS:
        return _send_error(request, session, 413, f"The message is longer than {MAX_MESSAGE_CHARS} characters.")
    if problem := unstorable(content):
        return _send_error(request, session, 400, f"Nothing was sent: the message contains {problem}, which cannot be stored.")
    try:
        meter = admit_answer(request.user.pk, model_id or session.model_id, UsageRecord.Source.CHAT)
    except ModelNotAllowed as exc:
        return _send_error(request, session, 403, str(exc))
    except RoutingError:
        meter = None  # begin() saves the answer as failed, saying why
    except LimitReached as exc:
        return _send_error(request, session, 429, str(exc), **{"Retry-After": str(exc.retry_after)})
    try:
        turn = _saved_turn(request, session, begin, content)
    except BaseException:
        if meter is not None:
            meter.release()
        raise
    if isinstance(turn, NewTurn):
        turn.meter = meter
    elif meter is not None:
        meter.release()
    return turn


def _saved_turn(request: HtmxHttpRequest, session: ChatSession, begin: Callable[[str], NewTurn],
                content: str) -> NewTurn | HttpResponseBase:
    try:
        return begin(content)
    except UnknownModel as exc:
        return _send_error(request, session, 404, str(exc))
    except RoutingError as exc:
        return _send_error(request, session, 400, str(exc))
    except IntegrityError:  # the chat, or the message the turn follows, was deleted a moment ago
        return _send_error(request, session, 404, "This chat or message was deleted.")
    except OperationalError:  # SQLite's write lock not had within its timeout: too many sends at once
        return _send_error(request, session, 503, "BooChat could not save the message just now (its database is busy): "
                                                  "send it again.",
                           **{"Retry-After": "5"})


def _begin_send(request: HtmxHttpRequest, pk: int) -> tuple[ChatSession, NewTurn | HttpResponseBase]:
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    return session, _begin_question(request, session)


def _begin_question(request: HtmxHttpRequest, session: ChatSession) -> NewTurn | HttpResponseBase:
    """The posted question and files, a new turn of `session` (a new chat is saved with it), or why not."""
    try:
        uploads = attachments.read_uploads(request.FILES.getlist("attachments"))
        attachments.check_images_allowed(session.model_id, uploads)
    except attachments.AttachmentError as exc:
        return _send_error(request, session, exc.status, f"Nothing was sent: {exc}")
    return _begin(request, session, lambda content: begin_turn(session, content, uploads))


def _begin_first_send(request: HtmxHttpRequest) -> tuple[ChatSession, NewTurn | HttpResponseBase]:
    """A new chat with the posted model and the page's prompt and parameters (without them: the
    chosen `preset`'s, else the model's defaults), saved with its first turn; or nothing saved."""
    session = ChatSession(user=request.user)
    try:
        session.model_id = chosen_model(request, request.POST.get("model_id", ""))
        preset = chosen_preset(request, request.POST.get("preset", ""))
    except ModelNotAllowed as exc:
        return session, _send_error(request, session, 403, f"Nothing was sent: {exc}")
    except (RoutingError, ValueError) as exc:
        return session, _send_error(request, session, 400, f"Nothing was sent: cannot start a chat: {exc}")
    started = unsaved_chat(request, session.model_id, preset)
    if "tools" in request.POST:  # the page's Tools control (its empty marker when nothing is on)
        try:
            session.tools = chosen_tools(request, servers_now(request.user))
        except ValueError as exc:
            return session, _send_error(request, session, 400, f"Nothing was sent: {exc}")
    else:
        session.tools = started.tools
    form = ChatSettingsForm.for_first_message(session, reasoning_of(session), request.POST)
    if not any(name in request.POST for name in form.fields):
        session.system_prompt, session.parameters = started.system_prompt, started.parameters
    elif problem := unstorable(request.POST.get("system_prompt", "")):
        return session, _send_error(request, session, 400,
                                    f"Nothing was sent: the system prompt contains {problem}, which cannot be stored.")
    elif not form.is_valid():
        return session, _send_error(request, session, 400, f"Nothing was sent: {form.problems}")
    else:
        form.apply(session)
    return session, _begin_question(request, session)


def _refused_first_message(request: HtmxHttpRequest, session: ChatSession, status: int) -> TemplateResponse:
    """The new chat's page again after its first message was refused (a plain form): the question and
    the panel as they were sent, the reason above them."""
    return render_new_chat(request, session, draft=request.POST.get("content", ""), status=status,
                           data=request.POST if "system_prompt" in request.POST else None)


def _begin_edit(request: HtmxHttpRequest, pk: int) -> tuple[ChatSession, NewTurn | HttpResponseBase]:
    edited = _owned_message(request, pk, role=Message.Role.USER)
    return edited.session, _begin(request, edited.session, lambda content: begin_edit(edited.session, edited, content))


def _begin_regenerate(request: HtmxHttpRequest, pk: int) -> tuple[ChatSession, NewTurn | HttpResponseBase]:
    answer = _owned_message(request, pk, role=Message.Role.ASSISTANT, parent__isnull=False)
    session = answer.session
    try:
        model_id = chat_model_id(request.POST.get("model_id") or answer.model_id)
    except RoutingError as exc:
        return session, _send_error(request, session, 400, f"Cannot use this model: {exc}")
    return session, _begin(request, session, lambda _: begin_regenerate(session, answer, model_id), question=False,
                           model_id=model_id)


def _begin_continue(request: HtmxHttpRequest, pk: int) -> tuple[ChatSession, NewTurn | HttpResponseBase]:
    answer = _owned_message(request, pk, role=Message.Role.ASSISTANT)
    session = answer.session
    try:
        return session, _begin(request, session, lambda _: begin_continue(session, answer), question=False,
                               model_id=answer.model_id or session.model_id)
    except CannotContinue as exc:
        return session, _send_error(request, session, 409, f"Not continued: {exc}")


async def _send(request: HtmxHttpRequest, begin: Callable[[HtmxHttpRequest, int], tuple[ChatSession, NewTurn | HttpResponseBase]],
                pk: int) -> HttpResponseBase:
    # One trip to a thread for the login, the chat and the turn; the connection goes back to the pool
    # after it, since the answer may stream for minutes.
    session, turn = await database.run(begin, request, pk)
    if not isinstance(turn, NewTurn):
        return turn
    return await answer_send(request, session, turn)


@require_http_methods(["GET", "POST"])
async def chat_new(request: HtmxHttpRequest) -> HttpResponseBase:
    """GET: a new chat's page; nothing is saved (new_chat_views). POST: its first message, which saves
    the chat with its first turn, answered as chat_send answers, except that the page's script gets
    the stream at once (_first_answer). A refused first message saves nothing."""
    if request.method == "GET":
        return await database.run(new_chat_page, request)
    session, turn = await database.run(_begin_first_send, request)
    streamed = request.headers.get("X-BooChat-Stream") == "1"
    if isinstance(turn, NewTurn):
        return _first_answer(session, turn) if streamed else await answer_send(request, session, turn)
    if not streamed:
        return await database.run(_refused_first_message, request, session, turn.status_code)
    return turn


def _first_answer(session: ChatSession, turn: NewTurn) -> HttpResponseBase:
    """The first answer's SSE at once, not after the host starts as answer_send() does: the page
    learns the chat's address (`X-BooChat-Chat`) while the host may still be loading the model
    (minutes, on a swap), and its Stop can reach the chat. A host's refusal is the stream's end event
    (the answer saved as failed, saying why)."""
    job = jobs.start_job(session, turn)
    # The refusal reaches the page through the end event; taken here, asyncio does not report it as lost.
    job.started.add_done_callback(lambda started: started.cancelled() or started.exception())
    return sse_response(jobs.follow(job.answer_pk), headers={
        "X-BooChat-Chat": session.get_absolute_url(), "X-BooChat-Message": str(job.answer_pk),
        "X-BooChat-Provider": turn.route.provider, "X-BooChat-Follow": reverse("chat_answer_stream", args=[job.answer_pk])})


@require_POST
async def chat_send(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Save the user's message and stream the answer from the session's resolved host."""
    return await _send(request, _begin_send, pk)


@require_POST
async def chat_edit(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Send an edited question in place of message `pk`; the earlier question and its answers stay,
    as an earlier branch."""
    return await _send(request, _begin_edit, pk)


@require_POST
async def chat_continue(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Have the host go on with answer `pk` (stopped, or cut by the length limit) from its saved text;
    what it writes is added to the same answer."""
    return await _send(request, _begin_continue, pk)


@require_http_methods(["GET", "POST"])
async def chat_regenerate(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """GET: the form to choose the model (any host) for another answer to this one's question.
    POST: that answer, streamed; both answers stay, as siblings."""
    if request.method == "POST":
        return await _send(request, _begin_regenerate, pk)
    return await database.run(_regenerate_form, request, pk)


def _regenerate_form(request: HtmxHttpRequest, pk: int) -> TemplateResponse:
    answer = _owned_message(request, pk, role=Message.Role.ASSISTANT, parent__isnull=False)
    picker = build_picker(catalog_for(request.user.pk), Favorite.objects.ids_for(request.user), chat=True)
    template = "chat_regenerate.html#form" if request.htmx else "chat_regenerate.html"
    return TemplateResponse(request, template, {"message": answer, "session": answer.session, "picker": picker,
                                                "selected": answer.model_id})


@require_POST
def chat_delete_turn(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Delete a question and its answers (message `pk` is either); the turns after it stay, following
    the turn before. A summary that covered it goes too (it is written again when needed)."""
    message = _owned_message(request, pk)
    session = message.session
    question = message.parent if message.is_answer and message.parent is not None else message
    removed = [question.pk, *question.replies.values_list("pk", flat=True)]
    with transaction.atomic():
        Message.objects.filter(parent_id__in=removed).exclude(pk__in=removed).update(parent=question.parent_id)
        question.delete()
        if session.shown_leaf_id in removed:  # the branch goes on, now below the turn before
            tree = Tree.shape_of(session)
            parent = tree.by_id.get(question.parent_id) if question.parent_id is not None else None
            _show(session, tree.latest_leaf(parent).pk if parent is not None else None)
    messages.success(request, "Deleted the question and its answers.")
    return redirect(session)


@require_POST
def chat_settings(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Save the chat's system prompt and parameters; `keep=preset` (with `preset_name`) also keeps
    them as a named preset, `keep=model` as the defaults of the chat's model. htmx gets the panel
    back (with errors if any)."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    form = ChatSettingsForm.for_session(session, reasoning_of(session), request.POST)
    keep, name = request.POST.get("keep", ""), " ".join(request.POST.get("preset_name", "").split())
    for label, value in (("preset name", name), ("system prompt", request.POST.get("system_prompt", ""))):
        if problem := unstorable(value):
            return HttpResponse(f"Nothing was saved: the {label} contains {problem}, which cannot be stored.",
                                status=400, content_type="text/plain; charset=utf-8")
    if keep == "preset" and not 0 < len(name) <= 100:
        form.add_error(None, "Name the preset (at most 100 characters).")
    saved = form.is_valid()
    note = "Saved: the next answer uses them."
    if saved:
        form.save(session)
        if keep == "preset":
            form.save_preset(session, name=name)
            note = f"Saved, and kept as the preset “{name}”."
        elif keep == "model":
            form.save_preset(session, for_model=session.model_id)
            note = f"Saved, and kept as the defaults of {session.model_id} for new chats."
    if request.htmx:
        return TemplateResponse(request, "chat.html#chat_settings", {"session": session, "settings_form": form,
                                                                     "saved": saved and note})
    if saved:
        messages.success(request, note)
    else:
        messages.error(request, "Prompt and parameters not saved: " + form.problems)
    return redirect(session)


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
    attachment = get_object_or_404(Attachment, pk=pk, message__session__user=request.user,
                                   message__session__deleted_at__isnull=True)
    if attachment.is_image:
        response = HttpResponse(bytes(attachment.data), content_type=attachment.media_type)
    else:
        response = HttpResponse(attachment.text, content_type="text/plain; charset=utf-8")
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=86400"
    return response
