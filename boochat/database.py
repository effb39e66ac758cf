"""Database work of requests that stream: each piece gives its connection back when it ends, because
what follows waits seconds to minutes on a host, and a connection held all along would be one fewer
for everyone else (PostgreSQL allows about a hundred; SQLite keeps a page cache per connection)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

T = TypeVar("T")

# Answers' final saves, at most this many at once per process (each one short transaction): a burst
# of answers that end together (streams started together) would otherwise take every connection of
# the pool while new sends wait for one (docs/performance.md). The others wait in their threads,
# holding no connection.
ANSWER_SAVES_AT_ONCE = 4
answer_saves = threading.BoundedSemaphore(ANSWER_SAVES_AT_ONCE)


def release_connection() -> None:
    """Close this thread's database connection (back to the pool, on PostgreSQL); the next query opens
    one again. Inside a transaction (the test suite's) the connection stays."""
    if not connection.in_atomic_block:
        connection.close()


def _releasing(work: Callable[..., T]) -> Callable[..., T]:
    def job(*args: Any) -> T:
        try:
            return work(*args)
        finally:
            release_connection()

    return job


async def run(work: Callable[..., T], *args: Any) -> T:
    """Run synchronous ORM code as Django runs it for an async view (sync_to_async), then give the
    connection back."""
    return await sync_to_async(_releasing(work))(*args)
