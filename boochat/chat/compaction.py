"""Compaction: when a chat would not fit its model's context, its oldest turns are summarized and
the summary stands in for them (the originals stay on the page)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import Http404

from boochat import database
from boochat.chat.prompt import NOT_RUN, active_messages_to, answer_reserve, estimate_tokens, upstream_messages
from boochat.chat.titles import task_model_candidates
from boochat.models import ChatSession, Compaction, Message
from boochat.proxy import complete_chat
from providers.context import context_size_for, learn_context_size
from providers.routing import Route, RoutingError, aresolve
from providers.upstream import UpstreamError, answer_text

logger = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "You compress chat histories. Summarize the conversation below so that it can continue without "
    "it: keep facts, names, numbers, decisions, open questions and the user's preferences. Write "
    "plain prose, at most 250 words, in the conversation's language."
)


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


async def compact(session: ChatSession, leaf_id: int, *, budget: int, scale: float = 1.0) -> Compaction | None:
    """Summarize the oldest turns of the branch down to `leaf_id` so that the rest fits `budget`
    tokens; None if nothing can go."""
    compaction, messages = await database.run(active_messages_to, session, leaf_id)
    if len(messages) < 2:
        return None
    keep = 1  # always the newest message; the one before too when both fit comfortably
    if len(messages) > 2 and estimate_tokens([{"content": m.content} for m in messages[-2:]]) * scale < budget / 2:
        keep = 2
    older, recent = messages[:-keep], messages[-keep:]
    transcript = "\n\n".join(
        ([f"(Earlier summary) {compaction.summary}"] if compaction else [])
        + [line for m in older for line in transcript_lines(m)]
    )
    # The configured summary model first; if it cannot be reached, the session's own model.
    candidates = list(dict.fromkeys([await database.run(_summary_model_id, session), session.model_id]))
    for model_id in candidates:
        try:
            route = await aresolve(model_id)
            summary = await summarize(route, transcript)
            break
        except (RoutingError, UpstreamError) as exc:
            if model_id == candidates[-1]:
                raise UpstreamError(f"Could not summarize the earlier conversation: {exc}", status=getattr(exc, "status", 502)) from None
            logger.info("summary from %s failed, trying the session's model: %s", model_id, exc)
    created = await database.run(_save_compaction, session, older[-1], summary, str(route.ref))
    logger.info("compacted session %s through message %s (%d kept)", session.pk, older[-1].pk, len(recent))
    return created


def transcript_lines(message: Message) -> list[str]:
    """A message for the summary's transcript: an answer's tool calls and their results before its text."""
    lines = [f"ASSISTANT called {call['function']}({call['arguments']}): {call.get('result') or NOT_RUN}"
             for round_ in message.tool_rounds for call in round_.get("calls") or []]
    return [*lines, f"{message.role.upper()}: {message.content}"] if message.content or not lines else lines


async def learn_from_overflow(route: Route, exc: UpstreamError, sent: list[dict[str, Any]]) -> tuple[int, float]:
    """After an exceed_context_size_error: remember the host's n_ctx, and return it with how far our
    token estimate of what was sent fell short of the host's own count (>= 1)."""
    assert exc.n_ctx is not None  # an over-context error carries it
    await database.run(learn_context_size, str(route.ref), exc.n_ctx)
    return exc.n_ctx, max(1.0, (exc.n_prompt_tokens or 0) / max(1, estimate_tokens(sent)))


async def summarize(route: Route, transcript: str) -> str:
    """A summary of `transcript` from `route`'s model. If the transcript does not fit that model's
    context, its most recent part is summarized; one retry, shorter, if the host says it overflowed."""
    n_ctx, scale = (await database.run(context_size_for, str(route.ref))).tokens, 1.0
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


async def prepare_messages(session: ChatSession, route: Route, leaf_id: int, *, n_ctx: int,
                           scale: float = 1.0) -> list[dict[str, Any]]:
    """The messages of the branch down to `leaf_id` to send, compacting first when they would not fit
    the context."""
    budget = n_ctx - answer_reserve(n_ctx)
    for _ in range(3):  # each compaction summarizes more; a few rounds at most
        compaction, messages = await database.run(active_messages_to, session, leaf_id)
        prepared = upstream_messages(route, compaction, messages, system_prompt=session.system_prompt)
        if estimate_tokens(prepared) * scale <= budget:
            return prepared
        if await compact(session, leaf_id, budget=budget, scale=scale) is None:
            break
    compaction, messages = await database.run(active_messages_to, session, leaf_id)
    return upstream_messages(route, compaction, messages, system_prompt=session.system_prompt)
