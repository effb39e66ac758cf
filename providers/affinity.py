"""Prefix affinity: which member of a pool's model served which prompt prefixes.

A llama-server slot (and its host's prompt cache, `--cache-ram`) that holds a prompt's prefix skips
its prefill. A request's prefix is a chain of hashes, one per leading message (or per fixed-size
block of a completion prompt's text), each covering everything before it; after a member served
the request, each hash of the chain names that member. The member whose hashes reach furthest into
a new request holds the longest cached prefix. Kept in Redis with `REDIS_URL` (every worker and
instance sees it), else in this process; each entry expires after `BOOCHAT_AFFINITY_TTL` seconds,
and the in-process table is bounded.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from providers import fleet_store

BLOCK_CHARS = 4096  # a completion prompt's text is hashed in blocks of this size
CHARS_PER_TOKEN = 4  # how prefix lengths become tokens: English text in common tokenizers
_LOCAL_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Prefix:
    """A request's prompt as a chain of cumulative hashes, each with the characters it covers."""

    hashes: tuple[str, ...]
    chars: tuple[int, ...]

    @property
    def total_chars(self) -> int:
        return self.chars[-1] if self.chars else 0


def _units(body: dict[str, Any]) -> list[str]:
    messages = body.get("messages")
    if isinstance(messages, list):
        return [json.dumps(m, sort_keys=True, ensure_ascii=False) if not isinstance(m, str) else m for m in messages]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt[i:i + BLOCK_CHARS] for i in range(0, len(prompt), BLOCK_CHARS)]
    return []


def prefix_of(body: dict[str, Any]) -> Prefix:
    """The chain of prefix hashes of a chat (messages) or completion (prompt) request."""
    hashes, chars, total = [], [], 0
    running = hashlib.blake2b(digest_size=12)
    for unit in _units(body):
        running.update(unit.encode("utf-8", "surrogatepass") + b"\x00")
        total += len(unit)
        hashes.append(running.hexdigest())
        chars.append(total)
    return Prefix(tuple(hashes), tuple(chars))


# -- where prefixes are remembered ------------------------------------------------------------------

_lock = threading.Lock()
_local: OrderedDict[str, dict[str, float]] = OrderedDict()  # key -> {member: expires}


def _key(pool: str, name: str) -> str:
    return f"{fleet_store.prefix()}:aff:{pool}:{name}"


def _session_name(session: str) -> str:
    return "session:" + hashlib.blake2b(session.encode(), digest_size=12).hexdigest()


def _record_local(keys: Sequence[str], member: str, expires: float) -> None:
    with _lock:
        for key in keys:
            holders = _local.pop(key, {})
            holders[member] = expires
            _local[key] = holders
        while len(_local) > _LOCAL_MAX_ENTRIES:
            _local.popitem(last=False)


def _read_local(keys: Sequence[str], now: float) -> list[dict[str, float]]:
    with _lock:
        return [{m: e for m, e in _local.get(key, {}).items() if e > now} for key in keys]


async def record(pool: str, prefix: Prefix, member: str, *, session: str = "") -> None:
    """Remember that `member` now holds every prefix of `prefix` (and the client's session)."""
    names = list(prefix.hashes) + ([_session_name(session)] if session else [])
    if not names:
        return
    ttl = settings.BOOCHAT_AFFINITY_TTL
    keys = [_key(pool, name) for name in names]
    client = fleet_store.async_redis()
    if client is None:
        _record_local(keys, member, time.time() + ttl)
        return
    expires = time.time() + ttl
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hset(key, member, expires)
            pipe.expire(key, ttl)
        await pipe.execute()


async def matches(pool: str, prefix: Prefix, *, session: str = "") -> tuple[dict[str, int], str]:
    """Per member, the characters of `prefix`'s longest prefix it holds; and the member that last
    served the client's session (empty when unknown)."""
    names = list(prefix.hashes) + ([_session_name(session)] if session else [])
    if not names:
        return {}, ""
    keys = [_key(pool, name) for name in names]
    now = time.time()
    client = fleet_store.async_redis()
    if client is None:
        found = _read_local(keys, now)
    else:
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            raw = await pipe.execute()
        found = [{m.decode(): float(e) for m, e in row.items() if float(e) > now} for row in raw]
    held: dict[str, int] = {}
    for holders, chars in zip(found, prefix.chars, strict=False):
        for member in holders:
            held[member] = chars  # the chain runs in order: the last hit is the longest
    last = ""
    if session and found[-1]:
        last = max(found[-1].items(), key=lambda item: item[1])[0]
    return held, last


def forget_local() -> None:
    """Drop what this process remembers (tests start from nothing)."""
    with _lock:
        _local.clear()
