"""Limits on a key and on a user: requests per minute (a sliding minute), tokens per UTC day, streams
open at once. With REDIS_URL every check is one Lua script, atomic across workers and instances;
without it the counts live in this process (exact for one worker)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from providers.snapshot import Snapshot

logger = logging.getLogger(__name__)

POOL_SIZE = 20  # Redis connections of one worker's event loop for the limit checks
STREAM_LEASE_SECONDS = 3600  # a stream whose worker died stops counting after this long
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class LimitValues:
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    concurrent_streams: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.requests_per_minute, self.tokens_per_day, self.concurrent_streams))


NO_LIMITS = LimitValues()


@dataclass(frozen=True)
class Subject:
    """Whose counts a request adds to: `user:3` or `key:5`, with its limits."""

    name: str
    limits: LimitValues
    label: str  # for messages: "your key 'laptop'", "your account"


class LimitReached(Exception):
    """A limit refuses the request; `retry_after` in whole seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, retry_after)


def _values(row: Any) -> LimitValues:
    return LimitValues(row.requests_per_minute, row.tokens_per_day, row.concurrent_streams)


def _most_generous(rows: Sequence[LimitValues]) -> LimitValues:
    def best(name: str) -> int | None:
        values = [getattr(row, name) for row in rows]
        return None if not values or None in values else max(values)

    return LimitValues(best("requests_per_minute"), best("tokens_per_day"), best("concurrent_streams"))


def _load_limits() -> dict[int, LimitValues]:
    """Users with limits -> their limits: their own row's, each limit it leaves empty from their groups'
    (the most generous of the groups that have a row; a group with that limit empty means none)."""
    from boochat.models import Limits

    own: dict[int, LimitValues] = {}
    by_group: dict[int, LimitValues] = {}
    for row in Limits.objects.all():
        if row.user_id is not None:
            own[row.user_id] = _values(row)
        elif row.group_id is not None:
            by_group[row.group_id] = _values(row)
    groups: dict[int, list[LimitValues]] = defaultdict(list)
    memberships = get_user_model().groups.through.objects.filter(group_id__in=by_group)
    for user_id, group_id in memberships.values_list("user_id", "group_id"):
        groups[user_id].append(by_group[group_id])
    result = {}
    for user_id in own.keys() | groups.keys():
        inherited = _most_generous(groups[user_id]) if groups.get(user_id) else NO_LIMITS
        mine = own.get(user_id, NO_LIMITS)
        merged = LimitValues(*(m if m is not None else g for m, g in zip(
            (mine.requests_per_minute, mine.tokens_per_day, mine.concurrent_streams),
            (inherited.requests_per_minute, inherited.tokens_per_day, inherited.concurrent_streams), strict=True)))
        if merged:
            result[user_id] = merged
    return result


limit_rows = Snapshot(_load_limits)


def follow_changes() -> None:
    """Forget the limits snapshot when limits or group memberships change in this process."""
    from django.db.models.signals import m2m_changed

    from boochat.models import Limits

    limit_rows.follow(Limits)
    m2m_changed.connect(limit_rows.forget, sender=get_user_model().groups.through)


def user_limits(user_id: int, rows: dict[int, LimitValues] | None = None) -> LimitValues:
    return (rows if rows is not None else limit_rows.get()).get(user_id, NO_LIMITS)


def subjects_for(user_id: int | None, key: Any = None, rows: dict[int, LimitValues] | None = None,
                 key_name: str = "") -> list[Subject]:
    """The counts a request of this user (through this key) adds to: only those with a limit."""
    subjects = []
    if key is not None:
        values = LimitValues(key.requests_per_minute, key.tokens_per_day, key.concurrent_streams)
        if values:
            subjects.append(Subject(f"key:{key.id}", values, f"this key{f' ({key_name})' if key_name else ''}"))
    if user_id is not None:
        values = user_limits(user_id, rows)
        if values:
            subjects.append(Subject(f"user:{user_id}", values, "your account"))
    return subjects


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, dt_timezone.utc).strftime("%Y%m%d")


def _seconds_to_midnight(now: float) -> int:
    moment = datetime.fromtimestamp(now, dt_timezone.utc)
    midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - moment).total_seconds()) + 1


@dataclass
class Admission:
    """An admitted request: its stream leases are given back with release()."""

    subjects: list[Subject]
    token: str
    leases: list[str] = field(default_factory=list)

    def release(self) -> None:
        if self.leases:
            backend().release(self.leases, self.token)
            self.leases = []


def refusal(subject: Subject, which: str, retry_after: float) -> LimitReached:
    limits = subject.limits
    if which == "tokens":
        message = f"The daily token limit of {subject.label} ({limits.tokens_per_day:,} tokens) is used up."
    elif which == "streams":
        message = f"{subject.label.capitalize()} already has {limits.concurrent_streams} answers streaming: its limit."
    else:
        message = f"{subject.label.capitalize()} made {limits.requests_per_minute} requests in the last minute: its limit."
    return LimitReached(message + " Try again later.", int(retry_after + 0.999))


# -- backends ----------------------------------------------------------------------------------------

_ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local token, window, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 3
for i = 1, n do
  local rpm, tpd, streams = tonumber(ARGV[1 + i * 3]), tonumber(ARGV[2 + i * 3]), tonumber(ARGV[3 + i * 3])
  local rkey, tkey, skey = KEYS[i * 3 - 2], KEYS[i * 3 - 1], KEYS[i * 3]
  if tpd >= 0 and tonumber(redis.call('GET', tkey) or '0') >= tpd then return {i, 'tokens', 0} end
  if streams >= 0 then
    redis.call('ZREMRANGEBYSCORE', skey, '-inf', now)
    if redis.call('ZCARD', skey) >= streams then return {i, 'streams', '5'} end
  end
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now - window)
    if redis.call('ZCARD', rkey) >= rpm then
      local oldest = redis.call('ZRANGE', rkey, 0, 0, 'WITHSCORES')[2]
      return {i, 'requests', tostring(tonumber(oldest) + window - now)}
    end
  end
end
for i = 1, n do
  local rpm, streams = tonumber(ARGV[1 + i * 3]), tonumber(ARGV[3 + i * 3])
  if rpm >= 0 then
    redis.call('ZADD', KEYS[i * 3 - 2], now, token)
    redis.call('EXPIRE', KEYS[i * 3 - 2], window + 1)
  end
  if streams >= 0 then
    redis.call('ZADD', KEYS[i * 3], now + lease, token)
    redis.call('EXPIRE', KEYS[i * 3], lease)
  end
