"""Stop, from any client, before or during the host's answer; and a browser that leaves, which stops nothing."""

import threading
import time
from contextlib import closing

import httpx
import pytest
from django.urls import reverse

from boochat.autosave import STOPPED_BY_USER
from boochat.chat.turns import STOPPED_BEFORE_START
from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def answer_state():
    answer = Message.objects.filter(role="assistant").first()
    return answer.state if answer else None


def client_for(asgi_server, cookies, session):
    client = httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10)
    client.get(session.get_absolute_url())
    client.headers.update({"X-BooChat-Stream": "1", "X-CSRFToken": client.cookies["csrftoken"]})
    return client


def test_leaving_before_the_first_byte_lets_the_answer_come(asgi_server, session_cookie):
    user, cookies = session_cookie()
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        host.first_byte_delay = 1.5  # a model swap
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True, read_timeout=600)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        with closing(client_for(asgi_server, cookies, session)) as client:
            with pytest.raises(httpx.ReadTimeout):  # the browser gives up: its connection closes
                client.post(reverse("chat_send", args=[session.pk]), data={"content": "hello"},
                            timeout=httpx.Timeout(10, read=0.3))
        assert wait_until(lambda: answer_state() not in (None, MessageState.STREAMING))
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.COMPLETE and answer.content and not host.disconnects


def test_stop_before_the_first_byte_saves_the_answer_as_stopped_at_once(asgi_server, session_cookie):
    user, cookies = session_cookie()
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        host.first_byte_delay = 30  # a model swap
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True, read_timeout=600)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        sender = client_for(asgi_server, cookies, session)
        sending = threading.Thread(target=lambda: sender.post(reverse("chat_send", args=[session.pk]),
                                                              data={"content": "hello"}), daemon=True)
        sending.start()
        assert wait_until(lambda: host.requests_to("/v1/chat/completions"))
        with closing(client_for(asgi_server, cookies, session)) as other_tab:
            assert other_tab.post(reverse("chat_stop", args=[session.pk])).status_code == 204
        assert host.wait_for_disconnect(5.0), "the host was still asked after Stop"
        assert wait_until(lambda: answer_state() == MessageState.INTERRUPTED)
        sending.join(10)
        sender.close()
    answer = Message.objects.get(role="assistant")
    assert answer.error == STOPPED_BEFORE_START


def test_stop_from_another_client_mid_answer_stops_the_host_and_keeps_what_arrived(asgi_server, session_cookie):
    user, cookies = session_cookie()
    with FakeLlamaSwap(reply=["word "] * 2000, stream_delay=0.01) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        with closing(client_for(asgi_server, cookies, session)) as sender, closing(client_for(asgi_server, cookies, session)) as phone:
            with sender.stream("POST", reverse("chat_send", args=[session.pk]), data={"content": "talk"}) as response:
                chunks = response.iter_raw()
                received = next(chunks)
                while received.count(b"word") < 5:
                    received += next(chunks)
                assert phone.post(reverse("chat_stop", args=[session.pk])).status_code == 204
                received += b"".join(chunks)  # the sender's stream ends, with the end event
            assert host.wait_for_disconnect(5.0)
    assert b'event: end\ndata: {"state":"interrupted"' in received
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.INTERRUPTED and answer.error == STOPPED_BY_USER
    assert answer.content.startswith("word word word word word") and answer.content.count("word") < 2000


def test_stop_is_refused_for_another_users_chat(asgi_server, session_cookie, client, django_user_model):
    owner = django_user_model.objects.create_user("owner")
    session = ChatSession.objects.create(user=owner, model_id="sam-desktop/qwen3-8b", title="t")
    client.force_login(django_user_model.objects.create_user("mallory"))
    response = client.post(reverse("chat_stop", args=[session.pk]))
    assert response.status_code == 404 and response.content == b"No such chat."


def test_an_answer_past_the_answer_timeout_is_stopped_and_says_why(asgi_server, session_cookie, settings):
    settings.BOOCHAT_ANSWER_TIMEOUT = 1
    user, cookies = session_cookie()
    with FakeLlamaSwap(reply=["word "] * 2000, stream_delay=0.01) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        with closing(client_for(asgi_server, cookies, session)) as sender:
            body = sender.post(reverse("chat_send", args=[session.pk]), data={"content": "talk"}).content
        assert host.wait_for_disconnect(5.0)
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.INTERRUPTED and "BOOCHAT_ANSWER_TIMEOUT" in answer.error
    assert 0 < answer.content.count("word") < 2000
    assert b'"type":"answer_timeout"' in body and b'event: end\ndata: {"state":"interrupted"' in body
