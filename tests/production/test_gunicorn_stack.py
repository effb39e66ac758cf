"""The production stack itself: gunicorn with several uvicorn workers on the test database (with
PostgreSQL, Django's connection pool on, as by default), driven over HTTP as users and operators do."""

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.test import Client

from boochat.models import ChatSession, MessageState
from providers.models import Provider
from settings_app.models import Favorite
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(base, user):
    """An HTTP client with `user`'s session and a CSRF token, as a browser has after a page."""
    browser = Client()
    browser.force_login(user)
    client = httpx.Client(base_url=base, cookies={"sessionid": browser.cookies["sessionid"].value}, timeout=30)
    client.get("/settings/")
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    return client


def wait_until(condition, timeout=15.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def worker_pids(log_path):
    return {int(line.split("pid: ")[1].split(")")[0]) for line in log_path.read_text().splitlines()
            if "Booting worker with pid" in line}


def test_two_workers_serve_each_user_only_their_own_data(app_process, django_user_model):
    """The master syncs the providers (LLAMA_SWAP_URL) before it forks two workers: no connection it
    used may be shared by them. Two users read and write at once; every answer is the caller's."""
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        base, process = app_process(workers=2, LLAMA_SWAP_URL=host.url)
        assert Provider.objects.filter(slug="local").exists()  # the master's sync wrote through the database
        users = {name: django_user_model.objects.create_user(name) for name in ("alice", "bob")}
        for name, user in users.items():
            Favorite.objects.add(user=user, model_id=f"local/{name}-first")
        clients = {name: logged_in(base, user) for name, user in users.items()}

        def call(n):
            name = ("alice", "bob")[n % 2]
            client = clients[name]
            if n % 3 == 0:
                response = client.patch("/api/settings", json={"favorite_models_add": [f"local/{name}-{n}"]})
            else:
                response = client.get("/api/settings")
            return name, n, response.status_code, response.json()

        try:
            for round_ in range(3):
                with ThreadPoolExecutor(max_workers=30) as pool:
                    results = list(pool.map(call, range(round_ * 60, round_ * 60 + 60)))
                for name, n, status, payload in results:
                    assert status == 200, (name, n, payload)
                    favorites = payload["favorite_models"]
                    assert favorites and all(f.startswith(f"local/{name}-") for f in favorites), (name, payload)
                    if n % 3 == 0:
                        assert f"local/{name}-{n}" in favorites
        finally:
            for client in clients.values():
                client.close()
        assert len(worker_pids(process.log_path)) == 2
    for name, user in users.items():
        written = {f"local/{name}-{n}" for n in range(180) if n % 3 == 0 and ("alice", "bob")[n % 2] == name}
        assert set(Favorite.objects.ids_for(user)) == written | {f"local/{name}-first"}  # nothing lost


def provider_file(path, *slugs):
    path.write_text(json.dumps({"providers": [
        {"slug": slug, "name": slug, "kind": "llama_swap", "base_url": f"http://127.0.0.1:{9000 + i}",
         "default": i == 0} for i, slug in enumerate(slugs)
    ]}))


def test_hup_rereads_the_provider_file_and_a_bad_file_changes_nothing(app_process, tmp_path):
    path = tmp_path / "llama-providers.json"
    provider_file(path, "sam-desktop")
    base, process = app_process(LLAMA_PROVIDERS_PATH=str(path))
    assert set(Provider.objects.values_list("slug", flat=True)) == {"sam-desktop"}

    provider_file(path, "sam-desktop", "embedding")
    os.kill(process.pid, signal.SIGHUP)
    wait_until(lambda: Provider.objects.filter(slug="embedding").exists(), what="the HUP to add a provider")

    path.write_text('{"providers": [{"slug": "Bad/Slug", "kind": "llama_swap"}]}')
    before = list(Provider.objects.order_by("slug").values())
    pids_before = worker_pids(process.log_path)
    os.kill(process.pid, signal.SIGHUP)
    wait_until(lambda: "Provider sync failed" in process.log_path.read_text(), what="the bad file to be logged")
    wait_until(lambda: len(worker_pids(process.log_path) - pids_before) >= 1, what="new workers after the HUP")
    log = process.log_path.read_text()
    assert str(path) in log and "slug" in log
    assert process.poll() is None
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert list(Provider.objects.order_by("slug").values()) == before


def test_workers_exit_when_their_master_is_killed(app_process):
    base, process = app_process(workers=2)
    pids = worker_pids(process.log_path)
    assert len(pids) == 2
    os.kill(process.pid, signal.SIGKILL)
    process.wait(5)

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:  # a zombie no one reaps is gone too
            return stat.read().split(") ")[1].startswith("Z")

    wait_until(lambda: all(gone(pid) for pid in pids), timeout=20, what="the orphaned workers to exit")
    port = int(base.rsplit(":", 1)[1])
    with socket.socket() as sock:  # a restart can bind the port again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_a_graceful_stop_saves_an_answer_still_streaming_as_interrupted(app_process, django_user_model):
    from tests.factories import make_provider

    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["word "] * 2000, stream_delay=0.02) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        base, process = app_process(BOOCHAT_GRACEFUL_TIMEOUT="5")
        user = django_user_model.objects.create_user("alice")
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        client = logged_in(base, user)
        try:
            with client.stream("POST", f"/chat/{session.pk}/send", data={"content": "talk"},
                               headers={"X-BooChat-Stream": "1"}) as response:
                assert response.status_code == 200
                received = b""
                for chunk in response.iter_raw():
                    received += chunk
                    if received.count(b"word") >= 20:
                        os.kill(process.pid, signal.SIGTERM)
                        break
                process.wait(15)
        finally:
            client.close()
    answer = session.messages.get(role="assistant")
    assert answer.state == MessageState.INTERRUPTED, answer.error
    assert answer.content.startswith("word word") and answer.content.count("word") < 2000


