from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from django.core.cache import cache

from boochat.gateway.keys import active_keys as keys
from boochat.limits import clear_counts, limit_rows
from providers import affinity, slots
from providers.access import restricted_users
from providers.routing import registry
from tests.fakes.deepseek import FakeDeepSeek
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # The suite serves static files from the source folders, without running collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.STATIC_ROOT = None
    settings.WHITENOISE_USE_FINDERS = True
    # Hashing test passwords at full strength only makes the suite slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache():
    # Each test's rows are rolled back, which no signal reports: start every test from nothing cached.
    cache.clear()
    for snapshot in (registry, keys, restricted_users, limit_rows):
        snapshot.forget()
    clear_counts()
    affinity.forget_local()
    slots.forget_local()
    yield
    cache.clear()
    for snapshot in (registry, keys, restricted_users, limit_rows):
        snapshot.forget()
    affinity.forget_local()
    slots.forget_local()


@pytest.fixture(autouse=True)
def _usage_writer(request, settings):
    """Usage records are written by a background thread, which a test's open transaction would block
    (and whose rows would outlive the test): tests on a transactional database keep it and wait for
    it at the end; the others write what they recorded with `recorder.flush()`."""
    from boochat.usage.recording import recorder

    recorder.discard()
    transactional = "transactional_db" in request.fixturenames or any(
        marker.kwargs.get("transaction") for marker in request.node.iter_markers("django_db"))
    settings.BOOCHAT_USAGE_WRITER = transactional
    yield
    if transactional:
        recorder.wait_idle(10)
    else:
        recorder.discard()


@pytest.fixture(autouse=True)
def _own_fleet_keys(settings):
    """Each test's pools keep their counts, lines and prefixes under keys of their own in Redis (with
    REDIS_URL): a lease or a line of another test is never seen."""
    import uuid

    settings.BOOCHAT_CACHE_PREFIX = f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _no_provider_env(settings):
    """Tests start from no configured provider source unless they set one."""
    settings.LLAMA_PROVIDERS_PATH = ""
    settings.LLAMA_SWAP_URL = ""
    settings.LLAMA_SIDECAR_URL = ""


@pytest.fixture
def sam_desktop():
    """The GPU desktop: big models, a llama-swap peer, and a `qwen3-8b` with a 2048 context."""
    host = FakeLlamaSwap([
        FakeModel("qwen3-30b", n_ctx=32768, name="Qwen3 30B", description="MoE, 3B active", context_length=32768, loaded=True),
        FakeModel("qwen3-8b", n_ctx=2048),
        FakeModel("gpt-oss-20b", n_ctx=8192, peer="box2"),
    ])
    with host:
        yield host


@pytest.fixture
def embedding_host():
    """The small box: embeddings and small models, among them a local DeepSeek distill."""
    host = FakeLlamaSwap([
        FakeModel("qwen3-8b", n_ctx=1024),
        FakeModel("deepseek-r1-qwen3-8b", n_ctx=4096),
        # Listed as serving embeddings only (the `architecture` of llama-swap's newer lists).
        FakeModel("nomic-embed", n_ctx=2048, extra={"architecture": {"output_modalities": ["embeddings"]}}),
    ], swap=False)
    with host:
        yield host


@pytest.fixture
def deepseek_host():
    with FakeDeepSeek() as host:
        yield host


@pytest.fixture
def hosts(sam_desktop, embedding_host, deepseek_host, monkeypatch):
    """sam-desktop (default) + embedding + deepseek providers, each pointing at its fake host."""
    from providers.models import ProviderKind
    from tests.factories import make_provider

    monkeypatch.setenv("DEEPSEEK_API_KEY", deepseek_host.api_key)
    make_provider(slug="sam-desktop", name="Sam's desktop", base_url=sam_desktop.url, is_default=True)
    make_provider(slug="embedding", name="Embedding box", base_url=embedding_host.url)
    make_provider(slug="deepseek", name="DeepSeek", kind=ProviderKind.DEEPSEEK, base_url=deepseek_host.url,
                  api_key_env="DEEPSEEK_API_KEY")
    return {"sam-desktop": sam_desktop, "embedding": embedding_host, "deepseek": deepseek_host}


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def user_client(client, django_user_model):
    user = django_user_model.objects.create_user("alice", password="pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def asgi_server(transactional_db):
    """The app served by uvicorn on 127.0.0.1, as in production (ASGI, streams not buffered).
    pytest-django's live_server is WSGI, which would buffer every stream."""
    import uvicorn

    from boochat.asgi import application

    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                           loop="asyncio"))
    thread = threading.Thread(target=server.run, name="asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def gateway(asgi_server):
    """An HTTP client for the app served by uvicorn, for gateway requests the SDK cannot make."""
    import httpx

    with httpx.Client(base_url=asgi_server.url, timeout=10) as client:
        yield client


@pytest.fixture
def session_cookie(django_user_model):
    """Log a user in and return (user, cookies) for clients other than Django's test client."""
    from django.test import Client

    def login(username="alice"):
        user = django_user_model.objects.create_user(username)
        client = Client()
        client.force_login(user)
        return user, {"sessionid": client.cookies["sessionid"].value}

    return login


def _database_url() -> str:
    """The test database, as a DATABASE_URL for app processes started by tests."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory):
    """Static files collected as `make serve` does, for app processes started by tests."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    root = tmp_path_factory.mktemp("static")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
                   cwd=settings.BASE_DIR, env={**os.environ, "BOOCHAT_STATIC_ROOT": str(root)}, check=True)
    return root


def start_app_process(directory, static_root, workers=1, wait=True, port=None, **extra_env):
    """Start BooChat as production runs it (gunicorn + uvicorn workers, `make serve`) on the test
    database, on `port` or a free one; the process once it answers (with `wait=False` at once), its
    URL at `process.url`, its log (the access log included) at `process.log_path`, in `directory`."""
    import os
    import socket
    import subprocess
    import sys

    from django.conf import settings

    if port is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": _database_url(), "BOOCHAT_BIND": f"127.0.0.1:{port}",
           "BOOCHAT_ALLOWED_HOSTS": "127.0.0.1", "BOOCHAT_SECRET_KEY": settings.SECRET_KEY,
           "BOOCHAT_STATIC_ROOT": str(static_root), "BOOCHAT_WORKERS": str(workers), **extra_env}
    log_path = directory / f"app-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:boochat.gunicorn_conf", "boochat.asgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    process.log_path = log_path
    process.url = f"http://127.0.0.1:{port}"
    if wait:
        wait_for_app_process(process)
    return process


def wait_for_app_process(process):
    """Until the started process answers (it is killed if it does not within 30 s)."""
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{process.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
        if process.poll() is not None or time.monotonic() > deadline:
            exit_code, log = process.poll(), process.log_path.read_text()[-2000:]
            stop_app_process(process)
            pytest.fail(f"the app process did not start (exit code {exit_code}): {log}")


def stop_app_process(process):
    """Kill the process's master and workers at once (its own process group)."""
    import os
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(10)


@pytest.fixture
def app_process(transactional_db, collected_static, tmp_path):
    """`start(workers=1, **env)` starts BooChat as production runs it (start_app_process) and returns
    (base URL, process) once it answers (with `wait=False` at once), and the process's log is at
    `process.log_path`. Every process started is killed at the end."""
    started = []

    def start(workers=1, wait=True, **extra_env):
        process = start_app_process(tmp_path, collected_static, workers=workers, wait=wait, **extra_env)
        started.append(process)
        return process.url, process

    yield start
    for process in started:
        stop_app_process(process)
