"""Benchmark: what usage recording and the limit check cost the gateway.

Two copies of the app under gunicorn side by side, one with BOOCHAT_USAGE off: the same key (its
limits set high enough never to refuse, so every check runs), the same fake host. Rounds alternate
between the two (a noisy moment hits both); the figures are the medians of the rounds: added latency
p50 at concurrency 1 and requests/s at concurrency 50. With REDIS_URL set the limits are Redis's.
"""

from __future__ import annotations

import asyncio
import os
import statistics

from gateway import timed_requests
from harness import STACK, fake_host_process, percentile, record, running_app, setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402

from boochat.gateway.keys import create_key  # noqa: E402
from providers.models import Provider  # noqa: E402

ROUNDS = int(os.environ.get("BOOCHAT_BENCH_USAGE_ROUNDS", "5"))
SEQUENTIAL, CONCURRENT, CONCURRENT_TOTAL = 200, 50, 1000


def main() -> None:
    model = {"id": "qwen3-8b", "loaded": True}
    with fake_host_process([model], reply=["Hi"]) as host:
        Provider.objects.create(slug="bench", name="Bench host", base_url=host, is_default=True)
        user = get_user_model().objects.create_user("bench")
        limited = os.environ.get("BOOCHAT_BENCH_LIMITS", "1") != "0"  # 0: recording alone
        _, key = create_key(user=user, name="bench", **({"requests_per_minute": 10**9, "tokens_per_day": 10**12,
                                                         "concurrent_streams": 10**6} if limited else {}))
        auth = {"Authorization": f"Bearer {key}"}
        body = {"model": "bench/qwen3-8b", "messages": [{"role": "user", "content": "Hello"}]}
        rounds: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        with running_app() as on, running_app(BOOCHAT_USAGE="0") as off:
            bases = {"on": on, "off": off}
            for base in bases.values():
                asyncio.run(timed_requests(f"{base}/v1/chat/completions", body, auth, concurrency=5, total=100))
            for _ in range(ROUNDS):
                for name, base in bases.items():
                    url = f"{base}/v1/chat/completions"
                    latencies, _ = asyncio.run(timed_requests(url, body, auth, concurrency=1, total=SEQUENTIAL))
                    _, rps = asyncio.run(timed_requests(url, body, auth, concurrency=CONCURRENT, total=CONCURRENT_TOTAL))
                    rounds[name].append((percentile(latencies, 50), rps))
    p50 = {name: statistics.median(p for p, _ in values) for name, values in rounds.items()}
    rps = {name: statistics.median(r for _, r in values) for name, values in rounds.items()}
    added, cost = p50["on"] - p50["off"], 1 - rps["on"] / rps["off"]
    limits = "Redis" if os.environ.get("REDIS_URL") else "local memory"
    what = f"limits in {limits}" if limited else "no limit set"
    print(f"Usage recording + limit check at the gateway ({STACK}; {what}; medians of {ROUNDS} rounds)")
    print(f"  {'':34}{'off':>10}{'on':>10}{'change':>10}")
    print(f"  {'latency p50 at concurrency 1 (ms)':34}{p50['off']:10.3f}{p50['on']:10.3f}{added:+10.3f}")
    print(f"  {'requests/s at concurrency 50':34}{rps['off']:10.0f}{rps['on']:10.0f}{-cost:+10.1%}")
    record("gateway usage", "added latency p50 at concurrency 1", boochat=added, unit="ms", target="<= 0.15 ms",
           met=added <= 0.15)
    record("gateway usage", "requests/s at concurrency 50, on vs off", boochat=rps["on"], direct=rps["off"],
           unit="req/s", target="cost <= 10 %", met=cost <= 0.10)


if __name__ == "__main__":
    main()
