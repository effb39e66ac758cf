"""A pool's slots: which member takes a request now, and a fair line when none can.

Each member's capacity is its slots (the `slots` set on its model in admin or the provider file, else
llama-server's `/props` `total_slots`, read once its model is loaded; unknown: no limit). Requests in
flight are counted per member, in Redis with `REDIS_URL` (every worker and instance), else in this
process, as leases: a lease ends when its answer is closed (done, client gone, host failed), and a
worker that dies stops renewing its own, which then expire. A request enters its pool model's line
(FIFO) and leaves it with a member as soon as one has room: late binding, never committed to one
host's internal queue. Past `BOOCHAT_QUEUE_MAX` waiting, or `BOOCHAT_QUEUE_TIMEOUT` seconds, it is
refused with a 503 and `Retry-After`.

Who takes a member that has room (`strategy` of the pool):
- `cache`: a request prefers the member holding the longest prefix of its prompt (providers.affinity);
  when several hold it (a system prompt many sessions share), the freest of them (any member with
  room when they are all full), so that new sessions spread over the members instead of filling
  the first.
  When that member is full and another has room, it waits for it only while the prefill it saves
  (the extra cached tokens × the share of what BooChat expected cached there that the member's hosts
  said they reused lately ÷ `BOOCHAT_PREFILL_TOKENS_PER_SECOND`) exceeds the time it has waited plus
  the expected wait for a slot there ((requests waiting for it ahead + 1) × the member's mean answer
  time ÷ its slots).
  Otherwise, and for prompts no member holds, the freest member with room, in the pool's order.
- `least_busy`: the member with room that has the fewest requests in flight per slot.
- `round_robin`: the members in turn, each request waiting for the one it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.core.cache import cache

from providers import affinity, fleet_store
from providers.affinity import CHARS_PER_TOKEN, Prefix
from providers.models import PoolStrategy, ProviderKind
from providers.queue_script import TAKE_TURN
from providers.routing import Route, registry

logger = logging.getLogger("providers.pools")

LEASE_SECONDS = 60.0  # a lease its worker stopped renewing (the worker died) ends this long after
_RENEW_EVERY = LEASE_SECONDS / 3
_SLOTS_SECONDS = 600  # a host restarted with another --parallel is read again within ten minutes
_POLL_SECONDS = 0.05  # a waiter looks at the line again at least this often, freed slot or not
_DEFAULT_ANSWER_SECONDS = 5.0  # a member's mean answer time before one was measured
_RECENT = 100  # answers kept per member for the cache reuse shown on /models/


class QueueRefused(Exception):
    """Every member of a pool is full and the line is full, or the wait ran out."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


# -- capacity ---------------------------------------------------------------------------------------


def _slots_key(route: Route) -> str:
    return f"slots:1:{route.ref}:{route.base_url}"


def _positive(learned: Any) -> int:  # noqa: ANN401 - what the cache held
    return learned if isinstance(learned, int) and not isinstance(learned, bool) and learned > 0 else 0


def capacity(route: Route) -> int:
    """How many requests `route`'s member takes at once (0: no limit known)."""
    return route.slots or _positive(cache.get(_slots_key(route)))


async def capacities(routes: Sequence[Route]) -> list[int]:
    """capacity() of each member, read in one go off the event loop (the cache may be Redis)."""
    unknown = [_slots_key(r) for r in routes if not r.slots]
    learned = await cache.aget_many(unknown) if unknown else {}
    return [r.slots or _positive(learned.get(_slots_key(r))) for r in routes]


def learn_capacity(route: Route) -> None:
    """Read `total_slots` from the member's `/props` (blocking; called in the background once the
    model answered, so it is loaded: through llama-swap that request would load it)."""
    from providers.props import fetch_props

    if route.kind not in (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER):
        return
    props = fetch_props(route)
    slots = props.get("total_slots") if isinstance(props, dict) else None
    if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0:
        cache.set(_slots_key(route), slots, timeout=_SLOTS_SECONDS)


# -- measured figures, per process ------------------------------------------------------------------

_answer_seconds: dict[str, float] = {}  # member -> mean answer time (exponentially weighted)
# member -> the share of the prefix BooChat expected cached there that the host said it reused
# (exponentially weighted): a llama-server drops a conversation from its slot when another prompt
# sharing its system prompt takes the slot (docs/wire.md, "Slots and prompt caching").
_kept_share: dict[str, float] = {}
_recent_reuse: dict[str, deque[tuple[int, int]]] = defaultdict(lambda: deque(maxlen=_RECENT))
_turns = itertools.count()


