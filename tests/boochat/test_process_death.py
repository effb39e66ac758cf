"""An app process killed mid-answer: the session stays readable and the partial answer is kept,
marked interrupted. The app runs as in production (gunicorn + uvicorn worker) on the test database."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_process():
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "BOOCHAT_BIND": f"127.0.0.1:{port}",
           "BOOCHAT_ALLOWED_HOSTS": "127.0.0.1", "BOOCHAT_SECRET_KEY": settings.SECRET_KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:boochat.gunicorn_conf", "boochat.asgi:application"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_killing_the_app_mid_answer_keeps_the_partial_answer(app_process, django_user_model, settings):
    base, process = app_process
    settings.BOOCHAT_STALE_STREAM_GRACE = 1
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
                        break
                os.killpg(process.pid, signal.SIGKILL)  # master and worker, no chance to clean up
                process.wait(10)
        assert host.wait_for_disconnect(timeout=2.0)

    answer = session.messages.get(role="assistant")
    assert answer.state == MessageState.STREAMING  # as the dead process left it
    time.sleep(2.5)  # past the provider's read timeout plus the grace
    page = browser.get(session.get_absolute_url())
    assert page.status_code == 200
    answer.refresh_from_db()
    assert answer.state == MessageState.INTERRUPTED
    assert answer.content.startswith("word word word") and answer.content.count("word") < 300
    assert "stopped while this answer was streaming" in answer.error
    assert Message.objects.filter(session=session, role="user").get().content == "talk"
