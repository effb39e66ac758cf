"""Benchmark: the chat streaming proxy against talking to the fake host directly.

Prints time to first byte (p50/p95) and relay throughput for one long stream, BooChat vs direct.
The app runs as in production: gunicorn with uvicorn workers (harness.WORKERS), SQLite in a temporary folder.
Run with `make bench` or `.venv/bin/python bench/chat_relay.py`. Loopback only, bounded load.
"""

from __future__ import annotations

import statistics
import time

from harness import STACK, logged_in, page_csrf_token, percentile, record, running_app, setup_django, ttfb

setup_django()

import httpx  # noqa: E402

from boochat.models import ChatSession  # noqa: E402
from providers.models import Provider  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

SAMPLES = 100
LONG_STREAM = 5000
STREAM_RUNS = 11


def throughput(client: httpx.Client, url: str, **kwargs: object) -> tuple[float, int]:
    started = time.perf_counter()
    with client.stream("POST", url, **kwargs) as response:
        body = b"".join(response.iter_raw())
    events = body.count(b"data: ")
    return events / (time.perf_counter() - started), events


def main() -> None:
    host = FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768, loaded=True)]).start()
    Provider.objects.create(slug="bench", name="Bench host", base_url=host.url, is_default=True)
    user, session_key = logged_in("bench")

    try:
        with running_app() as base:
            measured = measure(host, base, user, session_key)
    finally:
        host.stop()
    report(*measured)


def measure(host: FakeLlamaSwap, base: str, user: object, session_key: str) -> tuple:
    body = {"model": "qwen3-8b", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Hello, who are you?"}]}
    with httpx.Client(timeout=60) as direct, httpx.Client(base_url=base, timeout=60,
                                                            cookies={"sessionid": session_key}) as proxy:
        headers = {"X-BooChat-Stream": "1", "X-CSRFToken": page_csrf_token(proxy.get("/chat/").text)}

        def proxy_url() -> str:
            session = ChatSession.objects.create(user=user, model_id="bench/qwen3-8b", title="bench")
            return f"/chat/{session.pk}/send"

        for _ in range(3):  # warm-up both paths
            ttfb(direct, f"{host.url}/v1/chat/completions", json=body)
            ttfb(proxy, proxy_url(), data={"content": "Hello, who are you?"}, headers=headers)
        # Alternating, so that a noisy moment of the machine hits both paths alike.
        pairs = [(ttfb(direct, f"{host.url}/v1/chat/completions", json=body),
                  ttfb(proxy, proxy_url(), data={"content": "Hello, who are you?"}, headers=headers)) for _ in range(SAMPLES)]
        direct_ttfb, proxy_ttfb = [d for d, _ in pairs], [p for _, p in pairs]

        host.reply = ["tok "] * LONG_STREAM
        # One stream lasts ~0.1-0.2 s: the median of several is the figure.
        # Rounds of direct-then-BooChat, so a noisy moment hits both; the median round's ratio is the figure.
        rounds = [(throughput(direct, f"{host.url}/v1/chat/completions", json=body),
                   throughput(proxy, proxy_url(), data={"content": "go"}, headers=headers)) for _ in range(STREAM_RUNS)]
        direct_rate, direct_events = statistics.median(d[0] for d, _ in rounds), rounds[0][0][1]
        proxy_rate, proxy_events = statistics.median(p[0] for _, p in rounds), rounds[0][1][1]
        ratio = statistics.median(p[0] / d[0] for d, p in rounds)
    return direct_ttfb, proxy_ttfb, direct_rate, proxy_rate, ratio, direct_events, proxy_events


def report(direct_ttfb: list[float], proxy_ttfb: list[float], direct_rate: float, proxy_rate: float, ratio: float,
           direct_events: int, proxy_events: int) -> None:
    def p95(values: list[float]) -> float:
        return percentile(values, 95)

    d50, p50 = statistics.median(direct_ttfb), statistics.median(proxy_ttfb)
    print(f"chat streaming proxy vs direct ({SAMPLES} requests each; app: {STACK}, SQLite)")
    print(f"  {'':28}{'direct':>12}{'BooChat':>12}{'added / ratio':>16}")
    print(f"  {'time to first byte p50 (ms)':28}{d50:12.2f}{p50:12.2f}{p50 - d50:+15.2f}")
    print(f"  {'time to first byte p95 (ms)':28}{p95(direct_ttfb):12.2f}{p95(proxy_ttfb):12.2f}{p95(proxy_ttfb) - p95(direct_ttfb):+15.2f}")
    print(f"  {'relay, events/s':28}{direct_rate:12.0f}{proxy_rate:12.0f}{ratio:15.0%}")
    print(f"  (streams of {LONG_STREAM} chunks, medians of {STREAM_RUNS} rounds of direct then BooChat: {direct_events} events direct, "
          f"{proxy_events} through BooChat)")
    print("  BooChat's first byte includes saving the question and the answer row, routing and the context check.")
    record("chat proxy", "TTFB p50", boochat=p50, direct=d50, target="+5 ms", met=p50 - d50 <= 5)
    record("chat proxy", "relay of a 5000-chunk stream", boochat=proxy_rate, direct=direct_rate, unit="events/s",
           target=">= 80 % of direct (median round)", met=ratio >= 0.8)


if __name__ == "__main__":
    main()
