"""Shared by the benchmarks: a temporary database, the app under gunicorn, percentiles."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# uvicorn workers under gunicorn: one per core, as `make serve` runs them; `make bench BENCH_WORKERS=1`
# for figures per worker.
WORKERS = int(os.environ.get("BOOCHAT_BENCH_WORKERS") or len(os.sched_getaffinity(0)))
STACK = f"gunicorn + {WORKERS} uvicorn worker{'s' if WORKERS > 1 else ''}"


def setup_django() -> None:
    """Configure Django on a fresh SQLite database in a temporary folder (call before other imports)."""
    sys.path.insert(0, str(ROOT))
    os.environ["BOOCHAT_DATA_DIR"] = data_dir = tempfile.mkdtemp(prefix="boochat-bench-")
    # In-process benchmarks serve no static files; the folder only has to exist (WhiteNoise checks).
    os.environ["BOOCHAT_STATIC_ROOT"] = os.path.join(data_dir, "static")
    os.makedirs(os.environ["BOOCHAT_STATIC_ROOT"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")
    os.environ.setdefault("BOOCHAT_ALLOWED_HOSTS", "127.0.0.1,testserver")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def logged_in(username: str) -> tuple[Any, str]:
    """A new user and a session logged in as them, as the login page would leave it (no password, no
    page): the user and the session cookie's value."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.create_user(username)
    store = SessionStore()
    store.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[-1],
                  HASH_SESSION_KEY: user.get_session_auth_hash()})
    store.create()
    assert store.session_key is not None
    return user, store.session_key


def local_redis_url() -> str:
    """`REDIS_URL`, else the machine's own Redis (db 11), if it answers; "" when there is none."""
    import redis

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/11"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return ""
    return url


def ttfb(client: Any, url: str, **kwargs: Any) -> float:
    """Milliseconds from a POST to `url` (an httpx client's stream) to its first bytes; the rest is read."""
    started = time.perf_counter()
    with client.stream("POST", url, **kwargs) as response:
        assert response.status_code == 200, response.read()
        chunks = response.iter_raw()
        next(chunks)
        first = time.perf_counter() - started
        for _ in chunks:
            pass
    return first * 1000


def page_csrf_token(html: str) -> str:
    """The CSRF token of a page's forms, which the page's script sends with each chat send: masked,
    so each send pays Django's unmasking, as a browser's does (the cookie's value would not)."""
    import re

    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if match is None:
        raise SystemExit("the page has no CSRF token")
    return match.group(1)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(**env: str) -> Iterator[str]:
    """BooChat under gunicorn with WORKERS uvicorn workers (the production stack); yields its base URL.
    The gunicorn master's pid is `running_app.pid` while it runs."""
    import httpx

    port = free_port()
    static_root = tempfile.mkdtemp(prefix="boochat-static-")
    environment = {**os.environ, "BOOCHAT_BIND": f"127.0.0.1:{port}", "BOOCHAT_WORKERS": str(WORKERS),
                   "BOOCHAT_STATIC_ROOT": static_root, **env}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
                   cwd=ROOT, env=environment, check=True)  # as `make serve` does
    # The app's log goes to a file: a pipe nobody reads would block the workers once it is full.
    log = tempfile.TemporaryFile()
    app = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:boochat.gunicorn_conf", "--access-logfile", "/dev/null",
         "boochat.asgi:application"], cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=log,
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
            if app.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit("the app did not start: " + log.read().decode())
            time.sleep(0.2)
        running_app.pid = app.pid
        yield base
    finally:
        app.terminate()
        app.wait(10)
        log.close()


def fast_event_loops() -> None:
    """uvloop for this process's event loops, as the app has (the fakes and load generators then
    take less of the machine's two cores from the app they measure)."""
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _serve_fake(queue: object, models: list[dict], options: dict) -> None:
    import threading

    from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

    fast_event_loops()
    host = FakeLlamaSwap([FakeModel(**m) for m in models], **options).start()
    queue.put(host.url)
    threading.Event().wait()


@contextmanager
def fake_host_process(models: list[dict], **options: object) -> Iterator[str]:
    """A fake llama-swap host in its own process, so that it does not share the benchmark's GIL."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_serve_fake, args=(queue, models, options), daemon=True)
    process.start()
    try:
        yield queue.get(timeout=30)
    finally:
        process.terminate()
        process.join(10)


def record(benchmark: str, figure: str, *, boochat: float, direct: float | None = None, unit: str = "ms",
           target: str = "", met: bool | None = None) -> None:
    """Add one figure to the run's results (bench/run_all.py collects them into a table and JSON)."""
    import json

    path = os.environ.get("BOOCHAT_BENCH_OUT")
    if not path:
        return
    row = {"benchmark": benchmark, "figure": figure, "boochat": round(boochat, 2), "unit": unit,
           "direct": round(direct, 2) if direct is not None else None, "target": target, "met": met}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
