"""The relay shared by chat answers and arena answers: a host's answer passed on as it arrives, and
saved however it ends."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from boochat import database, inflight
from boochat.autosave import partial_answers
from boochat.models import ArenaAnswer, Message, MessageState
from boochat.orphans import STOPPED_ERROR, streaming
from boochat.sse import StreamAccumulator
from boochat.usage.recording import Meter
from providers.http import TransportError, UpstreamResponse
from providers.routing import Route

logger = logging.getLogger(__name__)

NOTE_EVERY_SECONDS = 1.0  # how often a stream hands what arrived to the autosave
OUTCOME_FIELDS = ("content", "reasoning", "tool_calls", "usage", "timings", "tokens_per_second", "finish_reason",
                  "state", "error", "provider", "wire_model", "served_by")


def record_outcome(answer: Message | ArenaAnswer, acc: StreamAccumulator, state: str, error: str,
                   prefix: tuple[str, str] = ("", "")) -> bool:
    """Save what a stream brought into an answer row (chat or arena), however it ended, after `prefix`
    (the text and reasoning a continued answer held); False if the row was deleted while it streamed
    (with its chat session or arena run): nothing is saved then."""
    acc.read()
    answer.content = prefix[0] + acc.text
    answer.reasoning = prefix[1] + acc.reasoning_text
    answer.tool_calls = acc.tool_call_list()
    answer.usage = acc.usage
    answer.timings = acc.timings
    answer.tokens_per_second = acc.tokens_per_second
    answer.finish_reason = acc.finish_reason
    answer.state = state
    answer.error = error
    if answer.update_fields(*OUTCOME_FIELDS):
        return True
    logger.info("%s %s was deleted while it streamed; its answer is not saved", type(answer).__name__, answer.pk)
    return False


def too_long(route: Route) -> str:
    """Why an answer ended at BOOCHAT_MAX_ANSWER_BYTES (stored answers stay bounded)."""
    return (f"Truncated: the answer passed BooChat's limit of {settings.BOOCHAT_MAX_ANSWER_BYTES:,} bytes "
            f"(BOOCHAT_MAX_ANSWER_BYTES); {route.provider_name} ({route.provider}) was stopped here.")


async def relay_stream(route: Route, response: UpstreamResponse, answer: Message | ArenaAnswer,
                       on_end: Callable[[StreamAccumulator, str, str], None] | None = None,
                       prefix: tuple[str, str] = ("", ""), deadline: float | None = None,
                       meter: Meter | None = None, calls_tools: bool = False, spent: int = 0) -> AsyncIterator[bytes]:
    """Yield the upstream bytes as they arrive, and save `answer` however the stream ends: complete,
    failed (the host said so), or interrupted (host dropped, or the browser left). `on_end` runs
    after the answer is saved, in the same thread, with the accumulator, state and error (not if the
    answer's row was deleted while it streamed: record_outcome). Past `deadline` (time.monotonic())
    the host is stopped, as past the size cap.

    `prefix`: the text and reasoning of a continued answer, which what arrives follows.

    `calls_tools`: the host was offered tools; a stream that ends complete with tool calls leaves the
    answer streaming (its job runs the calls and asks again), its usage carried to the next round.
    `spent`: the bytes its earlier rounds took (sent and tool results), which count toward the size cap.

    While it streams, what arrived is noted every second and saved with the next batch
    (boochat.autosave): a busy database makes those saves later, never the bytes."""
    acc = StreamAccumulator(lazy=True)  # read once a second (boochat.sse)
    name = f"{route.provider_name} ({route.provider})"
    state, error = MessageState.INTERRUPTED, "Stopped before the answer was complete."
    last_note = time.monotonic()
    received, limit = 0, settings.BOOCHAT_MAX_ANSWER_BYTES
    stopped: tuple[str, str] | None = None  # BooChat stops the stream itself: (error type, message)
    saved = inflight.relay_started()  # a worker that stops waits for this answer's save
    streaming.add(answer)  # listed for a sweep, should this process die (boochat.orphans)
    try:
        async for chunk in response.chunks():
            if meter is not None and not received:
                meter.first_byte()
            received += len(chunk)
            if spent + received > limit:  # stored answers stay bounded
                stopped = ("answer_too_long", too_long(route))
            elif deadline is not None and time.monotonic() > deadline:
                stopped = ("answer_timeout", f"Stopped after {settings.BOOCHAT_ANSWER_TIMEOUT:,} s "
                                             f"(BOOCHAT_ANSWER_TIMEOUT); {name} was stopped here.")
            elif time.monotonic() - last_note > NOTE_EVERY_SECONDS and (ended := partial_answers.ended_elsewhere(answer)):
                stopped = ended  # deleted with its chat or arena run, or stopped from another worker
            if stopped:  # the host is told to stop too (finally)
                yield b"data: " + json_bytes({"error": {"message": stopped[1], "type": stopped[0]}}) + b"\n\n"
                break
            acc.feed(chunk)
            yield chunk
            if time.monotonic() - last_note > NOTE_EVERY_SECONDS:
                last_note = time.monotonic()
                acc.read()
                partial_answers.note(answer, prefix[0] + acc.text, prefix[1] + acc.reasoning_text)
        acc.close()
        if stopped:
            error = stopped[1]  # interrupted
        elif acc.error:
            state, error = MessageState.FAILED, f"{name}: {acc.error}"
        elif calls_tools and acc.tool_calls and (acc.done or acc.finish_reason):
            state, error = MessageState.STREAMING, ""  # a round of tool calls: the answer goes on
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
    except (asyncio.CancelledError, GeneratorExit):  # the browser left, or this worker is stopping
        if inflight.stopping():
            error = STOPPED_ERROR
        raise
    finally:
        # Runs also when the browser goes away (the task is cancelled): closing the upstream
        # response closes its connection, so the host stops generating.
        response.close()
        partial_answers.drop(answer)

        def save() -> None:
            try:
                with database.answer_saves, transaction.atomic():
                    if record_outcome(answer, acc, state, error, prefix) and on_end is not None:
                        on_end(acc, state, error)
            finally:
                if meter is not None and state == MessageState.STREAMING:
                    meter.carry(acc.usage)
                elif meter is not None:
                    meter.finish_answer(answer, state, acc.usage)

        def saved_or_not(_: object) -> None:
            inflight.relay_ended(saved)
            streaming.discard(answer)

        saving = asyncio.ensure_future(database.run(save))
        saving.add_done_callback(saved_or_not)
        await asyncio.shield(saving)  # a stopping worker waits for it (boochat.asgi)


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def served_by(answer: Message | ArenaAnswer, route: Route) -> None:
    """Record on `answer` the host and model that serve it (and the member, for a pool)."""
    answer.provider, answer.wire_model = route.provider, route.wire_model
    answer.served_by = str(route.ref) if route.pool else ""