def _note_duration(member: str, seconds: float) -> None:
    previous = _answer_seconds.get(member)
    _answer_seconds[member] = seconds if previous is None else 0.8 * previous + 0.2 * seconds


def _note_kept(member: str, expected: float, cached: int, prompt: int) -> None:
    """`expected`: the share of the prompt BooChat thought the member held; the host reused `cached` of
    `prompt` tokens."""
    if expected <= 0 or prompt <= 0:
        return
    share = min(1.0, cached / prompt / expected)
    previous = _kept_share.get(member)
    _kept_share[member] = share if previous is None else 0.8 * previous + 0.2 * share


def recent_reuse(member: str) -> tuple[int, int]:
    """Cached and total prompt tokens over the member's last answers that said."""
    client = fleet_store.sync_redis()
    if client is None:
        pairs = list(_recent_reuse.get(member, ()))
    else:
        raw = client.lrange(f"{fleet_store.prefix()}:reuse:{member}", 0, -1)
        pairs = [(int(cached), int(prompt)) for cached, prompt in (entry.split() for entry in raw)]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


# -- the store: leases and lines ------------------------------------------------------------------


def _line_key(pool: str) -> str:
    return f"{fleet_store.prefix()}:line:{pool}"


def _lease_key(member: str) -> str:
    return f"{fleet_store.prefix()}:inflight:{member}"


@dataclass
class _Turn:
    status: int  # 1 taken, 0 waiting, -1 the line is full
    member: str
    counts: dict[str, int]
    ahead: int = 0  # waiters ahead that want the member this one wants


_lock = threading.Lock()
_local_leases: dict[str, set[str]] = defaultdict(set)
_local_lines: dict[str, dict[str, tuple[float, str]]] = defaultdict(dict)  # ticket -> (arrival, wanted)
_redis_leases: dict[str, str] = {}  # lease id -> member, held by this process (renewed)


def _assign(waiters: Sequence[tuple[str, str]], members: Sequence[str], caps: Sequence[int], counts: dict[str, int],
            tiers: Sequence[int], me: str) -> str:
    """The member `me` takes now, or "": queue_script.TAKE_TURN's rule, for the in-process line."""
    used = dict(counts)
    free = {m: (cap - used[m] if cap else 10**9) for m, cap in zip(members, caps, strict=True)}
    served = set()
    for ticket, wanted in waiters:
        member = wanted[1:]
        if member and free.get(member, 0) > 0:
            free[member] -= 1
            used[member] += 1
            served.add(ticket)
            if ticket == me:
                return member
    cap_of, tier_of = dict(zip(members, caps, strict=True)), dict(zip(members, tiers, strict=True))
    for ticket, wanted in waiters:
        if ticket in served or wanted.startswith("1"):
            continue
        room = [m for m in members if free[m] > 0]
        if not room:
            return ""
        member = min(room, key=lambda m: (tier_of[m], used[m] / cap_of[m] if cap_of[m] else used[m]))
        free[member] -= 1
        used[member] += 1
        if ticket == me:
            return member
    return ""


def _take_local(pool: str, ticket: str, wanted: str, members: Sequence[str], caps: Sequence[int],
                tiers: Sequence[int], lease: str) -> _Turn:
    with _lock:
        counts = {m: len(_local_leases[m]) for m in members}
        line = _local_lines[pool]
        if ticket not in line:
            if len(line) >= settings.BOOCHAT_QUEUE_MAX:
                return _Turn(-1, "", counts)
            line[ticket] = (time.monotonic(), wanted)
        else:
            line[ticket] = (line[ticket][0], wanted)
        waiters = [(t, w) for t, (_, w) in sorted(line.items(), key=lambda item: item[1][0])]
        position = [t for t, _ in waiters].index(ticket)
        ahead = sum(1 for _, w in waiters[:position] if wanted[1:] and w[1:] == wanted[1:])
        member = _assign(waiters, members, caps, counts, tiers, ticket)
        if not member:
            return _Turn(0, "", counts, ahead)
        _local_leases[member].add(lease)
        del line[ticket]
        counts[member] += 1
        return _Turn(1, member, counts, ahead)


