"""A chat turn: build what the model sees, compact when it would not fit, stream, save; and titles."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from boochat import db_threads
from boochat.inserts import insert_new
from boochat.models import ArenaAnswer, ChatSession, Compaction, GeneratedText, Message, MessageState, save_if_kept
from boochat.partials import partial_answers
from boochat.proxy import UpstreamError, answer_text, complete_chat, open_chat_stream
from boochat.reads import InList
from boochat.sse import StreamAccumulator
from providers.catalog import DOWN, load_catalog
from providers.context import context_size_for, learn_context_size
from providers.http import TransportError, UpstreamResponse
from providers.models import Provider, ProviderKind
from providers.routing import Route, RoutingError, aresolve, canonical_model_id, resolve

logger = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "You compress chat histories. Summarize the conversation below so that it can continue without "
    "it: keep facts, names, numbers, decisions, open questions and the user's preferences. Write "
    "plain prose, at most 250 words, in the conversation's language."
)
TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. Answer with the title only: "
    "no quotes, no trailing punctuation."
)
STOPPED_BEFORE_START = "Stopped before the host started to answer."
NOTE_EVERY_SECONDS = 1.0  # how often a stream hands what arrived to boochat.partials


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A deliberately high estimate (3 characters a token, plus template tokens per message)."""
    return sum(math.ceil(len(str(m.get("content") or "")) / 3) + 4 for m in messages)


