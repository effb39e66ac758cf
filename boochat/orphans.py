"""Answers whose process died without a word (SIGKILL to the whole service, a crash, the OOM killer).
Each app process lists the answers it streams in a file of its own that it keeps locked; the kernel
drops the lock with the process, so a sweep that can take a file's lock knows its answers are orphans
and marks them interrupted at once, instead of waiting out the provider's read timeout
(boochat.autosave.interrupt_stale_answers, which stays for answers no file lists: those of
another machine, or of a process killed in the second before its file was written)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import connection

from boochat.models import ArenaAnswer, Message, MessageState

logger = logging.getLogger(__name__)

KINDS: dict[str, type[Message] | type[ArenaAnswer]] = {"message": Message, "arena": ArenaAnswer}
STOPPED_ERROR = "BooChat stopped while this answer was streaming; what arrived is kept."


def directory() -> Path:
    """One folder per database: the pks listed mean nothing in another (a test database, a copy)."""
    db = connection.settings_dict
    database = hashlib.sha256(f"{db['ENGINE']} {db['HOST']} {db['PORT']} {db['NAME']}".encode()).hexdigest()[:16]
    return Path(settings.DATA_DIR) / "streaming" / database


def kind_of(answer: Message | ArenaAnswer) -> str:
    return "arena" if isinstance(answer, ArenaAnswer) else "message"


class StreamingList:
    """This process's answers that stream, written to its locked file each second when they change."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self._answers: set[tuple[str, int]] = set()
        self._changed = False
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._writer: threading.Thread | None = None

    def add(self, answer: Message | ArenaAnswer) -> None:
        with self._lock:
            self._answers.add((kind_of(answer), answer.pk))
            self._changed = True
            if self._writer is None or not self._writer.is_alive():  # in the process that streams
                self._writer = threading.Thread(target=self._write_forever, name="streaming-list", daemon=True)
                self._writer.start()

    def discard(self, answer: Message | ArenaAnswer) -> None:
        with self._lock:
            self._answers.discard((kind_of(answer), answer.pk))
            self._changed = True

    def write(self) -> None:
        """Rewrite the file if the answers changed, in place: the lock is on the file, not the name."""
        with self._lock:
            if not self._changed:
                return
            lines, self._changed = "".join(f"{kind} {pk}\n" for kind, pk in sorted(self._answers)), False
        if self._file is None:
            directory().mkdir(mode=0o700, parents=True, exist_ok=True)
            self._file = open(directory() / f"{os.getpid()}-{uuid.uuid4().hex}", "w")  # noqa: SIM115 - held for life
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(lines)
        self._file.flush()

    def _write_forever(self) -> None:
        while True:
            time.sleep(self.every)
            try:
                self.write()
            except OSError:
                logger.warning("Could not write the list of streaming answers", exc_info=True)


streaming = StreamingList()


def interrupt_orphaned_answers() -> int:
    """Mark the answers listed by processes that are gone as interrupted (those still streaming);
    how many."""
    count = 0
    for path in sorted(directory().glob("*")) if directory().is_dir() else []:
        try:
            listing = open(path)  # noqa: SIM115 - closed below, after its lock is taken
        except FileNotFoundError:  # another sweep was first
            continue
        with listing:
            try:
                fcntl.flock(listing, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process is alive (this one included)
                continue
            listed: dict[str, list[int]] = {}
            for line in listing.read().splitlines():
                kind, _, pk = line.partition(" ")
                if kind in KINDS and pk.isdigit():
                    listed.setdefault(kind, []).append(int(pk))
            for kind, pks in listed.items():
                count += KINDS[kind].objects.filter(pk__in=pks, state=MessageState.STREAMING).update(
                    state=MessageState.INTERRUPTED, error=STOPPED_ERROR)
            path.unlink(missing_ok=True)
    if count:
        logger.info("Marked %d answers of processes that died as interrupted", count)
    return count