async def _take(pool: str, ticket: str, wanted: str, members: Sequence[str], caps: Sequence[int],
                tiers: Sequence[int], lease: str) -> _Turn:
    client = fleet_store.async_redis()
    if client is None:
        return _take_local(pool, ticket, wanted, members, caps, tiers, lease)
    now = time.time()
    stale = now - settings.BOOCHAT_QUEUE_TIMEOUT - LEASE_SECONDS
    keys = [_line_key(pool), _line_key(pool) + ":wants", *(_lease_key(m) for m in members)]
    args: list[str | int | float] = [ticket, now, now + LEASE_SECONDS, lease, stale, settings.BOOCHAT_QUEUE_MAX,
                                     wanted, len(members), *caps, *members, *tiers]
    status, index, ahead, *counts = await client.eval(TAKE_TURN, len(keys), *keys, *args)
    member = members[int(index) - 1] if int(status) == 1 else ""
    if member:
        _redis_leases[lease] = member
        _keep_renewing()
    return _Turn(int(status), member, dict(zip(members, (int(c) for c in counts), strict=True)), int(ahead))


async def _leave(pool: str, ticket: str) -> None:
    client = fleet_store.async_redis()
    if client is None:
        with _lock:
            _local_lines[pool].pop(ticket, None)
        return
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrem(_line_key(pool), ticket)
        pipe.hdel(_line_key(pool) + ":wants", ticket)
        await pipe.execute()


async def _force(member: str, lease: str) -> None:
    """Count a request on `member` whatever its slots say (a failover: the chosen member failed)."""
    client = fleet_store.async_redis()
    if client is None:
        with _lock:
            _local_leases[member].add(lease)
        return
    _redis_leases[lease] = member
    await client.zadd(_lease_key(member), {lease: time.time() + LEASE_SECONDS})


def _end(member: str, lease: str, reuse: tuple[int, int] | None = None) -> None:
    """End a lease, wake the waiters and keep what the host said it reused (cached, prompt tokens).
    On an event loop the Redis part is a task of its own with the asyncio client: an answer's end
    never blocks the loop on Redis."""
    if not settings.REDIS_URL:
        with _lock:
            _local_leases[member].discard(lease)
            if reuse is not None:
                _recent_reuse[member].append(reuse)
        _wake_waiters()
        return
    _redis_leases.pop(lease, None)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # a thread, or the garbage collector outside any loop: blocking holds up no one
        client = fleet_store.sync_redis()
        assert client is not None
        try:
            with client.pipeline(transaction=False) as pipe:
                _ending(pipe, member, lease, reuse).execute()
        except Exception:  # noqa: BLE001 - Redis away: the lease expires by itself (LEASE_SECONDS)
            logger.warning("could not end lease %s on %s; it expires in %g s", lease, member, LEASE_SECONDS)
        return
    ending = _background(_end_in_redis(member, lease, reuse))
    _ends_pending.add(ending)
    ending.add_done_callback(_ends_pending.discard)


_ends_pending: set[asyncio.Task[None]] = set()


async def _ended_here() -> None:
    """Wait for the leases this event loop is still ending in Redis: a client's next request, sent as
    soon as its answer ended, finds that answer's slot free."""
    loop = asyncio.get_running_loop()
    pending = [task for task in _ends_pending if task.get_loop() is loop]
    if pending:
        await asyncio.wait(pending, timeout=settings.BOOCHAT_CACHE_TIMEOUT)


async def _end_in_redis(member: str, lease: str, reuse: tuple[int, int] | None) -> None:
    client = fleet_store.async_redis()
    assert client is not None
    try:
        async with client.pipeline(transaction=False) as pipe:
            await _ending(pipe, member, lease, reuse).execute()
    except Exception:  # noqa: BLE001 - Redis away: the lease expires by itself (LEASE_SECONDS)
        logger.warning("could not end lease %s on %s; it expires in %g s", lease, member, LEASE_SECONDS)


def _ending(pipe: Any, member: str, lease: str, reuse: tuple[int, int] | None) -> Any:  # noqa: ANN401
    """A lease's end queued on a pipeline (redis or redis.asyncio: they queue alike)."""
    pipe.zrem(_lease_key(member), lease)
    pipe.publish(_freed_channel(), member)
    if reuse is not None:
        key = f"{fleet_store.prefix()}:reuse:{member}"
        pipe.lpush(key, f"{reuse[0]} {reuse[1]}")
        pipe.ltrim(key, 0, _RECENT - 1)
        pipe.expire(key, 3600)
    return pipe


# A freed slot wakes the waiters at once (late binding without polling delays): in this process
# through each event loop's signal, across workers and instances through a Redis channel.


class _Signal:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fire(self) -> None:
        fired, self.event = self.event, asyncio.Event()
        fired.set()


