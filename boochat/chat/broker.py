"""How an answer's events reach its readers. The job keeps them in its process (boochat.chat.jobs);
with REDIS_URL it also adds them to a Redis Stream per answer, which readers on any worker or
instance follow. Without Redis, or with Redis down, a reader elsewhere follows the autosaved text.

The SSE a reader gets: `id: <n>` then event n, for each of the host's events and, among them, an
`event: block` after each event that finished Markdown blocks (so a reconnect with `Last-Event-ID: n`
goes on after it); `event: snapshot` with the whole text so far when only the saved text can be read
(it resets the id); and `event: end` with the answer's state and error once it is saved.

Finished blocks are rendered once per answer, by its job (boochat.markdown_blocks), not per reader: a
`block` event is one more event of the answer, kept, numbered and sent through Redis like the host's,
so resuming, a reader joining late and readers on other instances get the rendered blocks with no
work of their own. A block event carries the sanitized HTML and how many characters of the text so
far it replaces; the page shows that HTML and keeps the rest as text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio
from django.conf import settings
from redis.exceptions import RedisError

from boochat import database
from boochat.markdown_blocks import FinishedPart, StreamedMarkdown
from boochat.models import Message, MessageState
from boochat.orphans import STOPPED_ERROR
from boochat.sse import StreamAccumulator

logger = logging.getLogger(__name__)

STREAM_MAX_EVENTS = 200_000  # more than an answer within BOOCHAT_MAX_ANSWER_BYTES has (XADD MAXLEN)
ENDED_TTL_SECONDS = 300  # a stream stays this long after its answer ends, for readers reconnecting
READ_BLOCK_MS = 1000
POLL_SECONDS = 1.0  # the autosave writes each second
KEEP_ALIVE_SECONDS = 15.0  # a comment on a quiet stream, before a proxy's read timeout drops it
ALIVE_TTL_SECONDS = 10  # an answer's heartbeat key outlives its job's process by at most this
ALIVE_EVERY_SECONDS = 3.0  # the job renews it this often: two renewals may fail before it lapses

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, redis.asyncio.Redis]] = weakref.WeakKeyDictionary()


def redis_client(*, waiting: bool = False) -> redis.asyncio.Redis:
    """This event loop's Redis client (a client is bound to the loop that opened its connections);
    `waiting`: the one whose reads wait as long as they must (a subscription), not the request's timeout."""
    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, {})
    if waiting not in clients:
        timeout = settings.BOOCHAT_CACHE_TIMEOUT
        clients[waiting] = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=timeout,
            socket_timeout=None if waiting else timeout + READ_BLOCK_MS / 1000)
    return clients[waiting]


def stream_key(answer_pk: int) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "boochat")
    return f"{prefix}:answer:{answer_pk}"


def alive_key(answer_pk: int) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "boochat")
    return f"{prefix}:answer-alive:{answer_pk}"


def event_bytes(n: int, block: bytes) -> bytes:
    return b"id: %d\n%s\n\n" % (n, block)


def end_event(end: dict[str, str]) -> bytes:
    return b"event: end\ndata: " + json.dumps(end, separators=(",", ":")).encode() + b"\n\n"


def snapshot_event(content: str, reasoning: str, rendered: Sequence[FinishedPart] = (),
                   tool_rounds: list[dict[str, Any]] | None = None) -> bytes:
    """The whole text so far and the HTML of its finished blocks (they replace its first `length`
    characters); an answer calling tools also carries its rounds (the text is the current round's)."""
    saved: dict[str, Any] = {"content": content, "reasoning": reasoning, "html": "".join(part.html for part in rendered),
                             "length": sum(_browser_length(part.source) for part in rendered),
                             **({"tool_rounds": tool_rounds} if tool_rounds else {})}
    data = json.dumps(saved, separators=(",", ":")).encode()
    return b"id\nevent: snapshot\ndata: " + data + b"\n\n"


def block_event(part: FinishedPart) -> bytes:
    """Finished blocks: their HTML, and how many characters of the text before them they replace."""
    data = json.dumps({"html": part.html, "length": _browser_length(part.source)}, separators=(",", ":")).encode()
    return b"event: block\ndata: " + data


def _browser_length(text: str) -> int:
    """The length of `text` as JavaScript counts it (UTF-16 code units), so the page cuts where the server did."""
    return len(text.encode("utf-16-le")) // 2


# A JSON string's line end: a block can only finish at one (the text of an event is read only then).
_LINE_END_ESCAPE = re.compile(rb"\\[nr]|\\u000[aAdD]")