def test_a_revoked_key_is_refused_by_every_worker_within_a_second(app_process):
    from django.utils import timezone

    from boochat.gateway.keys import create_key
    from boochat.models import GatewayKey

    row, key = create_key(name="agent")
    base, process = app_process(workers=2)

    def statuses(count):
        codes = []
        for _ in range(count):  # a new connection each: the workers take turns at accepting them
            with httpx.Client(base_url=base, timeout=10) as client:
                codes.append(client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code)
        return codes

    assert set(statuses(10)) == {200}  # both workers know the key now
    GatewayKey.objects.filter(pk=row.pk).update(revoked_at=timezone.now())  # as admin's action does
    time.sleep(1.5)
    assert set(statuses(10)) == {401}


def stream_until_stopped(process, base, user, stop, words=20):
    """Start a slow answer, let the browser read on whatever happens, call stop() once `words` words
    arrived, wait for the master to exit; the answer's row."""
    import threading

    session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
    client = logged_in(base, user)
    received = bytearray()
    enough = threading.Event()

    def read():
        try:
            with client.stream("POST", f"/chat/{session.pk}/send", data={"content": "talk"},
                               headers={"X-BooChat-Stream": "1"}) as response:
                for chunk in response.iter_raw():  # to the end, whatever ends it
                    received.extend(chunk)
                    if received.count(b"word") >= words:
                        enough.set()
        except httpx.HTTPError:
            pass
        finally:
            enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert enough.wait(30)
        stop()
        process.wait(30)
        reader.join(30)
    finally:
        client.close()
    return session.messages.get(role="assistant")


@pytest.fixture
def slow_host():
    from tests.factories import make_provider

    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["word "] * 2000, stream_delay=0.05) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        yield host


def wait_for_interrupted(answer):
    """No process runs now: no sweeper, no restart. The answer must already be saved."""
    wait_until(lambda: answer.refresh_from_db() or answer.state != MessageState.STREAMING, timeout=5,
               what="the answer to be saved")
    assert answer.state == MessageState.INTERRUPTED, (answer.state, answer.error)
    assert "stopped while this answer was streaming" in answer.error
    assert answer.content.startswith("word word") and 20 <= answer.content.count("word") < 2000


def test_a_graceful_stop_saves_answers_the_browser_still_reads_before_the_workers_exit(
        app_process, django_user_model, slow_host):
    """The browser reads on while the master stops (SIGTERM): the stream is cut at the graceful
    timeout, and its answer is saved interrupted, with what arrived, before the workers exit."""
    base, process = app_process(workers=2, BOOCHAT_GRACEFUL_TIMEOUT="5")
    user = django_user_model.objects.create_user("alice")
    answer = stream_until_stopped(process, base, user, lambda: os.kill(process.pid, signal.SIGTERM))
    wait_for_interrupted(answer)


def test_workers_save_their_streaming_answers_when_their_master_is_killed(
        app_process, django_user_model, slow_host):
    """SIGKILL to the master only: its workers notice, stop gracefully, and save what they stream."""
    base, process = app_process(workers=2, BOOCHAT_GRACEFUL_TIMEOUT="5")
    user = django_user_model.objects.create_user("alice")
    pids = worker_pids(process.log_path)
    answer = stream_until_stopped(process, base, user, lambda: os.kill(process.pid, signal.SIGKILL))
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}/status") and "zombie" not in
                               open(f"/proc/{pid}/status").read() for pid in pids),
               timeout=20, what="the orphaned workers to exit")
    wait_for_interrupted(answer)


def test_the_next_start_marks_the_answers_of_a_killed_service_at_once(app_process, django_user_model, slow_host):
    """SIGKILL to the master and its workers at once (nothing can save): the next start marks the
    answer interrupted right away, not once it has been quiet for the provider's read timeout."""
    base, process = app_process(workers=2)
    user = django_user_model.objects.create_user("alice")
    # 100 words take 5 s: the worker has listed its answer (each second) by then.
    answer = stream_until_stopped(process, base, user, lambda: os.killpg(process.pid, signal.SIGKILL), words=100)
    assert answer.state == MessageState.STREAMING  # as the killed workers left it
    app_process()  # the restart, with the default grace and read timeout
    wait_until(lambda: answer.refresh_from_db() or answer.state != MessageState.STREAMING, timeout=20,
               what="the restart to mark the answer")
    assert answer.state == MessageState.INTERRUPTED
    assert "stopped while this answer was streaming" in answer.error
    assert answer.content.startswith("word word")  # what the autosave kept
