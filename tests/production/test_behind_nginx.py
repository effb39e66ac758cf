"""Two BooChat instances behind nginx, configured with docs/deploy/nginx.conf as the README says: a
user logs in, browses, streams a chat and uses the gateway through the proxy."""

import os
import shutil
import socket
import subprocess
import time

import httpx
import openai
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from boochat.gateway.keys import create_key
from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nginx(directory, *upstreams):
    """nginx with the documented server block in front of the given instances (round robin, as
    docs/deploy/nginx.conf has it), its files in `directory`; the process once it answers, its URL
    at `process.url`."""
    port = free_port()
    example = (settings.BASE_DIR / "docs" / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"server {u.removeprefix('http://')};\n    " for u in upstreams)
    example = (example.replace("server 127.0.0.1:8001;\n    server 127.0.0.1:8002;\n    ", servers)
               .replace("listen 80;", f"listen 127.0.0.1:{port};"))
    (directory / "boochat.conf").write_text(example)
    # Started as root, nginx's workers would become `nobody`, who cannot reach the test's files.
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(f"""
        {user} daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;
        events {{}}
        http {{
            access_log off;
            client_body_temp_path {directory}/body; proxy_temp_path {directory}/proxy;
            fastcgi_temp_path {directory}/fastcgi; uwsgi_temp_path {directory}/uwsgi; scgi_temp_path {directory}/scgi;
            include {directory}/boochat.conf;
        }}""")
    process = subprocess.Popen([NGINX, "-c", str(directory / "nginx.conf"), "-p", str(directory)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"{process.url}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            process.wait(10)
            error_log = directory / "error.log"
            pytest.fail(f"nginx did not start: {error_log.read_text() if error_log.exists() else ''}")
        time.sleep(0.1)


def stop_nginx(process):
    process.terminate()
    process.wait(10)


@pytest.fixture
def nginx(tmp_path):
    """`start(*upstreams)`: nginx in front of the given instances (start_nginx); returns its URL."""
    started = []

    def start(*upstreams):
        started.append(start_nginx(tmp_path, *upstreams))
        return started[-1].url

    yield start
    for process in started:
        stop_nginx(process)


def test_two_instances_behind_nginx(app_process, nginx):
    with FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=2_000_000)], reply=[f"w{i} " for i in range(40)],
                       stream_delay=0.05) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        first, second = app_process()[0], app_process()[0]
        url = nginx(first, second)
        # Hashed as the app processes hash (the suite's own hasher is a fast one they do not know).
        get_user_model().objects.create(username="alice", password=PBKDF2PasswordHasher().encode(
            "correct horse battery staple", "pepper-and-salt"))

        with httpx.Client(base_url=url, timeout=30) as browser:
            browser.get("/accounts/login/")
            login = browser.post("/accounts/login/", data={
                "username": "alice", "password": "correct horse battery staple",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
            assert login.status_code == 302, login.text[:500]  # the CSRF check passed through the proxy
            for _ in range(4):  # the instances take turns: the session holds on both
                assert browser.get("/settings/").status_code == 200
            browser.headers["X-CSRFToken"] = browser.cookies["csrftoken"]
            assert browser.post("/favorites/toggle", data={"star": "sam-desktop/qwen3-8b"}).status_code == 302

            chat = ChatSession.objects.create(user=get_user_model().objects.get(username="alice"),
                                              model_id="sam-desktop/qwen3-8b", title="t")
            started = time.monotonic()
            with browser.stream("POST", f"/chat/{chat.pk}/send", data={"content": "count"},
                                headers={"X-BooChat-Stream": "1"}) as response:
                assert response.status_code == 200
                chunks = [(time.monotonic() - started, chunk) for chunk in response.iter_raw()]
            assert chunks[0][0] < chunks[-1][0] - 1.0  # the first words came long before the last: not buffered
            assert b"[DONE]" in b"".join(chunk for _, chunk in chunks)

        key = create_key(name="agent")[1]
        with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30) as sdk:
            stream = sdk.chat.completions.create(model="sam-desktop/qwen3-8b", stream=True,
                                                 messages=[{"role": "user", "content": "x" * 2_000_000}])
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            assert text.startswith("w0 w1")  # a 2 MB body: past nginx's default limit, within ours

    answer = Message.objects.get(session=chat, role="assistant")
    assert answer.state == MessageState.COMPLETE