_signals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Signal] = weakref.WeakKeyDictionary()
_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def _freed_channel() -> str:
    return f"{fleet_store.prefix()}:freed"


def _wake_waiters() -> None:
    for loop, signal in list(_signals.items()):
        if not loop.is_closed():
            loop.call_soon_threadsafe(signal.fire)


def _slot_freed(*, listen: bool) -> asyncio.Event:
    """An event set when a slot is freed anywhere (or a lease ends), from now on; `listen`: also
    from other processes (started only once a request waits)."""
    loop = asyncio.get_running_loop()
    signal = _signals.get(loop)
    if signal is None:
        signal = _signals[loop] = _Signal()
    if listen and settings.REDIS_URL:
        listener = _listeners.get(loop)
        if listener is None or listener.done():
            _listeners[loop] = loop.create_task(_listen(signal))
    return signal.event


async def _listen(signal: _Signal) -> None:
    client = fleet_store.async_redis()
    if client is None:
        return
    pubsub = client.pubsub()
    await pubsub.subscribe(_freed_channel())
    # Runs until its event loop ends; nothing is awaited on the way out (a loop that is closing,
    # such as asyncio.run's for a title, would wait on Redis for it).
    async for message in pubsub.listen():
        if message.get("type") == "message":
            signal.fire()


_renewer_started = threading.Event()


def _keep_renewing() -> None:
    """One thread per process extends its leases while they last (a dead worker's expire). A thread,
    not a task: event loops come and go (a title is written in a loop of its own)."""
    if not _renewer_started.is_set():
        _renewer_started.set()
        threading.Thread(target=_renew, name="boochat-lease-renewer", daemon=True).start()


def _renew() -> None:
    while True:
        time.sleep(_RENEW_EVERY)
        client = fleet_store.sync_redis()
        held = dict(_redis_leases)
        if client is None or not held:
            continue
        expires = time.time() + LEASE_SECONDS
        try:
            with client.pipeline(transaction=False) as pipe:
                for lease, member in held.items():
                    pipe.zadd(_lease_key(member), {lease: expires}, xx=True)
                pipe.execute()
        except Exception:  # noqa: BLE001 - Redis away for a moment: the next round renews them
            logger.warning("could not renew %d leases in Redis", len(held))


def in_flight(members: Sequence[str]) -> dict[str, int]:
    """Requests in flight per member, now (for pages)."""
    client = fleet_store.sync_redis()
    if client is None:
        with _lock:
            return {m: len(_local_leases.get(m, ())) for m in members}
    now = time.time()
    with client.pipeline(transaction=False) as pipe:
        for member in members:
            pipe.zcount(_lease_key(member), now, "+inf")
        return dict(zip(members, (int(c) for c in pipe.execute()), strict=True))


def waiting(pool: str) -> int:
    """Requests waiting in a pool model's line, now (for pages)."""
    client = fleet_store.sync_redis()
    if client is None:
        with _lock:
            return len(_local_lines.get(pool, {}))
    stale = time.time() - settings.BOOCHAT_QUEUE_TIMEOUT - LEASE_SECONDS
    return int(client.zcount(_line_key(pool), stale, "+inf"))


def forget_local() -> None:
    """Drop this process's counts and lines (tests start from nothing)."""
    with _lock:
        _local_leases.clear()
        _local_lines.clear()
        _answer_seconds.clear()
        _kept_share.clear()
        _recent_reuse.clear()


# -- a request's lease ------------------------------------------------------------------------------


@dataclass
class Lease:
    """One request counted on one member until `end()` (idempotent; also when garbage-collected)."""

    member: str
    route: Route
    lease_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.monotonic)
    ended: bool = False
    saw: bytes = b""  # the tail of the answer, where the host reports its cache use
    expected: float = 0.0  # the share of the prompt BooChat expected cached on the member

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        _note_duration(self.member, time.monotonic() - self.started)
        cached, prompt = _reported_reuse(self.saw)
        if prompt is not None:
            _note_kept(self.member, self.expected, cached or 0, prompt)
        _end(self.member, self.lease_id, None if prompt is None else (cached or 0, prompt))

    def watch(self, chunk: bytes) -> None:
        """Keep the end of the answer: its usage and timings say what the host reused."""
        self.saw = (self.saw + chunk)[-2048:]

    async def move_to(self, route: Route) -> None:
        """The request fails over to `route`'s member: count it there instead."""
        _end(self.member, self.lease_id)
        self.member, self.route, self.lease_id = str(route.ref), route, uuid.uuid4().hex
        await _force(self.member, self.lease_id)


