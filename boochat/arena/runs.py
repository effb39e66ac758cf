"""The arena: one prompt to several models at once, each through its own resolved host, then a
model's comparison of the answers. Runs are kept and can be exported or continued as chats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from boochat import database
from boochat.chat.relay import relay_stream
from boochat.chat.turns import served_by
from boochat.models import ArenaAnswer, ArenaRun, ChatSession, Message, MessageState
from boochat.proxy import UpstreamError, answer_text, complete_chat, open_chat_stream
from boochat.sse import StreamAccumulator
from boochat.usage.recording import STATUS_FAILED, Meter
from providers.access import access_for, check_model
from providers.routing import Route, RoutingError, aresolve, canonical_model_id, resolve
from settings_app.normalize import chat_model_id

MIN_MODELS, MAX_MODELS = 2, 4
ANALYZER_PROMPT = (
    "You compare answers that different models gave to the same prompt. In at most 200 words: say "
    "which answer is best and why, point out mistakes, and compare speed using the figures given. "
    "Refer to the answers by their model names."
)


class ArenaError(ValueError):
    """A run that cannot be started; the message says why."""


def default_analyzer(model_ids: list[str]) -> str:
    """The task model when one is configured and routable, else the first contestant."""
    if settings.BOOCHAT_TASK_MODEL:
        try:
            return canonical_model_id(settings.BOOCHAT_TASK_MODEL)
        except RoutingError:
            pass
    return model_ids[0]


@transaction.atomic
def create_run(*, user: Any, prompt: str, model_ids: list[str], analyzer: str = "") -> ArenaRun:
    """Validate and save a run with one pending answer per model (the same model on two hosts is fine)."""
    prompt = prompt.strip()
    if not prompt:
        raise ArenaError("The prompt is empty.")
    chosen = [m for m in model_ids if m]
    if not MIN_MODELS <= len(chosen) <= MAX_MODELS:
        raise ArenaError(f"Choose {MIN_MODELS} to {MAX_MODELS} models; {len(chosen)} chosen.")
    try:
        composite = [chat_model_id(m) for m in chosen]
        analyzer_id = chat_model_id(analyzer) if analyzer else default_analyzer(composite)
        access = access_for(user.pk)
        for model_id in composite + ([analyzer_id] if analyzer else []):
            check_model(access, model_id)
    except RoutingError as exc:
        raise ArenaError(str(exc)) from None
    run = ArenaRun.objects.create(user=user, prompt=prompt, analyzer_model_id=analyzer_id)
    ArenaAnswer.objects.bulk_create(
        ArenaAnswer(run=run, position=i, model_id=model_id) for i, model_id in enumerate(composite)
    )
    return run


def _claim(answer: ArenaAnswer) -> tuple[str, Route] | None:
    """Mark a pending answer as streaming and return its prompt and route; None if another request
    already took it."""
    claimed = ArenaAnswer.objects.filter(pk=answer.pk, state=MessageState.PENDING).update(state=MessageState.STREAMING)
    if not claimed:
        return None
    return ArenaRun.objects.values_list("prompt", flat=True).get(pk=answer.run_id), resolve(answer.model_id)


async def stream_answer(answer: ArenaAnswer, meter: Meter | None = None) -> AsyncIterator[bytes]:
    """Open the answer's stream on its own host; raise RoutingError/UpstreamError (saved as failed).
    `meter` (boochat.usage) records it when it ends."""
    started = time.monotonic()
    try:
        claimed = await database.run(_claim, answer)  # and gives the connection back: the host is next
        if claimed is None:
            raise ArenaError("This answer has already been requested.")
        prompt, route = claimed
        started = time.monotonic()
        served_by(answer, route)
        body = {"messages": [{"role": "user", "content": prompt}], "stream": True,
                "stream_options": {"include_usage": True}}
        route, response = await open_chat_stream(route, body)
        served_by(answer, route)  # a pool's member may have stood in for another
    except (RoutingError, UpstreamError) as exc:
        answer.state, answer.error = MessageState.FAILED, str(exc)
        answer.duration_ms = round((time.monotonic() - started) * 1000, 1)
        await database.run(answer.update_fields, "state", "error", "duration_ms", "provider", "wire_model", "served_by")
        if meter is not None:
            meter.finish(getattr(exc, "status", STATUS_FAILED))
        raise
    except ArenaError:
        if meter is not None:
            meter.release()
        raise

    def record_timing(acc: StreamAccumulator, state: str, error: str) -> None:
        first = acc.first_token_at
        answer.ttft_ms = round((first - started) * 1000, 1) if first else None
        answer.duration_ms = round((time.monotonic() - started) * 1000, 1)
        answer.update_fields("ttft_ms", "duration_ms")

    return relay_stream(route, response, answer, record_timing, meter=meter)


def _finished_answers(run: ArenaRun) -> list[ArenaAnswer]:
    return list(run.answers.all())


def _figures(answer: ArenaAnswer) -> str:
    parts = [f"host {answer.provider or '?'}", f"state {answer.state}"]
    if answer.ttft_ms is not None:
        parts.append(f"first token after {answer.ttft_ms:.0f} ms")
    if answer.tokens_per_second:
        parts.append(f"{answer.tokens_per_second:.1f} tokens/s")
    if answer.usage and answer.usage.get("completion_tokens"):
        parts.append(f"{answer.usage['completion_tokens']} tokens")
    return ", ".join(parts)


async def analyze(run: ArenaRun, *, wait_seconds: float = 5.0) -> ArenaRun:
    """Ask the run's analyzer model to compare the answers; the result (or failure) is saved."""
    deadline = time.monotonic() + wait_seconds
    answers = await sync_to_async(_finished_answers)(run)
    # Answers stopped in the browser are saved a moment after their stream closes.
    while any(a.state in (MessageState.STREAMING, MessageState.PENDING) for a in answers) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        answers = await sync_to_async(_finished_answers)(run)
    report = "\n\n".join(
        f"### Answer {a.position + 1}: {a.model_id} ({_figures(a)})\n{a.content or '(no answer: ' + (a.error or a.state) + ')'}"
        for a in answers
    )
    try:
        route = await aresolve(run.analyzer_model_id)
        result = await complete_chat(route, [
            {"role": "system", "content": ANALYZER_PROMPT},
            {"role": "user", "content": f"## Prompt\n{run.prompt}\n\n## Answers\n\n{report}"},
        ])
        run.analysis = answer_text(result).strip()
        run.analysis_state, run.analysis_error = MessageState.COMPLETE, ""
        if not run.analysis:
            run.analysis_state, run.analysis_error = MessageState.FAILED, "The analyzer returned an empty answer."
    except (RoutingError, UpstreamError) as exc:
        run.analysis_state, run.analysis_error = MessageState.FAILED, str(exc)
    # An update, not save(): the run may have been deleted meanwhile, and must not come back.
    await ArenaRun.objects.filter(pk=run.pk).aupdate(
        analysis=run.analysis, analysis_state=run.analysis_state, analysis_error=run.analysis_error)
    return run


