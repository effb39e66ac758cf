"""A chat waiting on a slow host (a model loading, say) must not hold up anyone else's requests."""

import threading
import time

import httpx
import pytest

from boochat.models import ChatSession
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap

pytestmark = pytest.mark.django_db(transaction=True)


def test_other_requests_are_served_while_a_chat_waits_for_its_host(asgi_server, session_cookie):
    user, cookies = session_cookie()
    with FakeLlamaSwap() as host:
        host.hang = True  # accepts the chat request and sends nothing back, like a host loading a model
        make_provider(slug="slow", base_url=host.url, is_default=True, read_timeout=6)
        session = ChatSession.objects.create(user=user, model_id="slow/qwen3-8b", title="t")
        with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=20) as client:
            token = client.get("/settings/").cookies.get("csrftoken") or client.cookies.get("csrftoken")
            waiting = threading.Thread(target=client.post, args=(f"/chat/{session.pk}/send",),
                                       kwargs={"data": {"content": "hi"}, "headers": {"X-CSRFToken": token}})
            waiting.start()
            deadline = time.monotonic() + 5
            while not host.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert host.requests, "the chat never reached the host"
            started = time.monotonic()
            assert client.get("/settings/").status_code == 200  # full middleware stack, a database read
            served_in = time.monotonic() - started
            waiting.join(15)
    # Not a speed target: the other request must not wait for the host's 6 s timeout.
    assert served_in < 3
