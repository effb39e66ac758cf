"""Outages of what BooChat stands on, in a started app process: Redis (a throwaway redis-server, killed
mid-run) and PostgreSQL (a port where nothing listens; the app's pooled connections cut by the server).
/healthz names what is down with a 503, and requests get a 503 that names it, never a 500 or a hang."""

import shutil
import signal
import socket
import subprocess

import httpx
import pytest
from django.db import connection

from boochat.gateway.keys import create_key
from tests.conftest import _database_url
from tests.production.test_gunicorn_stack import logged_in, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def throwaway_redis(tmp_path):
    """A redis-server of this test's own (the machine's shared one is never stopped)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(answers, what="the throwaway redis-server")
    process.url = f"redis://127.0.0.1:{port}/0"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_with_redis_down_healthz_pages_apis_and_the_gateway_say_so_with_503(app_process, throwaway_redis,
                                                                               django_user_model):
    base, _ = app_process(REDIS_URL=throwaway_redis.url)
    user = django_user_model.objects.create_user("alice", password="pw-for-tests-only")
    client = logged_in(base, user)
    _, key = create_key(name="agent")
    try:
        assert client.get("/").status_code == 200
        assert httpx.get(f"{base}/healthz", timeout=10).text == "ok"

        throwaway_redis.send_signal(signal.SIGKILL)
        throwaway_redis.wait(10)

        health = httpx.get(f"{base}/healthz", timeout=30)
        assert health.status_code == 503
        assert "cache: unavailable" in health.text and "database: ok" in health.text

        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        assert "cannot reach its cache (Redis)" in page.text

        api = client.get("/api/settings")
        assert api.status_code == 503
        assert api.json()["unavailable"] == "cache" and "Redis" in api.json()["error"]

        with httpx.Client(base_url=base, timeout=30) as anonymous:
            assert anonymous.get("/accounts/login/").status_code == 200  # no session yet: nothing to look up
            login = anonymous.post("/accounts/login/", data={
                "username": "alice", "password": "pw-for-tests-only",
                "csrfmiddlewaretoken": anonymous.cookies["csrftoken"]})  # failed logins are counted in Redis
            assert login.status_code == 503 and "Redis" in login.text

        models = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert models.status_code == 503
        assert models.json()["error"]["code"] == "cache_unavailable"
    finally:
        client.close()


def test_with_the_database_down_healthz_and_requests_answer_503_naming_it(app_process):
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/boochat"  # nothing listens there
    base, process = app_process(wait=False, DATABASE_URL=dead)

    def health():
        try:
            return httpx.get(f"{base}/healthz", timeout=60)
        except httpx.TransportError:
            assert process.poll() is None, process.log_path.read_text()[-2000:]
            return None

    wait_until(lambda: health() is not None, timeout=60, what="the app to answer")
    response = health()
    assert response.status_code == 503
    assert "database: unavailable" in response.text and "cache: ok" in response.text

    cookies = {"sessionid": "x" * 32}  # a session to look up: the database is asked
    page = httpx.get(f"{base}/", cookies=cookies, headers={"Accept": "text/html"}, timeout=60)
    assert page.status_code == 503 and "cannot reach its database" in page.text
    api = httpx.get(f"{base}/api/settings", cookies=cookies, timeout=60)
    assert api.status_code == 503 and api.json()["unavailable"] == "database"


def test_pooled_connections_cut_by_the_database_are_replaced_not_served(app_process, django_user_model):
    """As after a PostgreSQL restart: every connection the app holds is closed by the server."""
    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is PostgreSQL's (run with DATABASE_URL=postgres://...)")
    # The app's connections are named, so that only they are cut, not those of this test process.
    base, _ = app_process(DATABASE_URL=f"{_database_url()}?application_name=boochat-under-test")
    user = django_user_model.objects.create_user("alice")
    client = logged_in(base, user)
    try:
        for _ in range(5):
            assert client.get("/api/settings").status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND application_name = 'boochat-under-test'")
            assert cursor.fetchall()  # the app's pooled connections
        statuses = [client.get("/api/settings").status_code for _ in range(10)]
        assert statuses == [200] * 10
    finally:
        client.close()
