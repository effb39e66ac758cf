"""Rows read on every request, kept in this process instead of queried each time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.module_loading import import_string

T = TypeVar("T")


class Snapshot(Generic[T]):
    """The result of `load()` (a few small queries), kept for `ttl` seconds.

    Writes made in this process call `forget()` (`follow()`'s signals, or SnapshotRowsQuerySet's
    update()), so they are seen at once; writes made by other processes (more gunicorn workers,
    management commands) are seen within `ttl` seconds."""

    def __init__(self, load: Callable[[], T], ttl: float = 1.0):
        self._load = load
        self.ttl = ttl
        self._value: tuple[float, T] | None = None

    def fresh(self) -> T | None:
        """The kept value while it is fresh, else None (no database access)."""
        kept = self._value
        if kept is not None and time.monotonic() - kept[0] < self.ttl:
            return kept[1]
        return None

    def get(self) -> T:
        kept = self.fresh()
        if kept is None:
            loaded_at = time.monotonic()
            kept = self._load()
            self._value = (loaded_at, kept)
        return kept

    async def aget(self) -> T:
        """`get()` from async code: no thread hop while the value is fresh."""
        kept = self.fresh()
        return kept if kept is not None else await sync_to_async(self.get)()

    def forget(self, **_signal: object) -> None:
        """Drop the value now, and again when the current transaction commits (a reload in between
        would not yet have seen the change). Usable as a signal receiver."""
        self._value = None
        if transaction.get_connection().in_atomic_block:
            transaction.on_commit(self._drop)

    def _drop(self) -> None:
        self._value = None

    def follow(self, *sources: type[models.Model]) -> None:
        """Drop the value whenever a row of these models is saved or deleted in this process (call
        from an AppConfig.ready(); connecting twice is harmless)."""
        for model in sources:
            post_save.connect(self.forget, sender=model)
            post_delete.connect(self.forget, sender=model)


class SnapshotRowsQuerySet(models.QuerySet):
    """Rows a Snapshot holds. update() sends no signals, so it drops the snapshot itself; subclasses
    name it in `snapshot` as "module.attribute" (imported on use: that module imports the models)."""

    snapshot = ""

    def update(self, **kwargs: Any) -> int:
        try:
            return super().update(**kwargs)
        finally:
            import_string(self.snapshot).forget()
