"""Answers still streaming in this process, stopped and saved before a worker exits. uvicorn's graceful
stop cancels its own request tasks, not the task Django streams a response in, and closes the event
loop soon after: without this, a stream would be cut without its answer being saved."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)

# How long a stopping worker waits for the last saves: gunicorn kills it 3 s after uvicorn gives up on
# the open connections (boochat.workers), and a save is one UPDATE.
FINAL_SAVES_SECONDS = 2.5

_relays: dict[asyncio.Future[None], asyncio.Task[object] | None] = {}
_stopping = False


def relay_started() -> asyncio.Future[None]:
    """Register the relay running in the current task; set the returned future's result (relay_ended)
    once its answer is saved."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _relays[done] = asyncio.current_task()
    done.add_done_callback(lambda _: _relays.pop(done, None))
    return done


def relay_ended(done: asyncio.Future[None]) -> None:
    """The relay's answer is saved (or could not be): the worker need not wait for it any more."""
    if not done.done():
        done.set_result(None)


def stopping() -> bool:
    """Whether this worker is stopping (its relays were cancelled by stop_relays)."""
    return _stopping


async def stop_relays(timeout: float = FINAL_SAVES_SECONDS) -> int:
    """Stop every open relay (its host's request is closed) and wait until each has saved its answer,
    at most `timeout` seconds; how many were open."""
    global _stopping
    _stopping = True
    open_relays = dict(_relays)
    if not open_relays:
        return 0
    logger.info("Saving %d answers still streaming before this worker exits", len(open_relays))
    for task in open_relays.values():
        if task is not None:
            task.cancel()
    _, pending = await asyncio.wait(open_relays, timeout=timeout)
    if pending:
        logger.warning("%d answers were not saved in time; the stale-answer sweep will mark them", len(pending))
    return len(open_relays)
