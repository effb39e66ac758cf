"""Benchmark: the OpenAI-compatible gateway against calling the fake host directly.

(a) added latency of a non-streaming chat completion, p50/p99, at concurrency 1 and 50, and
requests/s at 50; (b) relay rate of one 5,000-chunk stream. Printed side by side with ratios.
The app runs under gunicorn with uvicorn workers (harness.WORKERS); everything on 127.0.0.1, bounded.

When a LiteLLM proxy is installed (`pip install 'litellm[proxy]'`, found on PATH or named by
BOOCHAT_BENCH_LITELLM), the same load also runs against it, configured with the same fake hosts,
so BooChat and the peer gateway are compared in one run, with as many workers each (offline: no cost
map download, no telemetry).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import STACK, WORKERS, fake_host_process, free_port, percentile, record, running_app, setup_django

setup_django()

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from boochat.gateway.keys import create_key  # noqa: E402
from providers.models import Provider  # noqa: E402

SEQUENTIAL = 200
CONCURRENT, CONCURRENT_TOTAL = 50, 1000
LONG_STREAM = 5000
STREAM_RUNS = 11


async def timed_requests(url: str, body: dict, headers: dict, *, concurrency: int, total: int) -> tuple[list[float], float]:
    # aiohttp, not httpx: httpx's own pool tops out near 150 requests/s at concurrency 50 here.
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
        queue = iter(range(total))
        payload = json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with client.post(url, data=payload, headers=headers) as response:
                    text = await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, total / elapsed


async def stream_rate(url: str, body: dict, headers: dict) -> float:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        started = time.perf_counter()
        async with client.post(url, json=body, headers=headers) as response:
            events = sum([chunk.count(b"data: ") async for chunk in response.content.iter_any()])
        return events / (time.perf_counter() - started)


@contextmanager
def litellm_proxy(hosts: dict[str, str]) -> Iterator[tuple[str, dict[str, str]] | None]:
    """A LiteLLM proxy routing the same model names to the same fake hosts, if LiteLLM is installed."""
    binary = os.environ.get("BOOCHAT_BENCH_LITELLM") or shutil.which("litellm")
    if not binary:
        yield None
        return
    config = Path(tempfile.mkdtemp(prefix="boochat-litellm-")) / "config.yaml"
    config.write_text("model_list:\n" + "".join(
        f"  - model_name: {name}\n    litellm_params:\n      model: openai/qwen3-8b\n"
        f"      api_base: {url}/v1\n      api_key: none\n" for name, url in hosts.items()))
    port, master_key = free_port(), "sk-bench-" + "0" * 32
    env = {**os.environ, "LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_LOG": "ERROR"}
    # As many workers as BooChat has; with two, LiteLLM's workers take longer to start than its default
    # health check waits (uvicorn then stops them all), so the check gets 90 s.
    proxy = subprocess.Popen([binary, "--config", str(config), "--port", str(port), "--telemetry", "False",
                              "--num_workers", str(WORKERS), "--timeout_worker_healthcheck", "90"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proxy.poll() is None:
            try:
                if httpx.get(f"{base}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            print("  (LiteLLM did not start; compared without it)")
            yield None
            return
        yield f"{base}/v1/chat/completions", {"Authorization": f"Bearer {master_key}"}
    finally:
        proxy.terminate()
        proxy.wait(20)


def main() -> None:
    model = {"id": "qwen3-8b", "loaded": True}
    with fake_host_process([model], reply=["Hi"]) as short_host, \
            fake_host_process([model], reply=["tok "] * LONG_STREAM) as long_host:
        Provider.objects.create(slug="bench", name="Bench host", base_url=short_host, is_default=True)
        Provider.objects.create(slug="long", name="Long answers", base_url=long_host)
        _, key = create_key(name="bench")
        auth = {"Authorization": f"Bearer {key}"}
        message = [{"role": "user", "content": "Hello"}]
        direct_body = {"model": "qwen3-8b", "messages": message}
        results = {}
        with running_app() as base:
            gateway = f"{base}/v1/chat/completions"
            cases = (("direct", f"{short_host}/v1/chat/completions", direct_body, {}),
                     ("gateway", gateway, {"model": "bench/qwen3-8b", "messages": message}, auth))
            for name, url, body, headers in cases:
                asyncio.run(timed_requests(url, body, headers, concurrency=5, total=50))  # warm-up
                results[name, 1] = asyncio.run(timed_requests(url, body, headers, concurrency=1, total=SEQUENTIAL))
                results[name, 50] = asyncio.run(timed_requests(url, body, headers, concurrency=CONCURRENT, total=CONCURRENT_TOTAL))
            # One stream lasts ~0.1 s on a shared machine: rounds of direct-then-gateway, and the
            # median of the rounds' ratios is the figure (so a noisy moment hits both paths).
            rounds = [(asyncio.run(stream_rate(f"{long_host}/v1/chat/completions", {**direct_body, "stream": True}, {})),
                       asyncio.run(stream_rate(gateway, {"model": "long/qwen3-8b", "messages": message, "stream": True},
                                               auth))) for _ in range(STREAM_RUNS)]
            results["stream"] = (statistics.median(d for d, _ in rounds), statistics.median(g for _, g in rounds),
                                 statistics.median(g / d for d, g in rounds))
        with litellm_proxy({"bench/qwen3-8b": short_host, "long/qwen3-8b": long_host}) as peer:
            if peer is not None:
                url, headers = peer
                body = {"model": "bench/qwen3-8b", "messages": message}
                asyncio.run(timed_requests(url, body, headers, concurrency=5, total=50))  # warm-up
                results["litellm", 1] = asyncio.run(timed_requests(url, body, headers, concurrency=1, total=SEQUENTIAL))
                results["litellm", 50] = asyncio.run(timed_requests(url, body, headers, concurrency=CONCURRENT, total=CONCURRENT_TOTAL))

    print(f"OpenAI-compatible gateway vs direct (non-streaming chat completion; {STACK};")
    print("the fake hosts run in their own processes)")
    print(f"  {'':34}{'direct':>10}{'gateway':>10}{'added':>10}{'ratio':>8}")
    for concurrency in (1, 50):
        (direct, direct_rps), (gateway, gateway_rps) = results["direct", concurrency], results["gateway", concurrency]
        for label, pct in (("p50", 50), ("p99", 99)):
            d, g = percentile(direct, pct), percentile(gateway, pct)
            print(f"  {f'latency {label} at concurrency {concurrency} (ms)':34}{d:10.2f}{g:10.2f}{g - d:+10.2f}{g / d:8.1f}x")
        print(f"  {f'requests/s at concurrency {concurrency}':34}{direct_rps:10.0f}{gateway_rps:10.0f}{'':10}{gateway_rps / direct_rps:8.0%}")
    direct_rate, gateway_rate, relay_ratio = results["stream"]
    print(f"  {f'relay of a {LONG_STREAM}-chunk stream (events/s)':34}{direct_rate:10.0f}{gateway_rate:10.0f}{'':10}{relay_ratio:8.0%}")
    print(f"  (stream relay: medians of {STREAM_RUNS} rounds, each direct then gateway; the ratio is the median round's)")
    print(f"  (median latency at concurrency 1: direct {statistics.median(results['direct', 1][0]):.2f} ms)")
    if ("litellm", 50) in results:
        for concurrency in (1, 50):
            (peer, peer_rps), (gateway, gateway_rps) = results["litellm", concurrency], results["gateway", concurrency]
            print(f"  LiteLLM proxy at concurrency {concurrency}: p50 {percentile(peer, 50):.2f} ms, p99 {percentile(peer, 99):.2f} ms,"
                  f" {peer_rps:.0f} req/s; BooChat's throughput is {gateway_rps / peer_rps:.1f}x LiteLLM's")
        ratio = results["gateway", 50][1] / results["litellm", 50][1]
        record("gateway", "req/s at concurrency 50 vs LiteLLM proxy", boochat=results["gateway", 50][1], unit="req/s",
               target=">= 10x LiteLLM", met=ratio >= 10)
    else:
        print("  (no LiteLLM proxy installed: `pip install 'litellm[proxy]'` to compare with it in the same run)")
        record("gateway", "req/s at concurrency 50 vs LiteLLM proxy", boochat=results["gateway", 50][1], unit="req/s",
               target=">= 10x LiteLLM (not measured: no LiteLLM proxy installed)")
    d1, g1 = percentile(results["direct", 1][0], 50), percentile(results["gateway", 1][0], 50)
    record("gateway", "latency p50 at concurrency 1", boochat=g1, direct=d1, target="+1 ms", met=g1 - d1 <= 1)
    record("gateway", "latency p99 at concurrency 50", boochat=percentile(results["gateway", 50][0], 99),
           direct=percentile(results["direct", 50][0], 99))
    record("gateway", "requests/s at concurrency 50", boochat=results["gateway", 50][1], direct=results["direct", 50][1],
           unit="req/s")
    record("gateway", "relay of a 5000-chunk stream", boochat=gateway_rate, direct=direct_rate, unit="events/s",
           target=">= 80 % of direct (median round)", met=relay_ratio >= 0.8)


if __name__ == "__main__":
    main()
