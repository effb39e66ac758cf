"""Benchmark: a pool's routing strategies on the same fleet, in one run.

Four fake llama-servers with two slots each (tests.fakes.slots: a request waits while both are
busy, prefill time per uncached prompt token, decode time per answer token, a per-slot prefix
cache and a host-wide prompt cache) serve three pools, one per strategy (`cache`, `round_robin`,
`least_busy`), each over its own four fresh hosts. For each strategy, 40 agent sessions of 8 turns
go through the gateway: a 6k-token system prompt all share, a task, then each turn the answer and a
tool result of ~1,000 tokens (`BOOCHAT_BENCH_TOOL_LINES=40` lines; 12 for ~300 tokens) are added
(the history grows). Sessions start over the first seconds and think between
turns. Figures: mean and p99 time to first byte (the host's first event comes after its prefill),
and the prompt tokens the hosts reused against what a perfect router could have reused (everything
but the turn's new message; for a session's first turn the shared system prompt). Then a burst of 3×
the pool's slots of new prompts at once: errors, and the p99 wait against an ideal late-binding FIFO
over the same 8 slots fed the same arrivals.

With Redis reachable (REDIS_URL, else a local one), the app runs with its usual workers sharing the
counts there; without it, with one worker.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import random
import time
import uuid
from dataclasses import dataclass

from harness import fast_event_loops, local_redis_url, percentile, record, running_app, setup_django

setup_django()

import aiohttp  # noqa: E402

from boochat.gateway.keys import create_key  # noqa: E402
from providers.models import ModelOverride, PoolStrategy, Provider, ProviderKind  # noqa: E402
from tests.fakes.slots import prompt_digest, rendered, tokens  # noqa: E402

MEMBERS, SLOTS = 4, 2
SESSIONS, TURNS = 40, 8
PREFILL_SECONDS = 0.0001  # per uncached prompt token: 10,000 tokens/s
DECODE_SECONDS = 0.01  # per answer token: 100 tokens/s per slot
REPLY = ["step "] * 60  # 60 tokens an answer
HOST_CACHE_TOKENS = 400_000  # --cache-ram, in tokens
THINK_SECONDS = (2.0, 4.0)  # an agent runs its tools between turns
START_SPREAD = 8.0  # seconds over which the sessions start
SYSTEM = "You are a coding agent in a large repository. Follow the rules. " * 140  # ~6,000 tokens (fake tokenizer)
MODEL = "agent-model"
TOOL_LINES = int(os.environ.get("BOOCHAT_BENCH_TOOL_LINES", "40"))  # 40: ~1,000 tokens a turn
KEEPALIVE_SECONDS = 3  # under the app's keep-alive (gunicorn_conf: 5 s): never reuse a connection it is closing
BURST_PROMPT = "Summarize this unrelated document about topic {}. " * 60  # a new 32-digit topic each


def _serve_fleet(queue: object, count: int, asks: object) -> None:
    from tests.fakes.llama_server import FakeLlamaServer
    from tests.fakes.llama_swap import FakeModel
    from tests.fakes.slots import Slots

    fast_event_loops()
    urls, hosts = [], []
    for _ in range(count):
        host = FakeLlamaServer(FakeModel(MODEL, n_ctx=131072), reply=REPLY)
        host.slots = Slots(SLOTS, prefill_seconds=PREFILL_SECONDS, decode_seconds=DECODE_SECONDS,
                           cache_tokens=HOST_CACHE_TOKENS)
        urls.append(host.start().url)
        hosts.append(host)
    queue.put(urls)
    while asks.recv():  # the hosts' journals, when asked
        asks.send([entry for host in hosts for entry in host.slots.journal])


@dataclass
class Fleet:
    urls: list[str]
    process: object
    asks: object

    def journal(self) -> dict[str, dict[str, float]]:
        """What the hosts saw of each request, by its prompt: when it came, got a slot, was prefilled."""
        self.asks.send(True)
        return {entry["prompt"]: entry for entry in self.asks.recv()}


def start_fleet(count: int) -> Fleet:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    asks, answers = context.Pipe()
    process = context.Process(target=_serve_fleet, args=(queue, count, answers), daemon=True)
    process.start()
    return Fleet(queue.get(timeout=30), process, asks)


@dataclass
class Turn:
    ttft: float
    cached: int
    ideal: int
    status: int
    duration: float = 0.0  # to the answer's last byte
    prompt: int = 0  # prompt tokens, as the host counted them
    sent: float = 0.0  # perf_counter() when it was sent (the same clock as the hosts')
    digest: str = ""  # its prompt's name in the hosts' journal


async def one_turn(client: aiohttp.ClientSession, url: str, pool: str, messages: list[dict], headers: dict) -> tuple[Turn, str]:
    """One streamed turn: time to first byte, the cached tokens the host reported, the answer."""
    started = time.perf_counter()
    body = {"model": pool, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    async with client.post(url, json=body, headers=headers) as response:
        first = None
        raw = b""
        async for chunk in response.content.iter_any():
            first = first or time.perf_counter()
            raw += chunk
    cached, prompt, text = 0, 0, []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {"):
            event = json.loads(line[6:])
            for choice in event.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
            usage = event.get("usage") or {}
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", cached)
            prompt = usage.get("prompt_tokens", prompt)
    ended = time.perf_counter()
    turn = Turn((first or ended) - started, cached, 0, response.status, ended - started, prompt, started,
                prompt_digest(rendered(messages)))
    return turn, "".join(text)


def tool_output(session: int, turn: int) -> str:
    """What an agent's tool gave back this turn (a test run, part of a file): TOOL_LINES lines of
    ~25 tokens."""
    return f"Tool output of turn {turn} for task {session}:\n" + "".join(
        f"line {k}: assert module_{session}.value({k}) == {k * turn}\n" for k in range(TOOL_LINES))


async def sessions(url: str, pool: str, headers: dict) -> list[Turn]:
    random.seed(7)  # the same sessions, arrivals and thinking for every strategy
    plans = [(random.uniform(0, START_SPREAD), [random.uniform(*THINK_SECONDS) for _ in range(TURNS)])
             for _ in range(SESSIONS)]
    turns: list[Turn] = []
    first_sent = asyncio.Event()

    async def agent(n: int, start: float, thinking: list[float], client: aiohttp.ClientSession) -> None:
        await asyncio.sleep(start)
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Task {n}: make the failing test in module_{n}.py pass. " * 8}]
        for turn in range(TURNS):
            if turn == 0:  # only the shared system prompt, once anyone sent it
                ideal = tokens(len(rendered(messages[:1]))) if first_sent.is_set() else 0
            else:
                ideal = tokens(len(rendered(messages[:-1])))
            first_sent.set()
            result, answer = await one_turn(client, url, pool, messages, headers)
            result.ideal = ideal
            turns.append(result)
            messages += [{"role": "assistant", "content": answer},
                         {"role": "user", "content": tool_output(n, turn)}]
            await asyncio.sleep(thinking[turn])

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as client:
        await asyncio.gather(*(agent(n, start, thinking, client) for n, (start, thinking) in enumerate(plans)))
    return turns


async def burst(url: str, pool: str, headers: dict, count: int) -> tuple[list[float], list[float], list[float], int]:
    """`count` new prompts at once: their arrival times, first- and last-byte times, and errors."""
    prompt = BURST_PROMPT
    arrivals, firsts, lasts, errors = [0.0] * count, [0.0] * count, [0.0] * count, 0

    async def one(n: int, client: aiohttp.ClientSession) -> None:
        nonlocal errors
        messages = [{"role": "user", "content": prompt.replace("{}", uuid.uuid4().hex)}]
        arrivals[n] = time.perf_counter()
        result, _ = await one_turn(client, url, pool, messages, headers)
        firsts[n] = arrivals[n] + result.ttft
        lasts[n] = arrivals[n] + result.duration
        errors += result.status != 200

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as client:
        await asyncio.gather(*(one(n, client) for n in range(count)))
    return arrivals, firsts, lasts, errors


def ideal_fifo_waits(arrivals: list[float], services: list[float], servers: int) -> list[float]:
    """Waits in an ideal late-binding FIFO line in front of `servers` slots: each request, in order of
    arrival, starts on the first slot that is free, and holds it for its own service time."""
    free = [min(arrivals)] * servers
    heapq.heapify(free)
    waits = []
    for arrival, service in sorted(zip(arrivals, services, strict=True)):
        start = max(arrival, heapq.heappop(free))
        waits.append(start - arrival)
        heapq.heappush(free, start + service)
    return waits


def breakdown(turns: list[Turn], journal: dict[str, dict[str, float]]) -> str:
    """Where each turn's time to first byte went, in means over the turns: in BooChat until a host had
    it (its line, the routing), in the host's own queue for a slot, in prefill, relayed back."""
    parts = {"in BooChat": [], "in the host's queue": [], "prefill": [], "relayed back": []}
    for turn in turns:
        seen = journal.get(turn.digest)
        if seen is None or turn.status != 200:
            continue
        parts["in BooChat"].append(seen["arrived"] - turn.sent)
        parts["in the host's queue"].append(seen["slotted"] - seen["arrived"])
        parts["prefill"].append(seen["prefilled"] - seen["slotted"])
        parts["relayed back"].append(turn.sent + turn.ttft - seen["prefilled"])
    waits = parts["in BooChat"]
    slow = sum(1 for wait in waits if wait > 0.05)
    return (", ".join(f"{name} {1000 * sum(v) / max(len(v), 1):.0f} ms" for name, v in parts.items())
            + f" (means); {slow} of {len(waits)} turns waited over 50 ms in BooChat")