def _reported_reuse(tail: bytes) -> tuple[int | None, int | None]:
    """`timings.cache_n` and `prompt_n` (llama-server) from the end of an answer, if it has them."""
    import re

    cache_n = re.findall(rb'"cache_n":\s*(\d+)', tail)
    prompt_n = re.findall(rb'"prompt_n":\s*(\d+)', tail)
    if not prompt_n:
        return None, None
    cached = int(cache_n[-1]) if cache_n else 0
    return cached, cached + int(prompt_n[-1])


# -- admission --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """The candidates of a pool's request, the member that took it first, with its lease."""

    candidates: tuple[Route, ...]
    lease: Lease
    prefix: Prefix
    reason: str


def _expected_wait(member: str, cap: int, ahead: int) -> float:
    """Until one of the member's slots is free for this request: the requests waiting for it ahead of
    this one, and this one, each take a slot's mean answer time, shared by its slots."""
    return (ahead + 1) * _answer_seconds.get(member, _DEFAULT_ANSWER_SECONDS) / max(cap, 1)


async def admit(route: Route, body: dict[str, Any], *, session: str = "") -> Admission:
    """Wait for a member of `route`'s pool with room, by the pool's strategy; raise QueueRefused."""
    assert route.pool is not None
    pool = str(route.pool)
    usable = [r for r in route.candidates if not r.down] or list(route.candidates)
    members = [str(r.ref) for r in usable]
    caps = await capacities(usable)
    await _ended_here()
    prefix = affinity.prefix_of(body)
    held, last = (await affinity.matches(pool, prefix, session=session)) if route.strategy == PoolStrategy.CACHE else ({}, "")
    base = {m: i for i, m in enumerate(members)}
    given = ""
    if route.strategy == PoolStrategy.ROUND_ROBIN:
        given = members[next(_turns) % len(members)] if not settings.REDIS_URL else await _next_turn(pool, members)
    ticket = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    lease = uuid.uuid4().hex
    deadline = time.monotonic() + settings.BOOCHAT_QUEUE_TIMEOUT
    started = time.monotonic()
    counts = dict.fromkeys(members, 0)
    ahead = 0
    reason = ""
    tiers = [-(2 * held.get(m, 0) + (m == last)) for m in members]
    first = True  # the counts are not known yet: try for the cached member alone, then decide
    try:
        while True:
            if route.strategy == PoolStrategy.ROUND_ROBIN:
                wanted, reason = "1" + given, f"{given}: its turn"
            elif route.strategy == PoolStrategy.LEAST_BUSY:
                wanted, reason = "0", "fewest in flight per slot"
            else:
                wanted, reason = _cache_choice(members, tiers, held, counts, dict(zip(members, caps, strict=True)),
                                               time.monotonic() - started, ahead)
                if first and wanted.startswith("0") and len(wanted) > 1:
                    wanted = "1" + wanted[1:]
            freed = _slot_freed(listen=not first)
            turn = await _take(pool, ticket, wanted, members, caps, tiers, lease)
            counts.update(turn.counts)
            ahead = turn.ahead
            if turn.status == 1:
                break
            if first and turn.status == 0:
                first = False
                continue
            if turn.status == -1:
                raise QueueRefused(f"{pool}: every member is busy and {settings.BOOCHAT_QUEUE_MAX} requests are "
                                   f"already waiting (BOOCHAT_QUEUE_MAX); try again shortly.", retry_after=5)
            if time.monotonic() > deadline:
                raise QueueRefused(f"{pool}: every member stayed busy for {settings.BOOCHAT_QUEUE_TIMEOUT:g} s "
                                   f"(BOOCHAT_QUEUE_TIMEOUT); try again shortly.", retry_after=10)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), _POLL_SECONDS)
    except BaseException:
        await asyncio.shield(_leave(pool, ticket))
        raise
    chosen = usable[base[turn.member]]
    waited = time.monotonic() - started
    held_tokens = held.get(turn.member, 0) // CHARS_PER_TOKEN
    logger.info("%s: %s (%s; %d/%s in flight; ~%d prompt tokens cached there; waited %.0f ms)", pool, turn.member,
                reason, turn.counts.get(turn.member, 0), caps[base[turn.member]] or "any", held_tokens, waited * 1000)
    rest = tuple(r for r in route.candidates if r is not chosen)
    expected = held.get(turn.member, 0) / max(prefix.total_chars, 1)
    return Admission((chosen, *rest), Lease(turn.member, chosen, lease_id=lease, expected=expected), prefix, reason)


