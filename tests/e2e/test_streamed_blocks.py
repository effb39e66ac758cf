"""A streaming answer shows its finished blocks rendered before it ends, and the saved answer swapped
in at the end moves none of them."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession, Message
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap

pytestmark = pytest.mark.django_db(transaction=True)
ANSWER = ("Costs 📈, by step:\n\n| step | cost |\n|---|--:|\n| parse | 1 |\n| render | 2 |\n\n"
          "```python\ndef total(costs):\n    return sum(costs)\n```\n\n"
          + "".join(f"Paragraph {i} goes on for a while, so that the answer is long. " * 3 + "\n\n" for i in range(60)))
PIECES = [ANSWER[i:i + 4] for i in range(0, len(ANSWER), 4)]


def wait_for_paragraphs(page, n):
    """Until the streaming answer shows `n` paragraphs rendered (it is still streaming then)."""
    page.wait_for_function("n => document.querySelectorAll('article.state-streaming .content > p').length >= n", arg=n,
                           timeout=30000)


def top(locator):
    return locator.evaluate("node => node.getBoundingClientRect().top")


@pytest.mark.parametrize("viewport", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}], ids=["desktop", "phone"])
def test_blocks_show_rendered_while_streaming_and_stay_put_when_the_answer_is_saved(asgi_page, asgi_server, viewport):
    page = asgi_page
    page.set_viewport_size(viewport)
    with FakeLlamaSwap(reply=PIECES, stream_delay=0.01) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b", title="Costs")
        page.goto(f"{asgi_server.url}{session.get_absolute_url()}")
        page.get_by_label("Message").fill("What does it cost?")
        page.get_by_role("button", name="Send").click()

        answer = page.locator("article.message.assistant").last
        table = answer.get_by_role("region", name="Table").locator("table")
        code = answer.locator(".code-block")
        expect(table).to_be_visible(timeout=10000)
        expect(code.get_by_role("button", name="Copy python code")).to_be_visible()
        expect(answer).to_have_class(r"message assistant state-streaming")  # rendered before the answer ended
        assert "| step |" not in answer.inner_text() and "```" not in answer.inner_text()

        # The page follows the answer past the table; the reader scrolls back to it (which stops the
        # following) and reads there while the rest streams.
        wait_for_paragraphs(page, 13)
        # Only the paragraph being written is text (the emoji above counts two in JavaScript's strings).
        tail = page.evaluate("document.querySelector('article.state-streaming .streaming-text').textContent")
        assert "Paragraph".startswith(tail[:9]), tail
        assert top(table) < 0
        while top(table) < 100:  # scrolled by the page, wherever the pointer is (a phone's dock may be under it)
            page.evaluate("window.scrollBy(0, -200)")
        wait_for_paragraphs(page, 20)
        streaming, *before = page.evaluate("""() => {
            const answer = document.querySelector('article.message.assistant:last-child');
            return [answer.matches('.state-streaming'), ...['table', '.code-block'].map(
                selector => answer.querySelector(selector).getBoundingClientRect().top)];
        }""")
        assert streaming and 0 < before[0] < page.viewport_size["height"]
        expect(answer.locator(".streaming-text")).to_have_count(0, timeout=60000)
        expect(page.locator("article.message.assistant").last).to_have_class("message assistant state-complete")
        saved = page.locator("article.message.assistant").last
        assert [top(saved.locator("table")), top(saved.locator(".code-block"))] == before
    assert Message.objects.get(role="assistant").content == ANSWER


def test_a_page_opened_mid_answer_shows_the_blocks_finished_so_far_rendered(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap(reply=PIECES[:500], stream_delay=0.02) as host:  # ~10 s
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b", title="Costs")
        page.goto(f"{asgi_server.url}{session.get_absolute_url()}")
        page.get_by_label("Message").fill("What does it cost?")
        page.get_by_role("button", name="Send").click()
        wait_for_paragraphs(page, 3)
        page.reload()
        answer = page.locator("article.message.assistant").last
        expect(answer.locator(".streaming-text")).to_contain_text("Paragraph", timeout=10000)
        expect(answer).to_have_class("message assistant state-streaming")
        expect(answer.get_by_role("region", name="Table").locator("td", has_text="render")).to_be_visible()
        expect(answer.locator(".code-block .code-lang")).to_have_text("python")
        expect(answer.locator(".content > p").first).to_have_text("Costs 📈, by step:")  # rendered, not text
        expect(answer.locator(".streaming-text")).to_have_count(0, timeout=30000)
