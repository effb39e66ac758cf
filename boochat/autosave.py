"""Answers saved while they stream, so that what arrived survives a process that dies mid-answer;
and answers such a process left "streaming", marked interrupted.

Streams only note their text; one thread per process writes every noted answer each second, in one
UPDATE per batch of rows, only where the row is still streaming: an answer's final save
(boochat.chat.relay) wins whenever a batch runs, and a slow or locked database delays batches, never
a stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Case, TextField, Value, When
from django.utils import timezone

from boochat.database import release_connection
from boochat.models import ArenaAnswer, Message, MessageState
from boochat.orphans import STOPPED_ERROR
from providers.models import Provider

logger = logging.getLogger(__name__)
STOPPED_BY_USER = "Stopped before the answer was complete."
BATCH = 100  # rows one UPDATE carries: five parameters each, within every backend's limit


class PartialAnswers:
    """The latest noted text of each streaming answer, until the writer thread saves it every
    `every` seconds (None: only when write() is called)."""

    def __init__(self, every: float | None = 1.0) -> None:
        self.every = every
        self._noted: dict[tuple[type[Message | ArenaAnswer], int], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        # Answers whose rows a batch found deleted (their chat was deleted or put in the trash) or no
        # longer streaming (a Stop from another worker marked them): their streams stop, with (error
        # type, message).
        self._gone: dict[tuple[type[Message | ArenaAnswer], int], tuple[str, str]] = {}

    def note(self, answer: Message | ArenaAnswer, content: str, reasoning: str) -> None:
        """Save this text for `answer` with the next batch (a later note replaces it)."""
        with self._lock:
            self._noted[type(answer), answer.pk] = (content, reasoning)
            if self.every is not None and (self._writer is None or not self._writer.is_alive()):
                # Started by the first note, so in the process that streams (not gunicorn's master).
                self._writer = threading.Thread(target=self._write_forever, name="partial-answers", daemon=True)
                self._writer.start()

    def drop(self, answer: Message | ArenaAnswer) -> None:
        """The stream ended: its final save carries everything."""
        with self._lock:
            self._noted.pop((type(answer), answer.pk), None)
            self._gone.pop((type(answer), answer.pk), None)

    def ended_elsewhere(self, answer: Message | ArenaAnswer) -> tuple[str, str] | None:
        """Whether a batch found the answer's row deleted (with its chat or run) or stopped from
        elsewhere: the error's type and message, or None."""
        return self._gone.get((type(answer), answer.pk))

    def write(self) -> int:
        """Save every noted answer that is still streaming, now; how many were noted."""
        with self._lock:
            noted, self._noted = self._noted, {}
        if not noted:
            return 0
        by_model: dict[type[Message | ArenaAnswer], list[tuple[int, str, str]]] = defaultdict(list)
        for (model, pk), (content, reasoning) in noted.items():
            by_model[model].append((pk, content, reasoning))
        try:
            with transaction.atomic():
                for model, rows in by_model.items():
                    for start in range(0, len(rows), BATCH):
                        batch = rows[start:start + BATCH]
                        _write_batch(model, batch)
                        ids = [row[0] for row in batch]
                        # A chat in the trash stops its answers as a deleted one does.
                        alive = (Message.objects.filter(pk__in=ids, session__deleted_at__isnull=True) if model is Message
                                 else model.objects.filter(pk__in=ids))
                        kept = dict(alive.values_list("pk", "state"))
                        with self._lock:
                            for row in batch:
                                if row[0] not in kept:
                                    self._gone[model, row[0]] = ("deleted", "Deleted while it streamed.")
                                elif kept[row[0]] != MessageState.STREAMING:
                                    self._gone[model, row[0]] = ("stopped", STOPPED_BY_USER)
        except DatabaseError as exc:
            logger.warning("Could not save %d partial answers (their final saves will carry them): %s", len(noted), exc)
        finally:
            release_connection()
        return len(noted)

    def _write_forever(self) -> None:
        while True:
            time.sleep(self.every or 1.0)
            try:
                self.write()
            except Exception:  # the writer must outlive any one batch
                logger.exception("Saving partial answers failed")


def _write_batch(model: type[Message | ArenaAnswer], rows: list[tuple[int, str, str]]) -> None:
    """One UPDATE for these (pk, content, reasoning) rows, of those still streaming."""
    def by_pk(column: int) -> Case:
        return Case(*(When(pk=row[0], then=Value(row[column])) for row in rows), output_field=TextField())

    model.objects.filter(pk__in=[row[0] for row in rows], state=MessageState.STREAMING).update(
        content=by_pk(1), reasoning=by_pk(2), updated_at=timezone.now())


partial_answers = PartialAnswers()


def interrupt_stale_answers(model: type[Message] | type[ArenaAnswer], **filters: Any) -> int:
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
        state=MessageState.INTERRUPTED, error=STOPPED_ERROR,
    )


def interrupt_all_stale_answers() -> int:
    """interrupt_stale_answers() for every chat and arena answer."""
    count = interrupt_stale_answers(Message) + interrupt_stale_answers(ArenaAnswer)
    if count:
        logger.info("Marked %d answers left streaming by a stopped process as interrupted", count)
    return count
