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

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

from boochat.proxy import release_connection

T = TypeVar("T")

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
