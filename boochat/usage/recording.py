"""Usage records: made when a gateway request or an answer ends, handed to a writer thread of this
process, and written in batches with bulk_create. Nothing here waits on the database in a request's path."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from boochat import limits
from providers.access import access_for, check_model

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL refuses NUL; no database encodes a lone surrogate
# An answer's status in its record: as an HTTP reply's would be.
STATUS_STOPPED = 499  # stopped (Stop, the tab closed) before it was complete
STATUS_FAILED = 502  # the host failed
PRUNE_EVERY = 86400.0


@dataclass
class Use:
    """One request's use, as it will be stored (boochat.models.UsageRecord)."""

    source: str
    model_id: str
    user_id: int | None = None
    key_id: int | None = None
    endpoint: str = ""
    served_by: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    status: int = 200
    at: datetime = field(default_factory=timezone.now)
    limit_names: tuple[str, ...] = ()  # the counts its tokens go to (boochat.limits)

    def add_usage(self, usage: Any) -> None:
        """Take the token counts from a host's `usage` object (OpenAI's fields; llama-server's cached tokens)."""
        if not isinstance(usage, dict):
            return
        self.prompt_tokens = _count(usage.get("prompt_tokens", usage.get("input_tokens")))
        self.completion_tokens = _count(usage.get("completion_tokens", usage.get("output_tokens")))
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        self.cached_tokens = _count(cached if cached is not None else 0) or _count(usage.get("cache_read_input_tokens"))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass
class Meter:
    """One request or answer being measured: its limits' admission and its usage record."""

    use: Use
    started: float = field(default_factory=time.monotonic)
    admission: limits.Admission | None = None
    stream: StreamUsage | None = None  # a gateway stream's usage event, read as it passes
    finished: bool = False
    carried: list[dict[str, Any]] = field(default_factory=list)  # usage of the answer's earlier rounds

    def release(self) -> None:
        """Give the stream's limit back without a record (the answer was never asked for)."""
        self.finished = True
        if self.admission is not None:
            self.admission.release()

    def first_byte(self) -> None:
        if self.use.ttfb_ms is None:
            self.use.ttfb_ms = (time.monotonic() - self.started) * 1000

    def finish(self, status: int, usage: Any = None) -> None:
        """Give the stream's limit back and record the request (once)."""
        if self.finished:
            return
        self.finished = True
        if self.admission is not None:
            self.admission.release()
        self.use.status = status
        self.use.duration_ms = (time.monotonic() - self.started) * 1000
        self.use.add_usage(self.stream.usage if self.stream is not None else usage)
        record(self.use)

    def carry(self, usage: Any) -> None:
        """Keep the tokens of an answer's round of tool calls, counted with the rest of the answer."""
        if isinstance(usage, dict):
            self.carried = [*self.carried, usage]

    def finish_answer(self, answer: Any, state: str, usage: Any) -> None:
        """Record a chat or arena answer as its stream ended (`state` is a MessageState), with the
        tokens of its earlier rounds of tool calls."""
        if self.carried:
            usage = summed_usage([*self.carried, *([usage] if isinstance(usage, dict) else [])])
        self.use.model_id = answer.model_id or self.use.model_id
        self.use.served_by = answer.served_by or (f"{answer.provider}/{answer.wire_model}" if answer.provider else "")
        self.finish({"complete": 200, "failed": STATUS_FAILED}.get(state, STATUS_STOPPED), usage)


def summed_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """The token counts of several requests that make one answer, in OpenAI's fields."""
    counted = [Use(source="", model_id="") for _ in usages]
    for one, usage in zip(counted, usages, strict=True):
        one.add_usage(usage)
    return {"prompt_tokens": sum(u.prompt_tokens for u in counted), "completion_tokens": sum(u.completion_tokens for u in counted),
            "prompt_tokens_details": {"cached_tokens": sum(u.cached_tokens for u in counted)}}


def admit_answer(user_id: int, model_id: str, source: str) -> Meter:
    """Admit a chat or arena answer of this user: ModelNotAllowed if their groups do not allow the
    model (RoutingError if it names no known provider), LimitReached past one of their limits; else its meter."""
    composite = check_model(access_for(user_id), model_id)
    subjects = limits.subjects_for(user_id) if settings.BOOCHAT_USAGE else []
    admission = limits.admit(subjects, stream=True)
    return Meter(Use(source, composite, user_id=user_id, limit_names=tuple(s.name for s in subjects)),
                 admission=admission)


