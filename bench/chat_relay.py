"""Benchmark: the chat streaming proxy against talking to the fake host directly.

Prints time to first byte (p50/p95) and relay throughput for one long stream, BooChat vs direct.
The app runs as in production: gunicorn with one uvicorn worker, SQLite in a temporary folder.
Run with `make bench` or `.venv/bin/python bench/chat_relay.py`. Loopback only, bounded load.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["BOOCHAT_DATA_DIR"] = tempfile.mkdtemp(prefix="boochat-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402

from boochat.models import ChatSession  # noqa: E402
from providers.models import Provider  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

SAMPLES = 30
LONG_STREAM = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ttfb(client: httpx.Client, url: str, **kwargs: object) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, **kwargs) as response:
        assert response.status_code == 200, response.read()
        chunks = response.iter_raw()
        next(chunks)
        first = time.perf_counter() - started
        for _ in chunks:
            pass
    return first * 1000


def throughput(client: httpx.Client, url: str, **kwargs: object) -> tuple[float, int]:
    started = time.perf_counter()
    with client.stream("POST", url, **kwargs) as response:
        body = b"".join(response.iter_raw())
    events = body.count(b"data: ")
    return events / (time.perf_counter() - started), events


def main() -> None:
    call_command("migrate", verbosity=0)
    host = FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768, loaded=True)]).start()
    Provider.objects.create(slug="bench", name="Bench host", base_url=host.url, is_default=True)
    user = get_user_model().objects.create_user("bench")
    store = SessionStore()
    store.update({"_auth_user_id": str(user.pk), "_auth_user_backend": settings.AUTHENTICATION_BACKENDS[0],
                  "_auth_user_hash": user.get_session_auth_hash()})
    store.create()

    port = free_port()
    env = {**os.environ, "BOOCHAT_BIND": f"127.0.0.1:{port}", "BOOCHAT_WORKERS": "1"}
    app = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:boochat.gunicorn_conf", "--access-logfile", "/dev/null",
         "boochat.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the app did not start: " + app.stderr.read1().decode())
            time.sleep(0.2)

        body = {"model": "qwen3-8b", "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Hello, who are you?"}]}
        with httpx.Client(timeout=60) as direct, httpx.Client(base_url=base, timeout=60,
                                                                cookies={"sessionid": store.session_key}) as proxy:
            token = proxy.get("/chat/").cookies.get("csrftoken") or proxy.cookies.get("csrftoken")
            headers = {"X-BooChat-Stream": "1", "X-CSRFToken": token}

            def proxy_url() -> str:
                session = ChatSession.objects.create(user=user, model_id="bench/qwen3-8b", title="bench")
                return f"/chat/{session.pk}/send"

            for _ in range(3):  # warm-up both paths
                ttfb(direct, f"{host.url}/v1/chat/completions", json=body)
                ttfb(proxy, proxy_url(), data={"content": "Hello, who are you?"}, headers=headers)
            direct_ttfb = [ttfb(direct, f"{host.url}/v1/chat/completions", json=body) for _ in range(SAMPLES)]
            proxy_ttfb = [ttfb(proxy, proxy_url(), data={"content": "Hello, who are you?"}, headers=headers) for _ in range(SAMPLES)]

            host.reply = ["tok "] * LONG_STREAM
            direct_rate, direct_events = throughput(direct, f"{host.url}/v1/chat/completions", json=body)
            proxy_rate, proxy_events = throughput(proxy, proxy_url(), data={"content": "go"}, headers=headers)
    finally:
        app.terminate()
        app.wait(10)
        host.stop()

    def p95(values: list[float]) -> float:
        return sorted(values)[int(0.95 * (len(values) - 1))]

    d50, p50 = statistics.median(direct_ttfb), statistics.median(proxy_ttfb)
    print(f"chat streaming proxy vs direct ({SAMPLES} requests each; app: gunicorn + 1 uvicorn worker, SQLite)")
    print(f"  {'':28}{'direct':>12}{'BooChat':>12}{'added / ratio':>16}")
    print(f"  {'time to first byte p50 (ms)':28}{d50:12.2f}{p50:12.2f}{p50 - d50:+15.2f}")
    print(f"  {'time to first byte p95 (ms)':28}{p95(direct_ttfb):12.2f}{p95(proxy_ttfb):12.2f}{p95(proxy_ttfb) - p95(direct_ttfb):+15.2f}")
    print(f"  {'relay, events/s':28}{direct_rate:12.0f}{proxy_rate:12.0f}{proxy_rate / direct_rate:15.0%}")
    print(f"  (one stream of {LONG_STREAM} chunks: {direct_events} events direct, {proxy_events} through BooChat)")
    print("  BooChat's first byte includes saving the question and the answer row, routing and the context check.")


if __name__ == "__main__":
    main()