class AnswerBlocks:
    """An answer's finished Markdown blocks, from its host's events: their text is read only when an
    event holds a line end, or follows one, so most events cost a byte search, and no JSON read."""

    def __init__(self) -> None:
        self.markdown = StreamedMarkdown()
        self.text = StreamAccumulator()
        self.read = 0  # of self.text.content
        self.unread: list[bytes] = []
        self.line_ended = False  # the next event may begin a paragraph, which finishes the blocks before

    def feed(self, event: bytes) -> bytes | None:
        """The host's next event; a `block` event if it finished blocks."""
        self.unread.append(event)
        line_ended, self.line_ended = self.line_ended, _LINE_END_ESCAPE.search(event) is not None
        if not (line_ended or self.line_ended):
            return None
        self.text.feed(b"".join(block + b"\n\n" for block in self.unread))
        self.unread.clear()
        text, self.read = "".join(self.text.content[self.read:]), len(self.text.content)
        part = self.markdown.feed(text)
        return block_event(part) if part is not None else None


class EventSplitter:
    """A host's SSE bytes, as they arrive, cut into whole events (comments such as DeepSeek's
    `: keep-alive` dropped)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self.buffer = (self.buffer + chunk).replace(b"\r\n", b"\n")
        if b"\n\n" not in self.buffer:
            return []
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        return [block for block in blocks if _is_event(block)]

    def close(self) -> list[bytes]:
        rest, self.buffer = self.buffer.strip(b"\n"), b""
        return [rest] if _is_event(rest) else []


def _is_event(block: bytes) -> bool:
    return any(line and not line.startswith(b":") for line in block.split(b"\n"))


class RedisFeed:
    """An answer's events added to its Redis Stream in the background, those that came while the last
    batch was written in one entry, so a slow or lost Redis never delays the answer and a fast answer
    costs few commands; once Redis fails the feed stops (readers elsewhere then follow the saved text).
    While the answer is written it also renews its heartbeat key, so a reader on any machine learns
    within seconds that the process writing it died (read_redis)."""

    def __init__(self, answer_pk: int) -> None:
        self.key = stream_key(answer_pk)
        self.alive_key = alive_key(answer_pk)
        self.running_ttl = settings.BOOCHAT_ANSWER_TIMEOUT + ENDED_TTL_SECONDS  # a killed worker's stream goes too
        self.pending: list[tuple[str, dict[str, bytes]]] = [("0-1", {"start": b"1"})]  # the stream exists from the start
        self.events: list[tuple[int, bytes]] = []  # added since the last batch
        self.broken = False
        self.flushing: asyncio.Task[None] | None = None
        self.beating: asyncio.Task[None] | None = None
        self._kick()
        self._beat()

    def _beat(self) -> None:
        """Renew the heartbeat key now and every ALIVE_EVERY_SECONDS, on the job's own loop."""
        if self.beating is None or self.beating.done():
            self.beating = asyncio.get_running_loop().create_task(self._renew())
        self.next_beat = asyncio.get_running_loop().call_later(ALIVE_EVERY_SECONDS, self._beat)

    def stop_beating(self) -> None:
        """The answer ended (its row says how): the key lapses by itself."""
        self.next_beat.cancel()

    async def _renew(self) -> None:
        try:
            await redis_client().set(self.alive_key, b"1", ex=ALIVE_TTL_SECONDS)
        except (RedisError, OSError) as exc:  # the answer goes on; the next beat tries again
            logger.warning("Could not renew the heartbeat of answer events (%s)", exc)

    def add(self, n: int, block: bytes) -> None:
        if not self.broken:
            self.events.append((n, block))
            self._kick()

    def _kick(self) -> None:
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    def _entries(self) -> list[tuple[str, dict[str, bytes]]]:
        """What waits, as stream entries: the events that came while the last batch was written go
        in one entry, id'd by its last event's number (events hold no blank line: they are joined by one)."""
        entries, self.pending = self.pending, []
        if self.events:
            (first, _), (last, _) = self.events[0], self.events[-1]
            entries.append((f"{last}-0", {"n": b"%d" % first, "d": b"\n\n".join(block for _, block in self.events)}))
            self.events = []
        return entries

    async def _flush(self) -> None:
        while (self.pending or self.events) and not self.broken:
            await self._write(self._entries(), self.running_ttl)

    async def _write(self, entries: list[tuple[str, dict[str, bytes]]], ttl: int) -> None:
        try:
            pipe = redis_client().pipeline(transaction=False)
            for entry_id, fields in entries:
                pipe.xadd(self.key, fields, id=entry_id, maxlen=STREAM_MAX_EVENTS, approximate=True)  # type: ignore[arg-type]
            pipe.expire(self.key, ttl)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self.broken = True
            logger.warning("Redis refused answer events (%s): readers elsewhere follow the saved text", exc)

    async def finish(self, n: int, state: str, error: str) -> None:
        """Add the last events and the end (event n), then let the stream expire."""
        self.stop_beating()
        if self.flushing is not None:
            await asyncio.shield(self.flushing)
        if not self.broken:
            end = json.dumps({"state": state, "error": error}).encode()
            await self._write([*self._entries(), (f"{n}-0", {"end": end})], ENDED_TTL_SECONDS)