class Recorder:
    """This process's queue of records and the thread that writes them."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Use] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.lock = threading.Lock()
        self.pruned_at = 0.0
        self.unwritten = 0  # records queued or being written

    def record(self, use: Use) -> None:
        if not settings.BOOCHAT_USAGE:
            return
        with self.lock:
            self.unwritten += 1
        self.queue.put(use)
        if not settings.BOOCHAT_USAGE_WRITER:
            return  # written by flush() alone
        if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
            self._start()

    def _start(self) -> None:
        with self.lock:
            if self.thread is not None and self.pid == os.getpid() and self.thread.is_alive():
                return
            self.pid = os.getpid()
            self.thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
            self.thread.start()

    def _take(self, first: Use) -> list[Use]:
        # Asleep until the batch is due, then everything that came: waking for each record would
        # take the GIL from the event loop hundreds of times a second.
        time.sleep(settings.BOOCHAT_USAGE_FLUSH_SECONDS)
        batch = [first]
        while len(batch) < BATCH_SIZE:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take(self.queue.get())
            try:
                self.write(batch)
            except Exception:  # noqa: BLE001 - the writer outlives one failed batch
                logger.exception("%d usage records could not be written", len(batch))
            finally:
                connection.close()
                self._written(len(batch))

    def _written(self, count: int) -> None:
        with self.lock:
            self.unwritten -= count

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every record made so far is written (or failed); False past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.unwritten > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.unwritten <= 0

    def write(self, batch: list[Use]) -> None:
        """Store records and count their tokens against the daily limits."""
        from django.contrib.auth import get_user_model

        from boochat.models import GatewayKey, UsageRecord

        # A user or key deleted since the request would fail the whole batch: its records keep no owner.
        users = set(get_user_model().objects.filter(pk__in={u.user_id for u in batch}).values_list("pk", flat=True))
        keys = set(GatewayKey.objects.filter(pk__in={u.key_id for u in batch}).values_list("pk", flat=True))
        UsageRecord.objects.bulk_create(UsageRecord(
            at=u.at, user_id=u.user_id if u.user_id in users else None, key_id=u.key_id if u.key_id in keys else None,
            source=u.source, endpoint=storable(u.endpoint)[:40], model_id=storable(u.model_id)[:330],
            served_by=storable(u.served_by)[:330], prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens, ttfb_ms=u.ttfb_ms,
            duration_ms=u.duration_ms, status=u.status) for u in batch)
        tokens: dict[str, int] = {}
        for use in batch:
            for name in use.limit_names:
                tokens[name] = tokens.get(name, 0) + use.prompt_tokens + use.completion_tokens
        limits.add_tokens(tokens)
        if time.monotonic() - self.pruned_at > PRUNE_EVERY:
            self.pruned_at = time.monotonic()
            prune()

    def discard(self) -> int:
        """Drop the records not yet taken by the writer (the test suite, between tests)."""
        dropped = 0
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
            dropped += 1
        self._written(dropped)
        return dropped

    def flush(self) -> int:
        """Write what is waiting now, in the calling thread (management commands, shutdown)."""
        batch = []
        while True:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        try:
            if batch:
                self.write(batch)
        finally:
            self._written(len(batch))
        return len(batch)


recorder = Recorder()


def record(use: Use) -> None:
    """Hand a record to this process's writer."""
    recorder.record(use)


def storable(text: str) -> str:
    """`text` as every database stores it: a model id a client sent may hold anything, and one record
    that cannot be written would lose its whole batch."""
    return _UNSTORABLE.sub("\ufffd", text)


def prune(days: int | None = None) -> int:
    """Delete records older than BOOCHAT_USAGE_DAYS; how many went."""
    from boochat.models import UsageRecord

    days = settings.BOOCHAT_USAGE_DAYS if days is None else days
    deleted, _ = UsageRecord.objects.filter(at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted


def usage_in_body(body: bytes) -> Any:
    """The `usage` object of a whole JSON answer, read from its end (an embeddings answer can be large)."""
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    colon = body.find(b":", at + 7)
    try:
        value, _ = json.JSONDecoder().raw_decode(body[colon + 1:].decode("utf-8", "replace").lstrip())
    except ValueError:
        return None
    return value


class StreamUsage:
    """Reads the usage event of a chat stream as its lines pass, and takes it out when the client did
    not ask for it (BooChat asks the host with stream_options.include_usage to count the tokens)."""

    def __init__(self, *, drop: bool):
        self.drop = drop
        self.usage: Any = None
        self.skip_blank = False

    def lines(self, block: bytes) -> bytes:
        """`block` of whole lines, with the usage event removed if it is to be dropped."""
        if b'"usage"' not in block and not self.skip_blank:
            return block
        kept = []
        for line in block.splitlines(keepends=True):
            if self.skip_blank:
                self.skip_blank = False
                if not line.strip():
                    continue
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    event = None
                found = _event_usage(event)
                if found is not None:
                    # Anthropic's stream tells input tokens at its start and output tokens at its end.
                    self.usage = {**self.usage, **found} if isinstance(self.usage, dict) else found
                    if self.drop and isinstance(event, dict) and event.get("choices") == []:
                        self.skip_blank = True
                        continue
            kept.append(line)
        return b"".join(kept)


def _event_usage(event: Any) -> dict[str, Any] | None:
    """The usage an event carries: Chat Completions' top-level `usage`, Responses' `response.usage`,
    Anthropic's `message.usage` or `usage`."""
    if not isinstance(event, dict):
        return None
    for holder in (event, event.get("response"), event.get("message")):
        if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
            return {k: v for k, v in holder["usage"].items() if v is not None}
    return None