def _cache_choice(members: Sequence[str], tiers: Sequence[int], held: dict[str, int], counts: dict[str, int],
                  caps: dict[str, int], waited: float, ahead: int) -> tuple[str, str]:
    """What a request of the `cache` strategy waits for: ("1member" only that one, "0member" that
    one first, "0" any), and why."""
    best = members[min(range(len(members)), key=lambda i: tiers[i])]
    if not tiers[members.index(best)]:
        return "0", "no member holds its prefix: the freest with room"
    cached = held.get(best, 0)
    if sum(1 for tier in tiers if tier == min(tiers)) > 1:  # a shared system prompt, cached on several
        return "0", f"several members hold its longest cached prefix (~{cached // CHARS_PER_TOKEN} tokens): the freest"
    if not caps[best] or counts[best] < caps[best]:
        return "0" + best, f"longest cached prefix (~{cached // CHARS_PER_TOKEN} tokens)" if cached else "its session's member"
    others = max((held.get(m, 0) for m in members if m != best), default=0)
    saved = _kept_share.get(best, 1.0) * (cached - others) / CHARS_PER_TOKEN / settings.BOOCHAT_PREFILL_TOKENS_PER_SECOND
    wait = _expected_wait(best, caps[best], ahead)
    if saved > wait + waited:
        return "1" + best, f"waits for its cached member: {saved:.1f} s of prefill saved against ~{wait:.1f} s of wait"
    return "0" + best, f"its cached member is full: {saved:.1f} s of prefill saved against ~{wait:.1f} s of wait"


async def _next_turn(pool: str, members: Sequence[str]) -> str:
    client = fleet_store.async_redis()
    assert client is not None
    return members[(int(await client.incr(f"{fleet_store.prefix()}:turn:{pool}")) - 1) % len(members)]


def remember(admission: Admission, route: Route, *, session: str = "") -> asyncio.Task[None] | None:
    """After `route` (a pool's member) took the request: it holds the prompt's prefixes now."""
    if route.pool is None or route.strategy != PoolStrategy.CACHE:
        return None
    return _background(affinity.record(str(route.pool), admission.prefix, str(route.ref), session=session))


_tasks: set[asyncio.Task[Any]] = set()


def _background(work: Any) -> asyncio.Task[None]:  # noqa: ANN401 - a coroutine
    task: asyncio.Task[None] = asyncio.ensure_future(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


def learn_in_background(route: Route) -> None:
    """Read the member's slots from its host, once, off the request's path."""
    if not route.slots and route.kind in (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER):
        _background(_learn(route))


async def _learn(route: Route) -> None:
    if _positive(await cache.aget(_slots_key(route))) or not await cache.aadd(_slots_key(route) + ":asking", 1, timeout=30):
        return
    await asyncio.to_thread(learn_capacity, route)


# -- what /models/ shows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberLoad:
    member: str
    in_flight: int
    slots: int  # 0: not known
    cached_tokens: int  # over the member's recent answers that said
    prompt_tokens: int

    @property
    def reuse_percent(self) -> int | None:
        return round(100 * self.cached_tokens / self.prompt_tokens) if self.prompt_tokens else None


@dataclass(frozen=True)
class PoolLoad:
    model: str  # the pool's composite id
    strategy: str
    waiting: int
    members: tuple[MemberLoad, ...]


def fleet_now() -> list[PoolLoad]:
    """Every pool model's members with their requests in flight, slots and recent cache reuse, and
    the requests waiting in its line."""
    from providers.ids import ModelRef
    from providers.routing import RoutingError, route_for

    snapshot = registry.get()
    loads = []
    for (slug, model), members in sorted(snapshot.pools.items()):
        pool = snapshot.providers.get(slug)
        if pool is None or not pool.enabled:
            continue
        counts = in_flight(members)
        rows = []
        for member in members:
            member_slug, _, member_model = member.partition("/")
            provider = snapshot.providers.get(member_slug)
            try:
                route = replace(route_for(provider, ModelRef(member_slug, member_model)),
                                slots=snapshot.slots.get((member_slug, member_model), 0)) if provider else None
            except RoutingError:
                route = None
            cached, prompt = recent_reuse(member)
            rows.append(MemberLoad(member, counts.get(member, 0), capacity(route) if route else 0, cached, prompt))
        loads.append(PoolLoad(f"{slug}/{model}", pool.strategy, waiting(f"{slug}/{model}"), tuple(rows)))
    return loads
