"""Where a chat request's database work runs.

By default, as for any Django view, in the request's own thread (`sync_to_async`). A streamed chat
send on boochat.handler's short path runs it on a few long-lived threads instead, and so does the
gateway (boochat.gateway) for all of its own. A stream lasts
minutes and saves its answer as it goes; in its own thread each stream would hold its own
connection all along, and on SQLite each connection keeps its own page cache: 1,000 open chat streams
measured 310 MB in the worker that way, 177 MB on these threads (bench/streams_load.py). On SQLite
these threads keep their connections (a new one costs about a millisecond). Wherever it runs, a piece
of work gives its connection back to the pool when it ends (boochat.proxy.release_connection).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from asgiref.sync import sync_to_async

from boochat.proxy import release_connection

T = TypeVar("T")
R = TypeVar("R")
logger = logging.getLogger(__name__)

# Two: more threads wanting the GIL leave the event loop less of it while a burst of sends is
# admitted. 500 chats at once, alternating runs: chunk lag p99 76-96 ms with four, 52-71 ms with two;
# time to first byte p50 1.6 s against 1.3-1.6 s. One thread did about as well (lag 45-83 ms, TTFB p99
# a little lower), but would queue every send in the worker behind its slowest piece of database work.
_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chat-db")
_shared: ContextVar[bool] = ContextVar("boochat_shared_database_threads", default=False)


def use_shared_threads() -> None:
    """From here on, this request's `run()` calls use the long-lived threads."""
    _shared.set(True)


def _releasing(work: Callable[..., T]) -> Callable[..., T]:
    def job(*args: Any) -> T:
        try:
            return work(*args)
        finally:
            release_connection()

    return job


async def on_shared_threads(work: Callable[..., T], *args: Any) -> T:
    """Run synchronous ORM code on the long-lived threads, whatever the request (the gateway, which
    no Django request wraps, runs all its database work here)."""
    return await sync_to_async(_releasing(work), thread_sensitive=False, executor=_THREADS)(*args)


async def run(work: Callable[..., T], *args: Any) -> T:
    """Run synchronous ORM code for this request (see the module docstring for where). Afterwards the
    connection goes back to the pool (SQLite keeps it): what follows may wait minutes on a host."""
    if _shared.get():
        return await on_shared_threads(work, *args)
    return await sync_to_async(_releasing(work))(*args)


class Batched(Generic[T, R]):
    """`work(items)` on the long-lived threads for every item submitted while the previous call ran:
    one thread hop, and as few queries as `work` can manage, for a burst of requests; a lone request
    is a batch of one. `work` returns one result per item, in order. A result whose request went
    away while it waited is handed to `orphaned` (on the same thread), so that nothing half-done is
    left behind. `run(work, items)` runs a batch somewhere else than on these threads."""

    def __init__(self, work: Callable[[list[T]], Sequence[R]], *, limit: int = 100,
                 orphaned: Callable[[list[R]], None] | None = None,
                 run: Callable[[Callable[[list[T]], Sequence[R]], list[T]], Awaitable[Sequence[R]]] = on_shared_threads,
                 ) -> None:
        self.work, self.limit, self.orphaned, self.run = work, limit, orphaned, run
        # Per event loop: the items waiting with their futures, and the task that runs the batches.
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[list[Any], list[Any]]] = \
            weakref.WeakKeyDictionary()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        waiting, running = self._loops.setdefault(loop, ([], []))
        future: asyncio.Future[R] = loop.create_future()
        waiting.append((item, future))
        if not running:
            running.append(loop.create_task(self._drain(waiting, running)))
        return await future

    async def _drain(self, waiting: list[tuple[T, asyncio.Future[R]]], running: list[asyncio.Task[None]]) -> None:
        taken: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while waiting:
                taken = waiting[:self.limit]
                del waiting[:self.limit]
                try:
                    # Shielded: the batch's rows are written whatever becomes of the requests.
                    results = await asyncio.shield(self.run(self.work, [item for item, _ in taken]))
                except Exception as exc:  # every request of the batch answers with it
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                orphans = []
                for (_, future), result in zip(taken, results, strict=True):
                    if future.done():  # cancelled: its request went away
                        orphans.append(result)
                    else:
                        future.set_result(result)
                if orphans and self.orphaned is not None:
                    try:
                        await on_shared_threads(self.orphaned, orphans)
                    except Exception:  # the requests still waiting must not pay for it
                        logger.exception("Could not clean up after %d abandoned requests", len(orphans))
        finally:
            running.clear()
            for _, future in taken + waiting:  # only if the loop itself is going away
                future.cancel()
