"""Bounds on what one chat asks of a host and keeps: the answer's size, the title's wait, one title."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.urls import reverse

from boochat.models import ChatSession, Message, MessageState
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web(asgi_server, session_cookie):
    user, cookies = session_cookie()
    client = httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=30)
    client.get("/chat/")
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    yield user, client
    client.close()


def test_an_answer_past_the_limit_is_cut_stored_bounded_and_the_host_stopped(web, settings):
    settings.BOOCHAT_MAX_ANSWER_BYTES = 100_000
    user, client = web
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["x" * 1000] * 2000, stream_delay=0.001) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        response = client.post(reverse("chat_send", args=[session.pk]), data={"content": "go on"},
                               headers={"X-BooChat-Stream": "1"})
        assert response.status_code == 200
        assert len(response.content) < 110_000
        assert b'"type":"answer_too_long"' in response.content and b"[DONE]" not in response.content
        assert host.wait_for_disconnect(2.0)
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.INTERRUPTED and answer.error.startswith("Truncated")
    assert 50_000 < len(answer.content) <= 100_000


def test_a_title_waits_for_a_hung_host_only_the_task_timeout(web, settings):
    settings.BOOCHAT_TASK_TIMEOUT = 1
    user, client = web
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True, read_timeout=600)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b")
        add_message(session=session, role="user", content="How do tides work near the poles?")
        host.hang = True
        started = time.monotonic()
        response = client.post(reverse("chat_title", args=[session.pk]), headers={"HX-Request": "true"})
        took = time.monotonic() - started
    assert response.status_code == 200 and took < 5
    session.refresh_from_db()
    assert session.title == "How do tides work near the poles?"  # the question's first words


def test_a_title_is_asked_of_the_host_once_when_two_requests_want_it(web):
    user, client = web
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["Tides"]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b")
        add_message(session=session, role="user", content="How do tides work?")
        host.first_byte_delay = 0.5
        url = reverse("chat_title", args=[session.pk])
        gate = threading.Barrier(4)

        def ask(_):
            gate.wait()
            return client.post(url, headers={"HX-Request": "true"}).status_code

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(ask, range(4))) == [200] * 4
        assert len(host.requests_to("/v1/chat/completions")) == 1
    session.refresh_from_db()
    assert session.title == "Tides"