def main() -> None:
    strategies = [PoolStrategy.CACHE, PoolStrategy.ROUND_ROBIN, PoolStrategy.LEAST_BUSY]
    fleets = [start_fleet(MEMBERS) for _ in strategies]
    for strategy, fleet in zip(strategies, fleets, strict=True):
        members = []
        for index, url in enumerate(fleet.urls):
            slug = f"{strategy.replace('_', '-')}-{index}"
            provider = Provider.objects.create(slug=slug, name=slug, kind=ProviderKind.LLAMA_SERVER, base_url=url)
            ModelOverride.objects.create(provider=provider, model=MODEL, slots=SLOTS)  # as a provider file says
            members.append(f"{slug}/{MODEL}")
        pool = Provider.objects.create(slug=f"pool-{strategy.replace('_', '-')}", name=strategy, kind=ProviderKind.POOL,
                                       strategy=strategy)
        ModelOverride.objects.create(provider=pool, model=MODEL, members=members)
    _, key = create_key(name="bench")
    headers = {"Authorization": f"Bearer {key}"}
    redis = local_redis_url()
    env = {"BOOCHAT_QUEUE_TIMEOUT": "600", "BOOCHAT_QUEUE_MAX": "1000", "BOOCHAT_LOG_LEVEL": "WARNING",
           # the fleet's prefill rate in BooChat's tokens (4 characters; the fakes count 1.5)
           "BOOCHAT_PREFILL_TOKENS_PER_SECOND": str(int(1 / PREFILL_SECONDS * 3 / 8))}
    if redis:
        env.update(REDIS_URL=redis, BOOCHAT_CACHE_PREFIX=f"bench-{uuid.uuid4().hex[:8]}")
    else:
        import harness

        harness.WORKERS = 1  # counts in process: one worker sees them all
    results: dict[str, list[Turn]] = {}
    try:
        with running_app(**env) as base:
            url = f"{base}/v1/chat/completions"
            for strategy in strategies:
                started = time.perf_counter()
                results[strategy] = asyncio.run(sessions(url, f"pool-{strategy.replace('_', '-')}/{MODEL}", headers))
                print(f"  {strategy}: {len(results[strategy])} turns in {time.perf_counter() - started:.1f} s", flush=True)
            slots_total = MEMBERS * SLOTS
            arrivals, firsts, lasts, errors = asyncio.run(burst(url, f"pool-cache/{MODEL}", headers, 3 * slots_total))
        journals = {strategy: fleet.journal() for strategy, fleet in zip(strategies, fleets, strict=True)}
    finally:
        for fleet in fleets:
            fleet.process.terminate()
        if redis:
            import redis as redis_client

            store = redis_client.Redis.from_url(redis)
            for stale in store.scan_iter(f"{env['BOOCHAT_CACHE_PREFIX']}:*"):
                store.delete(stale)

    from harness import STACK

    print(f"Fleet routing ({STACK}{', counts in Redis' if redis else ''}; {MEMBERS} members × {SLOTS} slots; "
          f"{SESSIONS} agent sessions × {TURNS} turns, {TOOL_LINES} lines of tool output a turn; prefill {1 / PREFILL_SECONDS:,.0f} tokens/s, "
          f"decode {1 / DECODE_SECONDS:.0f} tokens/s a slot)")
    means = {}
    for strategy, turns in results.items():
        ttfts = [t.ttft * 1000 for t in turns]
        errors_here = sum(t.status != 200 for t in turns)
        reuse = sum(min(t.cached, t.ideal) for t in turns) / max(1, sum(t.ideal for t in turns))
        means[strategy] = sum(ttfts) / len(ttfts)
        print(f"  {strategy:12} TTFT mean {means[strategy]:6.0f} ms, p99 {percentile(ttfts, 99):6.0f} ms; "
              f"prefix reuse {reuse:6.1%} of ideal; errors {errors_here}")
        print(f"  {'':12} {breakdown(turns, journals[strategy])}")
        if strategy == PoolStrategy.CACHE:
            record("fleet", "cache: prefix reuse of ideal", boochat=reuse * 100, unit="%", target="≥ 90 %",
                   met=reuse >= 0.9)
    ratio = means[PoolStrategy.ROUND_ROBIN] / means[PoolStrategy.CACHE]
    print(f"  round_robin mean TTFT / cache mean TTFT: {ratio:.1f}× (least_busy: "
          f"{means[PoolStrategy.LEAST_BUSY] / means[PoolStrategy.CACHE]:.1f}×)")
    record("fleet", "TTFT mean, cache (direct: round_robin)", boochat=means[PoolStrategy.CACHE],
           direct=means[PoolStrategy.ROUND_ROBIN], target="≥ 3× lower", met=ratio >= 3)
    burst_prompt = tokens(len(rendered([{"role": "user", "content": BURST_PROMPT.replace("{}", "x" * 32)}])))
    prefill = burst_prompt * PREFILL_SECONDS
    # A request's time on its slot: its prefill, then its answer from first to last byte, as the host
    # took them (the fakes' sleeps run a little long on a busy machine; that is not the line's doing).
    services = [prefill + (last - first) for first, last in zip(firsts, lasts, strict=True)]
    waits = [(first - arrival) - prefill for arrival, first in zip(arrivals, firsts, strict=True)]
    ideal = ideal_fifo_waits(arrivals, services, MEMBERS * SLOTS)
    measured_p99, ideal_p99 = percentile(waits, 99) * 1000, percentile(ideal, 99) * 1000
    print(f"  burst of {len(arrivals)} new prompts at once: errors {errors}; wait p99 {measured_p99:.0f} ms "
          f"against an ideal late-binding FIFO's {ideal_p99:.0f} ms ({measured_p99 / ideal_p99:.2f}×)")
    record("fleet", "burst of 3× the slots: wait p99 (direct: ideal FIFO)", boochat=measured_p99, direct=ideal_p99,
           target="0 errors, ≤ 1.10× ideal", met=errors == 0 and measured_p99 <= 1.1 * ideal_p99)


if __name__ == "__main__":
    main()