def export(run: ArenaRun) -> dict[str, Any]:
    """The whole run as JSON-ready data."""
    return {
        "id": run.pk,
        "created_at": run.created_at.isoformat(),
        "prompt": run.prompt,
        "analyzer_model": run.analyzer_model_id,
        "analysis": {"state": run.analysis_state, "text": run.analysis, "error": run.analysis_error},
        "answers": [
            {
                "position": a.position + 1,
                "model": a.model_id,
                "provider": a.provider,
                "wire_model": a.wire_model,
                "state": a.state,
                "error": a.error,
                "content": a.content,
                "reasoning": a.reasoning,
                "time_to_first_token_ms": a.ttft_ms,
                "duration_ms": a.duration_ms,
                "tokens_per_second": a.tokens_per_second,
                "usage": a.usage,
            }
            for a in run.answers.all()
        ],
    }


@transaction.atomic
def continue_as_chat(answer: ArenaAnswer) -> ChatSession:
    """A chat session with the answer's model holding the prompt and this answer, to go on from."""
    run = answer.run
    session = ChatSession.objects.create(user=run.user, model_id=answer.model_id, title=f"Arena: {run.prompt[:60]}")
    question = Message.objects.create(session=session, role=Message.Role.USER, content=run.prompt)
    Message.objects.create(
        session=session, parent=question, role=Message.Role.ASSISTANT, content=answer.content, reasoning=answer.reasoning,
        model_id=answer.model_id, provider=answer.provider, wire_model=answer.wire_model, state=answer.state,
        finish_reason=answer.finish_reason, error=answer.error, usage=answer.usage, timings=answer.timings,
        tokens_per_second=answer.tokens_per_second,
    )
    return session
