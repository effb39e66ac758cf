"""Stop (or a closed tab) before the host's first byte: the answer is saved as stopped at once."""

import time

import httpx
import pytest
from django.urls import reverse

from boochat.chat.turns import STOPPED_BEFORE_START
from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_leaving_before_the_first_byte_saves_the_answer_as_stopped_at_once(asgi_server, session_cookie):
    user, cookies = session_cookie()
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        host.first_byte_delay = 30  # a model swap
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True, read_timeout=600)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=httpx.Timeout(10, read=1.0)) as client:
            client.get(session.get_absolute_url())
            with pytest.raises(httpx.ReadTimeout):  # the browser gives up: its connection closes
                client.post(reverse("chat_send", args=[session.pk]), data={"content": "hello"},
                            headers={"X-BooChat-Stream": "1", "X-CSRFToken": client.cookies["csrftoken"]})
        left = time.monotonic()
        assert host.wait_for_disconnect(2.0), "the host was still asked after the browser left"
        answer = Message.objects.get(role="assistant")
        while answer.state == MessageState.STREAMING and time.monotonic() - left < 3:
            time.sleep(0.05)
            answer.refresh_from_db()
    assert answer.state == MessageState.INTERRUPTED and answer.error == STOPPED_BEFORE_START