class FeedMissing(Exception):
    """The answer is being written, but not into Redis."""


async def read_redis(answer_pk: int) -> AsyncIterator[tuple[int, bytes] | dict[str, str]]:
    """The answer's events from its Redis Stream, from the first, as they come: (n, event), and
    last its end ({"state", "error"}). FeedMissing if it has no stream. A stream quiet for longer than
    its job's heartbeat lives, with the heartbeat gone, belongs to a process that died: the answer is
    marked interrupted here, keeping its autosaved text, whatever machine it ran on."""
    client, key = redis_client(), stream_key(answer_pk)
    if not await client.exists(key):  # ended minutes ago, or written without Redis
        raise FeedMissing(answer_pk)
    last: bytes | str = "0-0"
    quiet = 0
    while True:
        reply: Any = await client.xread({key: last}, count=1000, block=READ_BLOCK_MS)
        if reply:
            quiet = 0
            for entry_id, fields in reply[0][1]:
                last = entry_id
                if b"end" in fields:
                    yield json.loads(fields[b"end"])
                    return
                if b"d" in fields:
                    for i, block in enumerate(fields[b"d"].split(b"\n\n")):
                        yield int(fields[b"n"]) + i, block
            continue
        quiet += 1
        saved = await database.run(_saved, answer_pk)
        if saved is None or saved["state"] != MessageState.STREAMING:
            # Its job saved it and is adding the end now, or its worker died before it could.
            if quiet > 2 or saved is None:
                yield _end_of(saved)
                return
        elif not await client.exists(key):
            raise FeedMissing(answer_pk)
        elif quiet > ALIVE_TTL_SECONDS * 1000 / READ_BLOCK_MS and not await client.exists(alive_key(answer_pk)):
            await database.run(_mark_orphaned, answer_pk)
            yield _end_of(await database.run(_saved, answer_pk))
            return


async def follow_saved(answer_pk: int) -> AsyncIterator[bytes]:
    """The answer's text as the autosave writes it, each time it changes, until its end."""
    shown: tuple[str, str, list[dict[str, Any]]] | None = None
    markdown, fed = StreamedMarkdown(), ""  # this reader's finished blocks of the saved text (the current round's)
    rendered: list[FinishedPart] = []
    waited = 0.0
    while True:
        saved = await database.run(_saved, answer_pk)
        if saved is None or saved["state"] != MessageState.STREAMING:
            if saved is not None:  # the page swaps the saved answer in next: the blocks shown stay
                yield snapshot_event(saved["content"], saved["reasoning"], rendered if saved["content"].startswith(fed) else (),
                                     saved["tool_rounds"])
            yield end_event(_end_of(saved))
            return
        if (saved["content"], saved["reasoning"], saved["tool_rounds"]) != shown:
            shown = saved["content"], saved["reasoning"], saved["tool_rounds"]
            if not shown[0].startswith(fed):  # not the text read so far continued (a new round): read it again
                markdown, rendered, fed = StreamedMarkdown(), [], ""
            if (part := markdown.feed(shown[0][len(fed):])) is not None:
                rendered.append(part)
            fed = shown[0]
            yield snapshot_event(shown[0], shown[1], rendered, shown[2])
            waited = 0.0
        elif waited >= KEEP_ALIVE_SECONDS:
            yield b": keep-alive\n\n"
            waited = 0.0
        await asyncio.sleep(POLL_SECONDS)
        waited += POLL_SECONDS


def _saved(answer_pk: int) -> dict[str, Any] | None:
    row = Message.objects.filter(pk=answer_pk).values("content", "reasoning", "tool_rounds", "state", "error").first()
    return dict(row) if row is not None else None


def _mark_orphaned(answer_pk: int) -> None:
    """One conditional UPDATE: readers and the orphan sweep racing to mark it all write the same."""
    Message.objects.filter(pk=answer_pk, state=MessageState.STREAMING).update(
        state=MessageState.INTERRUPTED, error=STOPPED_ERROR)


def _end_of(saved: dict[str, Any] | None) -> dict[str, str]:
    if saved is None:
        return {"state": MessageState.INTERRUPTED, "error": "This answer was deleted."}
    return {"state": saved["state"], "error": saved["error"]}
