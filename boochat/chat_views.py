"""Chat pages and the streaming proxy view."""

from __future__ import annotations

from django.contrib import messages
from django.core.handlers.exception import response_for_exception
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_POST

from boochat import db_threads
from boochat.chat import (
    NewTurn,
    active_messages,
    estimate_tokens,
    generate_title,
    interrupt_stale_answers,
    new_turns,
    relay,
    start_turn,
    upstream_messages,
)
from boochat.models import ChatSession, Message, MessageState
from boochat.picker import build_picker
from boochat.proxy import UpstreamError, sse_response
from boochat.reads import InList
from providers.catalog import load_catalog
from providers.context import context_size_for
from providers.routing import RoutingError, resolve
from settings_app.models import Favorite, UserSettings
from settings_app.normalize import normalize_model_id

MAX_MESSAGE_CHARS = 200_000


def _sessions(request: HttpRequest):  # noqa: ANN202
    return ChatSession.objects.for_user(request.user).only("id", "title", "model_id", "updated_at")[:50]


def _context_usage(session: ChatSession, messages: list[Message]) -> dict[str, object] | None:
    """Tokens in use (the host's own count from the last answer when there is one) and available."""
    try:
        size = context_size_for(session.model_id)
        route = resolve(session.model_id)
    except RoutingError:
        return None
    last = next((m for m in reversed(messages) if m.usage and m.usage.get("total_tokens")), None)
    if last is not None:
        used, exact = last.usage["total_tokens"], True
    else:
        compaction, active = active_messages(session)
        used, exact = estimate_tokens(upstream_messages(route, compaction, active)), False
    return {"used": used, "available": size.tokens, "source": size.source, "exact": exact,
            "percent": min(100, round(100 * used / max(1, size.tokens)))}


@require_GET
def chat_index(request: HttpRequest) -> TemplateResponse:
    """The chat start page: past sessions and a form to start a new one."""
    picker = build_picker(load_catalog(), Favorite.objects.ids_for(request.user))
    default = UserSettings.for_user(request.user).default_model
    return TemplateResponse(request, "chat.html", {"sessions": _sessions(request), "session": None,
                                                   "picker": picker, "selected": default})


@require_POST
def chat_new(request: HttpRequest) -> HttpResponse:
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
def chat_session(request: HttpRequest, pk: int) -> TemplateResponse:
    """One session: its messages (compacted ones marked), the composer, and context use."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    interrupt_stale_answers(Message, session=session)
    history = list(session.messages.all())
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
    }
    return TemplateResponse(request, "chat.html", context)


@require_POST
def chat_set_model(request: HttpRequest, pk: int) -> HttpResponse:
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
def chat_message(request: HttpRequest, pk: int) -> TemplateResponse:
    """One saved message, rendered (the page swaps it in when a stream ends)."""
    message = get_object_or_404(Message.objects.select_related("session"), pk=pk, session__user=request.user)
    if interrupt_stale_answers(Message, pk=message.pk):
        message.refresh_from_db()
    compaction = message.session.latest_compaction()
    return TemplateResponse(request, "chat.html#message", {
        "message": message, "compacted_through": compaction.through_message_id if compaction else 0,
    })


def _send_error(request: HttpRequest, session: ChatSession, status: int, message: str, **extra: str) -> HttpResponse:
    if request.headers.get("X-BooChat-Stream") == "1":
        response = JsonResponse({"error": message}, status=status)
        for name, value in extra.items():
            response[name] = value
        return response
    messages.error(request, message)
    return redirect(session)


# Built once: annotating a queryset cost about as much as running it (0.3 ms of each chat send); and
# its SQL compiled once (boochat.reads).
_CHAT_SESSIONS = InList(ChatSession.objects.with_compacted(), "pk")


def owned_sessions(wanted: list[tuple[object, int]]) -> list[ChatSession | None]:
    """For each (user, pk): the user's chat session pk, or None; one query for all."""
    found = {session.pk: session for session in _CHAT_SESSIONS([pk for _, pk in wanted])}
    return [session if (session := found.get(pk)) is not None and session.user_id == user.pk else None
            for user, pk in wanted]


def owned_session(user: object, pk: int) -> ChatSession:
    """The user's chat session `pk`, or 404."""
    session = owned_sessions([(user, pk)])[0]
    if session is None:
        raise Http404("No chat session matches the given query.")
    return session


def begin_sends(sends: list[tuple[HttpRequest, ChatSession]]) -> list[NewTurn | HttpResponse]:
    """Each posted message checked and saved, with its answer row (one trip to the database for
    all, chat.new_turns); or the response that says why not."""
    results: list[NewTurn | HttpResponse | None] = []
    asks: list[tuple[ChatSession, str]] = []
    for request, session in sends:
        content = request.POST.get("content", "").strip()
        if not content:
            results.append(_send_error(request, session, 400, "The message is empty."))
        elif len(content) > MAX_MESSAGE_CHARS:
            results.append(_send_error(request, session, 413, f"The message is longer than {MAX_MESSAGE_CHARS} characters."))
        else:
            results.append(None)
            asks.append((session, content))
    turns = iter(new_turns(asks))
    for i, (request, session) in enumerate(sends):
        if results[i] is None:
            turn = next(turns)
            if isinstance(turn, RoutingError):
                results[i] = _send_error(request, session, 400, str(turn))
            elif isinstance(turn, Exception):
                results[i] = response_for_exception(request, turn)
            else:
                results[i] = turn
    return results


def abandon_turns(begun: list[tuple[ChatSession, NewTurn | HttpResponse] | None]) -> None:
    """Turns saved for sends whose browser left before their answer started: marked interrupted
    (boochat.db_threads.Batched's `orphaned`)."""
    answers = [turn.answer.pk for _, turn in filter(None, begun) if isinstance(turn, NewTurn)]
    Message.objects.filter(pk__in=answers, state=MessageState.STREAMING).update(
        state=MessageState.INTERRUPTED, error="The browser left before the answer started.")


def _owned_and_begun(request: HttpRequest, pk: int) -> tuple[ChatSession, NewTurn | HttpResponse]:
    session = owned_session(request.user, pk)  # the user, the session and the turn: one trip
    return session, begin_sends([(request, session)])[0]


async def answer_send(request: HttpRequest, session: ChatSession, turn: NewTurn) -> HttpResponse:
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


@require_POST
async def chat_send(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the user's message and stream the answer from the session's resolved host. A streamed
    send normally arrives by boochat.handler's short path, which calls the same three steps."""
    session, turn = await db_threads.run(_owned_and_begun, request, pk)
    if isinstance(turn, HttpResponse):
        return turn
    return await answer_send(request, session, turn)


@require_POST
async def chat_title(request: HttpRequest, pk: int) -> HttpResponse:
    """Give an untitled session a title (task model, see README); returns the title fragment."""
    session = await aget_object_or_404(ChatSession, user=await request.auser(), pk=pk)
    if not session.title:
        await generate_title(session)
    return TemplateResponse(request, "chat.html#session_title", {"session": session, "oob": True})
