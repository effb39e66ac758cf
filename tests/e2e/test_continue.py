"""Continue in Chromium: a stopped answer goes on where it stopped, in the same answer."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession, Message
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_continue_a_stopped_answer(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap([FakeModel("qwen3-8b", loaded=True)], reply=[" pull", " on the seas."]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b",
                                          title="Tides")
        add_message(session=chat, role="user", content="Why tides?")
        answer = add_message(session=chat, role="assistant", content="The Moon's", state="interrupted",
                             error="Stopped before the answer was complete.", model_id="sam-desktop/qwen3-8b",
                             provider="sam-desktop", wire_model="qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        page.get_by_role("button", name="Continue").click()
        saved = page.locator(f"#message-{answer.pk} .markdown")
        expect(saved).to_have_text("The Moon's pull on the seas.", timeout=5000)
        expect(page.locator("article.message.assistant")).to_have_count(1)
        expect(page.get_by_role("button", name="Continue")).to_have_count(0)
    assert Message.objects.get(pk=answer.pk).state == "complete"
