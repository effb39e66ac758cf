"""BooChat as production runs it (gunicorn + uvicorn worker processes) on the test database: two
processes share it without losing writes, and one killed mid-answer leaves its partial answer."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from django.test import Client

from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_killing_the_app_mid_answer_keeps_the_partial_answer(app_process, django_user_model):
    base, process = app_process()
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["word "] * 300, stream_delay=0.05) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True, read_timeout=1)
        user = django_user_model.objects.create_user("alice")
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        browser = Client()
        browser.force_login(user)
        cookies = {"sessionid": browser.cookies["sessionid"].value}
        with httpx.Client(base_url=base, cookies=cookies, timeout=10) as client:
            token = client.get(session.get_absolute_url()).cookies.get("csrftoken") or client.cookies.get("csrftoken")
            with client.stream("POST", f"/chat/{session.pk}/send", data={"content": "talk"},
                               headers={"X-BooChat-Stream": "1", "X-CSRFToken": token}) as response:
                assert response.status_code == 200
                received = b""
                for chunk in response.iter_raw():
                    received += chunk
                    if received.count(b"word") >= 60:  # 3 s of answer: at least one partial save happened
                        # Killed before the loop ends: leaving iter_raw() closes the connection, and
                        # an app that saw that first would save the answer as interrupted itself.
                        os.killpg(process.pid, signal.SIGKILL)  # master and worker, no chance to clean up
                        process.wait(10)
                        break
        assert process.poll() is not None, f"the answer ended before the kill: {received[-300:]!r}"
        assert host.wait_for_disconnect(timeout=2.0)

    answer = session.messages.get(role="assistant")
    assert answer.state == MessageState.STREAMING  # as the dead process left it
    # Another app process (a restart) sweeps it once it is past the provider's read timeout plus
    # the grace, though nobody opens its page.
    app_process(BOOCHAT_STALE_STREAM_GRACE="1")
    deadline = time.monotonic() + 15
    while answer.state == MessageState.STREAMING and time.monotonic() < deadline:
        time.sleep(0.2)
        answer.refresh_from_db()
    assert answer.state == MessageState.INTERRUPTED
    assert answer.content.startswith("word word word") and answer.content.count("word") < 300
    assert "stopped while this answer was streaming" in answer.error
    assert Message.objects.filter(session=session, role="user").get().content == "talk"


def test_two_app_processes_on_one_database_lose_nothing(app_process, django_user_model, hosts):
    """Several clients spread over two app processes star models and chat at once."""
    from concurrent.futures import ThreadPoolExecutor

    from settings_app.models import Favorite

    bases = [app_process()[0], app_process()[0]]
    user = django_user_model.objects.create_user("tabs")
    sessions = [ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title=f"s{i}") for i in range(6)]
    browser = Client()
    browser.force_login(user)
    cookies = {"sessionid": browser.cookies["sessionid"].value}

    def client_for(n):
        client = httpx.Client(base_url=bases[n % 2], cookies=cookies, timeout=30)
        token = client.get("/settings/").cookies.get("csrftoken") or client.cookies.get("csrftoken")
        client.headers["X-CSRFToken"] = token
        return client

    def star(n):
        client = client_for(n)
        try:
            return client.post("/favorites/toggle", data={"model_id": f"sam-desktop/model-{n}"},
                               headers={"HX-Request": "true"}).status_code
        finally:
            client.close()

    def chat(n):
        client = client_for(n)
        try:
            return client.post(f"/chat/{sessions[n].pk}/send", data={"content": f"question {n}"}).status_code
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        starred = pool.map(star, range(40))
        chatted = pool.map(chat, range(6))
        assert list(starred) == [200] * 40
        assert list(chatted) == [302] * 6

    assert set(Favorite.objects.ids_for(user)) == {f"sam-desktop/model-{n}" for n in range(40)}
    for session in sessions:
        roles = list(session.messages.values_list("role", "state"))
        assert roles == [("user", "complete"), ("assistant", "complete")]


def test_a_worker_takes_what_it_loaded_out_of_the_garbage_collectors_work():
    # gunicorn calls post_worker_init once the worker has loaded the app (boochat.gunicorn_conf).

    from django.conf import settings

    script = ("import gc, json; import boochat.asgi; from boochat import gunicorn_conf; "
              "gunicorn_conf.post_worker_init(None); print(json.dumps([gc.get_freeze_count(), gc.get_threshold()]), flush=True); "
              "import os; os._exit(0)")  # not waiting for the caches it starts to warm
    env = {**os.environ, "BOOCHAT_ALLOWED_HOSTS": "127.0.0.1", "BOOCHAT_SECRET_KEY": settings.SECRET_KEY}
    out = subprocess.run([sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True,
                         text=True, check=True).stdout
    frozen, threshold = json.loads(out)
    assert frozen > 20_000  # Django, the app and their modules: never garbage while the worker runs
    assert threshold == [10_000, 10, 1]


def test_a_new_worker_reads_the_model_lists_before_anyone_asks(app_process):
    # Else the first chat sends of a burst wait on the host for the context size (boochat.gunicorn_conf).
    with FakeLlamaSwap([FakeModel("qwen3-8b", loaded=True)]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        app_process()  # only /healthz is asked
        deadline = time.monotonic() + 10
        while not host.requests_to("/v1/models") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.requests_to("/v1/models")
