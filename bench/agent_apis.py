"""Benchmark: the agent APIs (`/v1/responses`, `/v1/messages`) against `/v1/chat/completions`.

(a) what translation adds: p50 of a non-streaming request at concurrency 1 through each API, minus
the p50 of the same request as Chat Completions through the gateway (same host, same answer);
(b) the relay rate of one 5,000-piece streamed answer re-spoken as Responses or Messages events,
against the host's own stream read directly (answer pieces per second; rounds of direct-then-
gateway, the median round's ratio is the figure). The fake host serves no agent API itself, so
every request is translated. The app runs under gunicorn with uvicorn workers (harness.WORKERS).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

from harness import STACK, fake_host_process, percentile, record, running_app, setup_django

setup_django()

import aiohttp  # noqa: E402

from boochat.gateway.keys import create_key  # noqa: E402
from providers.models import Provider  # noqa: E402

SEQUENTIAL, ROUNDS, LONG_STREAM, STREAM_RUNS = 300, 3, 5000, 11
MESSAGE = [{"role": "user", "content": "Hello"}]
PIECE = b"tok "  # each piece of the long answer


async def timed_requests(url: str, body: dict, headers: dict, *, concurrency: int, total: int) -> list[float]:
    """Latencies (ms) of `total` requests, `concurrency` at a time (as bench/gateway.py measures)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as client:
        queue, payload = iter(range(total)), json.dumps(body).encode()

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with client.post(url, data=payload, headers={**headers, "Content-Type": "application/json"}) as response:
                    text = await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def piece_rate(url: str, body: dict, headers: dict, marker: bytes) -> float:
    """Answer pieces per second of one stream: the pieces in events holding `marker` (a burst of
    tokens that arrived in one read is one delta event through the gateway)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        started = time.perf_counter()
        pending, pieces = b"", 0
        async with client.post(url, json=body, headers=headers) as response:
            async for chunk in response.content.iter_any():
                pending += chunk
                events = pending.split(b"\n\n")
                pending = events.pop()
                pieces += sum(event.count(PIECE) for event in events if marker in event)
        return pieces / (time.perf_counter() - started)


def main() -> None:
    model = {"id": "qwen3-8b", "loaded": True}
    with fake_host_process([model], reply=["Hi"]) as short_host, \
            fake_host_process([model], reply=[PIECE.decode()] * LONG_STREAM) as long_host:
        Provider.objects.create(slug="bench", name="Bench host", base_url=short_host, is_default=True)
        Provider.objects.create(slug="long", name="Long answers", base_url=long_host)
        _, key = create_key(name="bench")
        auth = {"Authorization": f"Bearer {key}"}
        cases = {
            "chat": ("chat/completions", {"model": "bench/qwen3-8b", "messages": MESSAGE}),
            "responses": ("responses", {"model": "bench/qwen3-8b", "input": "Hello", "store": False}),
            "messages": ("messages", {"model": "bench/qwen3-8b", "max_tokens": 64, "messages": MESSAGE}),
        }
        latencies: dict[str, list[float]] = {name: [] for name in cases}
        with running_app() as base:
            for path, body in cases.values():  # warm-up (and the host's 404 at /v1/messages)
                asyncio.run(timed_requests(f"{base}/v1/{path}", body, auth, concurrency=5, total=50))
            for _ in range(ROUNDS):  # interleaved, so a noisy moment hits every API
                for name, (path, body) in cases.items():
                    latencies[name] += asyncio.run(timed_requests(f"{base}/v1/{path}", body, auth, concurrency=1,
                                                                  total=SEQUENTIAL // ROUNDS))
            streams = {
                "responses": (f"{base}/v1/responses", {"model": "long/qwen3-8b", "input": "Hello", "stream": True,
                                                        "store": False}, b"response.output_text.delta"),
                "messages": (f"{base}/v1/messages", {"model": "long/qwen3-8b", "max_tokens": 8000, "messages": MESSAGE,
                                                      "stream": True}, b"text_delta"),
            }
            direct_body = {"model": "qwen3-8b", "messages": MESSAGE, "stream": True}
            rates = {}
            for name, (url, body, marker) in streams.items():
                asyncio.run(piece_rate(url, body, auth, marker))  # warm-up
                rounds = [(asyncio.run(piece_rate(f"{long_host}/v1/chat/completions", direct_body, {}, b'"content"')),
                           asyncio.run(piece_rate(url, body, auth, marker))) for _ in range(STREAM_RUNS)]
                rates[name] = (statistics.median(d for d, _ in rounds), statistics.median(g for _, g in rounds),
                               statistics.median(g / d for d, g in rounds))

    chat_p50 = percentile(latencies["chat"], 50)
    print(f"Agent APIs vs Chat Completions through the gateway (non-streaming, concurrency 1; {STACK})")
    print(f"  {'':40}{'p50 ms':>10}{'p99 ms':>10}{'added p50':>12}")
    for name in cases:
        p50, p99 = percentile(latencies[name], 50), percentile(latencies[name], 99)
        print(f"  {f'/v1/{cases[name][0]}':40}{p50:10.2f}{p99:10.2f}{p50 - chat_p50:+12.2f}")
    for name in ("responses", "messages"):
        p50 = percentile(latencies[name], 50)
        record("agent APIs", f"/v1/{name} p50 at concurrency 1 vs chat", boochat=p50, direct=chat_p50,
               target="+0.3 ms over /v1/chat/completions", met=p50 - chat_p50 <= 0.3)
    print(f"  relay of a {LONG_STREAM}-piece stream (pieces/s){'':6}{'direct':>10}{'gateway':>10}{'ratio':>8}")
    for name, (direct, gateway, ratio) in rates.items():
        print(f"  {f'  as /v1/{name} events':40}{direct:10.0f}{gateway:10.0f}{ratio:8.0%}")
        record("agent APIs", f"/v1/{name} relay of a {LONG_STREAM}-piece stream", boochat=gateway, direct=direct,
               unit="pieces/s", target=">= 80 % of direct (median round)", met=ratio >= 0.8)
    print(f"  (stream relay: medians of {STREAM_RUNS} rounds, each direct then gateway; the ratio is the median round's)")


if __name__ == "__main__":
    main()