end
return {0, '', 0}
"""


class RedisCounts:
    """The counts in Redis: one script admits or refuses a request against all its subjects at once."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.async_client: Any = None  # for the event loop it was made in (one per worker in production)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.prefix = prefix
        self.sha = hashlib.sha1(_ADMIT.encode()).hexdigest()
        self.no_script: type[Exception] = redis.exceptions.NoScriptError

    def _keys(self, subject: Subject, day: str) -> list[str]:
        base = f"{self.prefix}:limits:{subject.name}"
        return [f"{base}:requests", f"{base}:tokens:{day}", f"{base}:streams"]

    def _arguments(self, subjects: Sequence[Subject], token: str, stream: bool) -> list[Any]:
        day = _day(time.time())
        keys: list[str] = []
        args: list[Any] = [token, WINDOW_SECONDS, STREAM_LEASE_SECONDS]
        for subject in subjects:
            keys += self._keys(subject, day)
            limits = subject.limits
            args += [_or_none(limits.requests_per_minute), _or_none(limits.tokens_per_day),
                     _or_none(limits.concurrent_streams if stream else None)]
        return [len(keys), *keys, *args]

    def admit(self, subjects: Sequence[Subject], token: str, stream: bool) -> tuple[int, str, float]:
        arguments = self._arguments(subjects, token, stream)
        # EVALSHA itself: redis-py's Script wrapper costs as much again as the round trip.
        try:
            reply = self.client.evalsha(self.sha, *arguments)
        except self.no_script:
            self.client.script_load(_ADMIT)
            reply = self.client.evalsha(self.sha, *arguments)
        return _decoded(reply)

    async def aadmit(self, subjects: Sequence[Subject], token: str, stream: bool) -> tuple[int, str, float]:
        """admit() without holding the event loop while Redis answers."""
        import redis.asyncio

        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            # A few connections, waited for: a burst of requests must not open one each.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, max_connections=POOL_SIZE, timeout=10, socket_timeout=5, socket_connect_timeout=2)
            self.async_client = redis.asyncio.Redis(connection_pool=pool)
            self.loop = loop
        arguments = self._arguments(subjects, token, stream)
        try:
            reply = await self.async_client.evalsha(self.sha, *arguments)
        except self.no_script:
            await self.async_client.script_load(_ADMIT)
            reply = await self.async_client.evalsha(self.sha, *arguments)
        return _decoded(reply)

    def release(self, names: Iterable[str], token: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zrem(f"{self.prefix}:limits:{name}:streams", token)
        pipe.execute()

    def add_tokens(self, tokens: dict[str, int]) -> None:
        day = _day(time.time())
        pipe = self.client.pipeline(transaction=False)
        for name, count in tokens.items():
            key = f"{self.prefix}:limits:{name}:tokens:{day}"
            pipe.incrby(key, count)
            pipe.expire(key, 2 * 86400)
        pipe.execute()

    def current(self, name: str) -> tuple[int, int, int]:
        """Requests in the last minute, tokens today, streams open."""
        now = time.time()
        base = f"{self.prefix}:limits:{name}"
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(f"{base}:requests", now - WINDOW_SECONDS, "+inf")
        pipe.get(f"{base}:tokens:{_day(now)}")
        pipe.zcount(f"{base}:streams", now, "+inf")
        requests, tokens, streams = pipe.execute()
        return int(requests), int(tokens or 0), int(streams)


    def clear(self) -> None:
        for key in self.client.scan_iter(f"{self.prefix}:limits:*", count=1000):
            self.client.delete(key)


def _decoded(reply: Any) -> tuple[int, str, float]:
    index, which, retry = reply
    return int(index), which.decode() if isinstance(which, bytes) else str(which), float(retry)


def _or_none(value: int | None) -> int:
    return -1 if value is None else value


class LocalCounts:
    """The counts in this process, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, deque[float]] = defaultdict(deque)
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)
        self.streams: dict[str, dict[str, float]] = defaultdict(dict)

    def _trim(self, name: str, now: float) -> None:
        times = self.requests[name]
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        leases = self.streams[name]
        for token in [t for t, until in leases.items() if until <= now]:
            del leases[token]

    def admit(self, subjects: Sequence[Subject], token: str, stream: bool) -> tuple[int, str, float]:
        now, day = time.time(), _day(time.time())
        with self.lock:
            for index, subject in enumerate(subjects, 1):
                limits = subject.limits
                self._trim(subject.name, now)
                if limits.tokens_per_day is not None and self.tokens[(subject.name, day)] >= limits.tokens_per_day:
                    return index, "tokens", 0
                if stream and limits.concurrent_streams is not None and \
                        len(self.streams[subject.name]) >= limits.concurrent_streams:
                    return index, "streams", 5
                times = self.requests[subject.name]
                if limits.requests_per_minute is not None and len(times) >= limits.requests_per_minute:
                    return index, "requests", times[0] + WINDOW_SECONDS - now
            for subject in subjects:
                if subject.limits.requests_per_minute is not None:
                    self.requests[subject.name].append(now)
                if stream and subject.limits.concurrent_streams is not None:
                    self.streams[subject.name][token] = now + STREAM_LEASE_SECONDS
        return 0, "", 0

    async def aadmit(self, subjects: Sequence[Subject], token: str, stream: bool) -> tuple[int, str, float]:
        return self.admit(subjects, token, stream)

    def release(self, names: Iterable[str], token: str) -> None:
        with self.lock:
            for name in names:
                self.streams[name].pop(token, None)

    def add_tokens(self, tokens: dict[str, int]) -> None:
        day = _day(time.time())
        with self.lock:
            for name, count in tokens.items():
                self.tokens[(name, day)] += count

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.tokens.clear()
            self.streams.clear()

    def current(self, name: str) -> tuple[int, int, int]:
        now = time.time()
        with self.lock:
            self._trim(name, now)
            return len(self.requests[name]), self.tokens[(name, _day(now))], len(self.streams[name])


_backend: RedisCounts | LocalCounts | None = None
_backend_for: str | None = None


def backend() -> RedisCounts | LocalCounts:
    """This process's counts: Redis when REDIS_URL is set, else local memory."""
    global _backend, _backend_for
    url = settings.REDIS_URL
    if _backend is None or _backend_for != url:
        _backend = RedisCounts(url, settings.BOOCHAT_CACHE_PREFIX) if url else LocalCounts()
        _backend_for = url
    return _backend


def clear_counts() -> None:
    """Forget every count (`manage.py` shells, and the test suite between tests)."""
    backend().clear()


def admit(subjects: list[Subject], *, stream: bool) -> Admission | None:
    """Count a request against its subjects' limits, or raise LimitReached naming the limit. None when
    no limit applies (no work at all). Redis errors propagate: a request whose limits cannot be
    checked is not let through (boochat.outages answers 503, naming Redis)."""
    if not subjects:
        return None
    token = uuid.uuid4().hex
    return _admission(subjects, token, stream, backend().admit(subjects, token, stream))


async def aadmit(subjects: list[Subject], *, stream: bool) -> Admission | None:
    """admit() from async code: the event loop serves other requests while Redis answers."""
    if not subjects:
        return None
    token = uuid.uuid4().hex
    return _admission(subjects, token, stream, await backend().aadmit(subjects, token, stream))


def _admission(subjects: list[Subject], token: str, stream: bool, outcome: tuple[int, str, float]) -> Admission:
    index, which, retry_after = outcome
    if index:
        raise refusal(subjects[index - 1], which, retry_after if which != "tokens" else _seconds_to_midnight(time.time()))
    leases = [s.name for s in subjects if stream and s.limits.concurrent_streams is not None]
    return Admission(subjects, token, leases)


def add_tokens(tokens: dict[str, int]) -> None:
    """Count tokens finished requests used against their subjects' daily limits ({subject: tokens})."""
    tokens = {name: count for name, count in tokens.items() if count > 0}
    if not tokens:
        return
    try:
        backend().add_tokens(tokens)
    except Exception:  # noqa: BLE001
        logger.exception("Tokens used could not be counted against the daily limits")


@dataclass(frozen=True)
class Standing:
    """A subject's use now against its limits, for the user's pages."""

    label: str
    limits: LimitValues
    requests: int
    tokens: int
    streams: int


def standings(subjects: list[Subject]) -> list[Standing]:
    result = []
    for subject in subjects:
        try:
            requests, tokens, streams = backend().current(subject.name)
        except Exception:  # noqa: BLE001
            logger.exception("The limits could not be read")
            requests = tokens = streams = 0
        result.append(Standing(subject.label, subject.limits, requests, tokens, streams))
    return result
