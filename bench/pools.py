"""Benchmark: what a model pool costs through the gateway.

(a) Routing: non-streaming chat completions at concurrency 1 to a plain model (`bench/qwen3-8b`)
and to a pool over it (`fleet/qwen3-8b`, its first member), requests alternating so that a noisy
moment hits both; the figure is the difference of the p50s. resolve() alone is timed in this process
too. (b) Failover: time to first byte of a streamed answer from a pool whose first member refuses the
connection (its chat goes to a closed port while its model list says it is up), against the second
member asked directly.
"""

from __future__ import annotations

import asyncio
import time

from harness import STACK, fake_host_process, percentile, record, running_app, setup_django

setup_django()

import aiohttp  # noqa: E402

from boochat.gateway.keys import create_key  # noqa: E402
from providers.catalog import load_catalog  # noqa: E402
from providers.models import ModelOverride, Provider, ProviderKind  # noqa: E402
from providers.routing import resolve  # noqa: E402

ROUNDS = 300
RESOLVES = 20_000


async def alternating(url: str, bodies: dict[str, dict], headers: dict, *, first_byte: bool) -> dict[str, list[float]]:
    """ROUNDS requests of each body, in turn; milliseconds to the whole answer (or its first byte)."""
    times: dict[str, list[float]] = {name: [] for name in bodies}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        for _ in range(ROUNDS):
            for name, body in bodies.items():
                started = time.perf_counter()
                async with client.post(url, json=body, headers=headers) as response:
                    if first_byte:
                        await response.content.readany()
                    else:
                        await response.read()
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert response.status == 200, await response.text()
                    await response.read()
    return times


def resolve_cost() -> tuple[float, float]:
    """Microseconds per resolve() of the plain model and of the pool, in this process."""
    load_catalog()  # the cached lists the pool's choice reads
    costs = []
    for model in ("bench/qwen3-8b", "fleet/qwen3-8b"):
        resolve(model)
        started = time.perf_counter()
        for _ in range(RESOLVES):
            resolve(model)
        costs.append((time.perf_counter() - started) / RESOLVES * 1e6)
    return costs[0], costs[1]


def main() -> None:
    import logging

    logging.getLogger("providers.pools").setLevel(logging.WARNING)  # one INFO line per choice otherwise
    model = {"id": "qwen3-8b", "loaded": True}
    with fake_host_process([model], reply=["Hi"]) as first, fake_host_process([model], reply=["Hi"]) as second:
        Provider.objects.create(slug="bench", name="Bench host", base_url=first, is_default=True)
        Provider.objects.create(slug="second", name="Second host", base_url=second)
        # Lists its models from a live host but sends chat to a closed port: a member that refuses.
        Provider.objects.create(slug="refusing", name="Refusing host", base_url=first,
                                sidecar_url="http://127.0.0.1:9")  # nothing listens on the discard port
        fleet = Provider.objects.create(slug="fleet", name="Pool", kind=ProviderKind.POOL)
        ModelOverride.objects.create(provider=fleet, model="qwen3-8b", members=["bench/qwen3-8b", "second/qwen3-8b"])
        ModelOverride.objects.create(provider=fleet, model="failover", members=["refusing/qwen3-8b", "second/qwen3-8b"])
        plain_us, pool_us = resolve_cost()
        _, key = create_key(name="bench")
        auth = {"Authorization": f"Bearer {key}"}
        message = [{"role": "user", "content": "Hello"}]
        with running_app() as base:
            url = f"{base}/v1/chat/completions"
            routing = {"plain": {"model": "bench/qwen3-8b", "messages": message},
                       "pool": {"model": "fleet/qwen3-8b", "messages": message}}
            failover = {"second member": {"model": "second/qwen3-8b", "messages": message, "stream": True},
                        "pool, first refuses": {"model": "fleet/failover", "messages": message, "stream": True}}
            asyncio.run(alternating(url, routing, auth, first_byte=False))  # warm-up
            routed = asyncio.run(alternating(url, routing, auth, first_byte=False))
            failed_over = asyncio.run(alternating(url, failover, auth, first_byte=True))

    plain, pool = percentile(routed["plain"], 50), percentile(routed["pool"], 50)
    own, via = percentile(failed_over["second member"], 50), percentile(failed_over["pool, first refuses"], 50)
    print(f"Model pools through the gateway ({STACK}; {ROUNDS} requests of each, alternating)")
    print(f"  resolve() in this process: plain {plain_us:.1f} µs, pool {pool_us:.1f} µs ({pool_us - plain_us:+.1f} µs)")
    print(f"  whole answer at concurrency 1, p50: plain {plain:.2f} ms, pool {pool:.2f} ms ({pool - plain:+.2f} ms)")
    print(f"  first byte, p50: second member asked directly {own:.2f} ms, pool whose first member refuses "
          f"{via:.2f} ms ({via - own:+.2f} ms)")
    record("pools", "routing cost at concurrency 1 (p50, over a plain model)", boochat=pool, direct=plain,
           target="+0.2 ms", met=pool - plain <= 0.2)
    record("pools", "failover to first byte, first member refusing (p50)", boochat=via, direct=own,
           target="+5 ms over the second member's own", met=via - own <= 5)


if __name__ == "__main__":
    main()
