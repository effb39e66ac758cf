"""What streaming answers have received so far, saved in batches while they stream.

An answer that is still streaming is saved every few seconds, so that what arrived survives an app
process that dies mid-answer (chat.interrupt_stale_answers shows it as interrupted later). Saved one
by one, each from its own stream, that was a thread hop and an ORM update per stream every two
seconds: at 500 streams, 15 % of the worker's CPU (bench/streams_load.py). Here the streams only
note their text, and one thread per process writes all noted answers every second, in one
statement per model (`executemany`: 500 answers in about 2 ms on SQLite, where 500 ORM updates took
50 ms).

A batch never overwrites a finished answer: it only updates rows still marked streaming, so an
answer's final save (chat.record_outcome) wins whenever a batch runs, and a stream need not wait for
one. The database being slow or locked delays batches, never a stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from boochat.models import GeneratedText, MessageState
from boochat.proxy import release_connection

logger = logging.getLogger(__name__)


class PartialAnswers:
    """The latest noted text of each streaming answer, until the writer thread saves it every
    `every` seconds (None: only when write() is called)."""

    def __init__(self, every: float | None = 1.0) -> None:
        self.every = every
        self._noted: dict[tuple[type[GeneratedText], int], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None

    def note(self, answer: GeneratedText, content: str, reasoning: str) -> None:
        """Save this text for `answer` with the next batch (a later note replaces it)."""
        with self._lock:
            self._noted[type(answer), answer.pk] = (content, reasoning)
            if self.every is not None and (self._writer is None or not self._writer.is_alive()):
                # Started by the first note, so in the process that streams (not gunicorn's master).
                self._writer = threading.Thread(target=self._write_forever, name="partial-answers", daemon=True)
                self._writer.start()

    def drop(self, answer: GeneratedText) -> None:
        """The stream ended: its final save carries everything."""
        with self._lock:
            self._noted.pop((type(answer), answer.pk), None)

    def write(self) -> int:
        """Save every noted answer that is still streaming, now; how many were noted."""
        with self._lock:
            noted, self._noted = self._noted, {}
        if not noted:
            return 0
        now = timezone.now()
        rows: dict[type[GeneratedText], list[tuple[object, ...]]] = defaultdict(list)
        for (model, pk), (content, reasoning) in noted.items():
            rows[model].append((content, reasoning, now, pk, MessageState.STREAMING.value))
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for model, values in rows.items():
                    cursor.executemany(_update_sql(model), values)
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


def _update_sql(model: type[GeneratedText]) -> str:
    quote, meta = connection.ops.quote_name, model._meta
    column = {name: quote(meta.get_field(name).column) for name in ("content", "reasoning", "updated_at", "state")}
    return (f"UPDATE {quote(meta.db_table)} SET {column['content']} = %s, {column['reasoning']} = %s, "
            f"{column['updated_at']} = %s WHERE {quote(meta.pk.column)} = %s AND {column['state']} = %s")


partial_answers = PartialAnswers()