def answer_reserve(n_ctx: int) -> int:
    """Tokens kept free for the answer."""
    return min(2048, n_ctx // 4)


# -- what the model sees ---------------------------------------------------------------------------


# What a turn reads of each message, built once (read on every chat turn; only ever filtered, which
# copies it, never evaluated itself).
_SENT_TO_MODEL = (Message.objects.exclude(state__in=(MessageState.FAILED, MessageState.STREAMING))
                  .only("id", "session_id", "role", "content", "tool_calls", "reasoning"))


_HISTORIES = InList(_SENT_TO_MODEL, "session_id")  # the messages of many sessions, SQL compiled once


def _sendable(messages: Iterable[Message]) -> list[Message]:
    return [m for m in messages if m.role == Message.Role.USER or m.content or m.tool_calls]


def active_messages(session: ChatSession) -> tuple[Compaction | None, list[Message]]:
    """The latest compaction and the messages after it that still go to the model."""
    compaction = session.latest_compaction()
    messages = _SENT_TO_MODEL.filter(session=session)
    if compaction is not None:
        messages = messages.filter(id__gt=compaction.through_message_id)
    return compaction, _sendable(messages)


def active_histories(sessions: list[ChatSession]) -> dict[int, tuple[Compaction | None, list[Message]]]:
    """active_messages() of each session, by pk: one query for all sessions read with_compacted()
    that have no compaction, one or two more for each of the others."""
    plain = [s.pk for s in sessions if getattr(s, "compacted", True) is False]
    histories: dict[int, tuple[Compaction | None, list[Message]]] = {pk: (None, []) for pk in plain}
    if plain:
        for message in _sendable(_HISTORIES(plain)):
            histories[message.session_id][1].append(message)
    for session in sessions:
        if session.pk not in histories:
            histories[session.pk] = active_messages(session)
    return histories


def upstream_messages(route: Route, compaction: Compaction | None, messages: list[Message]) -> list[dict[str, Any]]:
    """OpenAI chat messages for `route`'s host."""
    result: list[dict[str, Any]] = []
    if compaction is not None:
        result.append({"role": "system", "content": f"Summary of the earlier conversation:\n{compaction.summary}"})
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
            # DeepSeek's thinking mode needs its reasoning back on turns that called tools, and
            # refuses it elsewhere (older R1); no other host gets it (DeepSeek API docs).
            if route.kind == ProviderKind.DEEPSEEK and message.reasoning:
                item["reasoning_content"] = message.reasoning
        result.append(item)
    return result


def _summary_model_id(session: ChatSession) -> str:
    choice = settings.BOOCHAT_SUMMARY_MODEL
    if choice == "task":
        return task_model_candidates(session.model_id)[0]
    return choice or session.model_id


def _save_compaction(session: ChatSession, through: Message, summary: str, model_id: str) -> Compaction:
    """The new compaction. Http404 if the chat, or the message the summary reaches, was deleted while
    the summary was written: the turn ends there, as a send to a deleted chat does."""
    if not Message.objects.filter(pk=through.pk, session_id=session.pk).exists():
        raise Http404("This chat was deleted while its earlier conversation was summarized.")
    return Compaction.objects.create(session=session, through_message=through, summary=summary, model_id=model_id)


async def compact(session: ChatSession, *, budget: int, scale: float = 1.0) -> Compaction | None:
    """Summarize the oldest turns so that the rest fits `budget` tokens; None if nothing can go."""
    compaction, messages = await db_threads.run(active_messages, session)
    if len(messages) < 2:
        return None
    keep = 1  # always the newest message; the one before too when both fit comfortably
    if len(messages) > 2 and estimate_tokens([{"content": m.content} for m in messages[-2:]]) * scale < budget / 2:
        keep = 2
    older, recent = messages[:-keep], messages[-keep:]
    transcript = "\n\n".join(
        ([f"(Earlier summary) {compaction.summary}"] if compaction else [])
        + [f"{m.role.upper()}: {m.content}" for m in older]
    )
    # The configured summary model first; if it cannot be reached, the session's own model.
    candidates = list(dict.fromkeys([await db_threads.run(_summary_model_id, session), session.model_id]))
    for model_id in candidates:
        try:
            route = await aresolve(model_id)
            summary = await summarize(route, transcript)
            break
        except (RoutingError, UpstreamError) as exc:
            if model_id == candidates[-1]:
                raise UpstreamError(f"Could not summarize the earlier conversation: {exc}", status=getattr(exc, "status", 502)) from None
            logger.info("summary from %s failed, trying the session's model: %s", model_id, exc)
    created = await db_threads.run(_save_compaction, session, older[-1], summary, str(route.ref))
    logger.info("compacted session %s through message %s (%d kept)", session.pk, older[-1].pk, len(recent))
    return created


async def learn_from_overflow(route: Route, exc: UpstreamError, sent: list[dict[str, Any]]) -> tuple[int, float]:
    """After an exceed_context_size_error: remember the host's n_ctx, and return it with how far our
    token estimate of what was sent fell short of the host's own count (>= 1)."""
    await db_threads.run(learn_context_size, str(route.ref), exc.n_ctx)
    return exc.n_ctx, max(1.0, (exc.n_prompt_tokens or 0) / max(1, estimate_tokens(sent)))


async def summarize(route: Route, transcript: str) -> str:
    """A summary of `transcript` from `route`'s model. If the transcript does not fit that model's
    context, its most recent part is summarized; one retry, shorter, if the host says it overflowed."""
    n_ctx, scale = (await db_threads.run(context_size_for, str(route.ref))).tokens, 1.0
    for attempt in (1, 2):
        limit = max(200, int((n_ctx - answer_reserve(n_ctx) - 200) * 3 / scale))
        request = [{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": transcript[-limit:]}]
        try:
            answer = await complete_chat(route, request)
            break
        except UpstreamError as exc:
            if not exc.over_context or attempt == 2:
                raise
            n_ctx, scale = await learn_from_overflow(route, exc, request)
    summary = answer_text(answer).strip()
    if not summary:
        raise UpstreamError(f"{route.provider_name} ({route.provider}) returned an empty summary.")
    return summary


async def prepare_messages(session: ChatSession, route: Route, *, n_ctx: int, scale: float = 1.0) -> list[dict[str, Any]]:
    """The messages to send, compacting first when they would not fit the context."""
    budget = n_ctx - answer_reserve(n_ctx)
    for _ in range(3):  # each compaction summarizes more; a few rounds at most
        compaction, messages = await db_threads.run(active_messages, session)
        prepared = upstream_messages(route, compaction, messages)
        if estimate_tokens(prepared) * scale <= budget:
            return prepared
        if await compact(session, budget=budget, scale=scale) is None:
            break
    compaction, messages = await db_threads.run(active_messages, session)
    return upstream_messages(route, compaction, messages)


# -- one streamed answer ---------------------------------------------------------------------------


@dataclass
class Turn:
    """A started answer: the open upstream response and the message that will hold it."""

    route: Route
    response: UpstreamResponse
    answer: Message


@dataclass
class NewTurn:
    """A turn whose question and answer rows are saved, before its host is asked."""

    route: Route
    n_ctx: int
    messages: list[dict[str, Any]]  # what the model sees, the question last
    answer: Message


def new_turns(asks: list[tuple[ChatSession, str]]) -> list[NewTurn | Exception]:
    """Each new turn's database work, all in one trip: its route, its context size, what its model
    sees, and its question and answer (streaming) rows, every turn's saved in one insert (boochat.inserts); run
    through boochat.db_threads, which gives the connection back (what follows waits on a host).
    A turn that cannot be routed has its answer saved as failed, and its RoutingError in its place;
    any other failure puts its exception there, with nothing of that turn saved. Never raises.

    Asked together, turns of one session would not see each other: a session's second question is
    asked after its first is saved. If the batch fails, each turn is tried alone, so that one bad
    row (a session deleted meanwhile) fails only its own turn."""
    firsts: dict[int, int] = {}
    now = [i for i, (session, _) in enumerate(asks) if firsts.setdefault(session.pk, i) == i]
    later = [i for i in range(len(asks)) if firsts[asks[i][0].pk] != i]
    results: dict[int, NewTurn | Exception] = {}
    rows: list[Message] = []
    # Once per model in the batch, not per turn: with REDIS_URL a context size is a trip to Redis.
    route_of, context_of = functools.cache(resolve), functools.cache(context_size_for)
    try:
        # Read before the insert: the new question is added below, and the new answer is not sent.
        histories = active_histories([asks[i][0] for i in now])
        for i in now:
            session, question = asks[i]
            asked = Message(session=session, role=Message.Role.USER, content=question)
            answer = Message(session=session, role=Message.Role.ASSISTANT, state=MessageState.STREAMING, model_id=session.model_id)
            rows += [asked, answer]
            try:
                route = route_of(session.model_id)
            except RoutingError as exc:
                answer.state, answer.error = MessageState.FAILED, str(exc)
                results[i] = exc
                continue
            answer.provider, answer.wire_model, answer.model_id = route.provider, route.wire_model, str(route.ref)
            compaction, messages = histories[session.pk]
            results[i] = NewTurn(route, context_of(session.model_id).tokens,
                                 upstream_messages(route, compaction, [*messages, asked]), answer)
        insert_new(rows)
    except Exception as exc:  # nothing is saved
        if len(now) == 1:
            results[now[0]] = exc
        else:
            for i in now:
                results[i] = new_turns([asks[i]])[0]
    if later:
        results.update(zip(later, new_turns([asks[i] for i in later]), strict=True))
    return [results[i] for i in range(len(asks))]


async def start_turn(session: ChatSession, turn: NewTurn) -> Turn:
    """Compact if needed and open the stream; one compaction + retry on over-context. Raises
    UpstreamError after saving the failed answer with why."""
    route, n_ctx, messages, answer = turn.route, turn.n_ctx, turn.messages, turn.answer
    scale = 1.0
    try:
        for attempt in (1, 2):
            if attempt == 2 or estimate_tokens(messages) > n_ctx - answer_reserve(n_ctx):
                messages = await prepare_messages(session, route, n_ctx=n_ctx, scale=scale)
            body = {"model": route.wire_model, "messages": messages, "stream": True,
                    "stream_options": {"include_usage": True}}
            try:
                response = await open_chat_stream(route, body)
                break
            except UpstreamError as exc:
                if not exc.over_context or attempt == 2:
                    raise
                n_ctx, scale = await learn_from_overflow(route, exc, messages)
    except UpstreamError as exc:
        answer.state, answer.error = MessageState.FAILED, str(exc)
        await db_threads.run(save_if_kept, answer)
        raise
    except asyncio.CancelledError:  # Stop, or the tab closed, while the host had not answered yet
        answer.state, answer.error = MessageState.INTERRUPTED, STOPPED_BEFORE_START
        await asyncio.shield(db_threads.run(save_if_kept, answer))
        raise
    return Turn(route, response, answer)


def record_outcome(answer: GeneratedText, acc: StreamAccumulator, state: str, error: str) -> bool:
    """Save what a stream brought into an answer row (chat or arena), however it ended; False if the
    row was deleted while it streamed (with its chat session or arena run): nothing is saved then."""
    acc.read()
    answer.content = acc.text
    answer.reasoning = acc.reasoning_text
    answer.tool_calls = acc.tool_call_list()
    answer.usage = acc.usage
    answer.timings = acc.timings
    answer.tokens_per_second = acc.tokens_per_second
    answer.finish_reason = acc.finish_reason
    answer.state = state
    answer.error = error
    if save_if_kept(answer):
        return True
    logger.info("%s %s was deleted while it streamed; its answer is not saved", type(answer).__name__, answer.pk)
    return False


def interrupt_stale_answers(model: type[GeneratedText], **filters: Any) -> int:
    """Mark answers left "streaming" by an app process that died as interrupted, keeping what was
    saved. A live stream saves at least every few seconds once bytes flow, and waits at most its
    provider's read timeout for them, so anything quiet for longer than that (plus a grace) is dead."""
    quiet_since = timezone.now() - timedelta(seconds=settings.BOOCHAT_STALE_STREAM_GRACE)
    candidates = list(model.objects.filter(state=MessageState.STREAMING, updated_at__lt=quiet_since, **filters))
    if not candidates:
        return 0
    read_timeouts = dict(Provider.objects.values_list("slug", "read_timeout"))
    stale = [
        a.pk for a in candidates
        if a.updated_at < quiet_since - timedelta(seconds=read_timeouts.get(a.provider, 600.0))
    ]
    return model.objects.filter(pk__in=stale, state=MessageState.STREAMING).update(
        state=MessageState.INTERRUPTED, error="BooChat stopped while this answer was streaming; what arrived is kept.",
    )


def interrupt_all_stale_answers() -> int:
    """interrupt_stale_answers() for every chat and arena answer."""
    count = interrupt_stale_answers(Message) + interrupt_stale_answers(ArenaAnswer)
    if count:
        logger.info("Marked %d answers left streaming by a stopped process as interrupted", count)
    return count


async def relay_stream(route: Route, response: UpstreamResponse, answer: GeneratedText,
                       on_end: Callable[[StreamAccumulator, str, str], None] | None = None) -> AsyncIterator[bytes]:
    """Yield the upstream bytes as they arrive, and save `answer` however the stream ends: complete,
    failed (the host said so), or interrupted (host dropped, or the browser left). `on_end` runs
    after the answer is saved, in the same thread, with the accumulator, state and error (not if the
    answer's row was deleted while it streamed: record_outcome).

    While it streams, what arrived is noted every second and saved with the next batch
    (boochat.partials): a busy database makes those saves later, never the bytes."""
    acc = StreamAccumulator(lazy=True)  # read once a second (boochat.sse)
    name = f"{route.provider_name} ({route.provider})"
    state, error = MessageState.INTERRUPTED, "Stopped before the answer was complete."
    last_note = time.monotonic()
    received, limit = 0, settings.BOOCHAT_MAX_ANSWER_BYTES
    try:
        async for chunk in response.chunks():
            received += len(chunk)
            if received > limit:  # stored answers stay bounded; the host is told to stop (finally)
                error = (f"Truncated: the answer passed BooChat's limit of {limit:,} bytes "
                         f"(BOOCHAT_MAX_ANSWER_BYTES); {name} was stopped here.")
                yield b"data: " + json_bytes({"error": {"message": error, "type": "answer_too_long"}}) + b"\n\n"
                break
            acc.feed(chunk)
            yield chunk
            if time.monotonic() - last_note > NOTE_EVERY_SECONDS:
                last_note = time.monotonic()
                acc.read()
                partial_answers.note(answer, acc.text, acc.reasoning_text)
        acc.close()
        if received > limit:
            pass  # interrupted, with the error above
        elif acc.error:
            state, error = MessageState.FAILED, f"{name}: {acc.error}"
        elif acc.done or acc.finish_reason:
            state, error = MessageState.COMPLETE, ""
        else:
            error = f"{name} ended the stream before the answer was complete."
    except TransportError as exc:
        if exc.kind == "read_timeout":
            error, kind = f"{name} sent nothing for {route.timeout.read:g} s; the answer stops here.", "upstream_timeout"
        else:
            error, kind = f"Lost the connection to {name} mid-answer ({exc.cause_name}).", "upstream_disconnected"
        yield b"data: " + json_bytes({"error": {"message": error, "type": kind}}) + b"\n\n"
    finally:
        # Runs also when the browser goes away (the task is cancelled): closing the upstream
        # response closes its connection, so the host stops generating.
        response.close()
        partial_answers.drop(answer)

        def save() -> None:
            if record_outcome(answer, acc, state, error) and on_end is not None:
                on_end(acc, state, error)

        await asyncio.shield(db_threads.run(save))


def relay(turn: Turn) -> AsyncIterator[bytes]:
    """The chat answer's stream; the session moves to the top of the list when it ends."""

    def touch_session(acc: StreamAccumulator, state: str, error: str) -> None:
        ChatSession.objects.filter(pk=turn.answer.session_id).update(updated_at=turn.answer.updated_at)

    return relay_stream(turn.route, turn.response, turn.answer, touch_session)


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# -- titles ---------------------------------------------------------------------------------------


def task_model_candidates(session_model_id: str) -> list[str]:
    """Models to try for a title, best first (README, "Task model").

    The task model goes first when its host is up and using it needs no swap. On a llama-swap host
    where the task model is not loaded, the session's own model goes first if it is loaded there
    (or anywhere): a title is not worth unloading a model someone is chatting with."""
    session_model = canonical_model_id(session_model_id)
    task = settings.BOOCHAT_TASK_MODEL
    if not task:
        return [session_model]
    try:
        task = canonical_model_id(task)
    except RoutingError:
        logger.warning("BOOCHAT_TASK_MODEL=%s cannot be routed; using the session's model", task)
        return [session_model]
    if task == session_model:
        return [task]
    catalog = load_catalog()
    by_id = catalog.by_id()
    states = {p.slug: p.state for p in catalog.providers}

    def ready(model_id: str) -> bool:
        model = by_id.get(model_id)
        return model is not None and states.get(model.provider) != DOWN and model.loaded is not False

    if ready(task) or not ready(session_model):
        return [task, session_model]
    return [session_model, task]


def _title_source(session: ChatSession) -> list[Message]:
    return list(session.messages.exclude(state=MessageState.FAILED).order_by("id")[:2])


def clean_title(text: str) -> str:
    """The first line of a model's answer, without quotes, Markdown marks or end punctuation."""
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = re.sub(r"[*_`#]+", "", line)
    return line.strip().strip("\"'“”‘’").strip().rstrip(".!?:;")[:80].strip()


def claim_title(session: ChatSession) -> bool:
    """Whether this request writes the session's title: the first to ask since it has none, in any
    process of any instance (a claim older than twice the task timeout has died with its process)."""
    now = timezone.now()
    stale = now - timedelta(seconds=2 * settings.BOOCHAT_TASK_TIMEOUT)
    unclaimed = Q(title_claimed_at__isnull=True) | Q(title_claimed_at__lt=stale)
    return ChatSession.objects.filter(unclaimed, pk=session.pk, title="").update(title_claimed_at=now) == 1


def with_task_timeout(route: Route) -> Route:
    """`route` waiting at most BOOCHAT_TASK_TIMEOUT seconds for the host: a title is not worth more."""
    read = min(route.timeout.read or settings.BOOCHAT_TASK_TIMEOUT, settings.BOOCHAT_TASK_TIMEOUT)
    return dataclasses.replace(route, timeout=httpx.Timeout(read, connect=route.timeout.connect))


async def generate_title(session: ChatSession) -> str:
    """A short title from the task model (or a fallback); saved on the session and returned. Asked
    once per session, however many requests want it at the same time."""
    first = await sync_to_async(_title_source)(session)
    if not first or not await sync_to_async(claim_title)(session):
        return session.title
    transcript = "\n\n".join(f"{m.role.upper()}: {m.content[:1500]}" for m in first)
    title = ""
    for model_id in await sync_to_async(task_model_candidates)(session.model_id):
        try:
            route = with_task_timeout(await aresolve(model_id))
            answer = await complete_chat(
                route,
                [{"role": "system", "content": TITLE_PROMPT}, {"role": "user", "content": transcript}],
                max_tokens=60,
            )
        except (RoutingError, UpstreamError) as exc:
            logger.info("title from %s failed: %s", model_id, exc)
            continue
        if title := clean_title(answer_text(answer)):
            break
    if not title:  # every model failed: the first words of the question are still a fine title
        title = " ".join(first[0].content.split()[:8])[:80] or "New chat"
    session.title = title
    await sync_to_async(save_if_kept)(session, ["title", "updated_at"])  # unless it was deleted meanwhile
    return title
