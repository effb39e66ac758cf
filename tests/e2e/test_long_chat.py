import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_show_earlier_turns_puts_them_above_without_leaving_the_page(asgi_page, asgi_server, settings):
    settings.BOOCHAT_CHAT_PAGE_TURNS = 5
    page = asgi_page
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b",
                                             title="long")
        parent = None
        for turn in range(12):
            parent = Message.objects.create(session=session, parent=parent, role="user", content=f"question {turn}")
            parent = Message.objects.create(session=session, parent=parent, role="assistant", content=f"answer {turn}",
                                            state=MessageState.COMPLETE, model_id="sam-desktop/qwen3-8b")
        url = f"{asgi_server.url}{session.get_absolute_url()}"
        page.goto(url)
        questions = page.locator("#messages article.message.user .content")
        expect(questions).to_have_count(5)
        expect(questions.first).to_have_text("question 7")

        page.get_by_role("link", name="Show earlier turns").click()
        expect(questions).to_have_count(10)
        expect(questions.first).to_have_text("question 2")
        expect(questions.nth(5)).to_have_text("question 7")  # the earlier turns went above the others
        assert page.url == url  # swapped in, not a new page

        page.get_by_role("link", name="Show earlier turns").click()
        expect(questions).to_have_count(12)
        expect(questions.first).to_have_text("question 0")
        expect(page.get_by_role("link", name="Show earlier turns")).to_have_count(0)
        expect(page.locator("#messages article.message.assistant").last).to_contain_text("answer 11")
