"""An answer outlives its page: a reload resumes it with nothing lost or repeated, a closed page finds
it complete, another browser sees it live and can stop it."""

import re
import time

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap

pytestmark = pytest.mark.django_db(transaction=True)
WORDS = [f"w{i} " for i in range(400)]
FULL = "".join(WORDS)


def streamed_requests(host):
    return [r for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]


def start_long_answer(page, base_url, host):
    make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
    session = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b", title="Counting")
    page.goto(f"{base_url}{session.get_absolute_url()}")
    page.get_by_label("Message").fill("Count slowly")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.message.assistant").last).to_contain_text("w10 ", timeout=10000)
    return session


def test_a_reload_mid_answer_continues_it_without_a_gap_or_a_repeat(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap(reply=WORDS, stream_delay=0.02) as host:
        start_long_answer(page, asgi_server.url, host)
        page.reload()
        streaming = page.locator("article.message.assistant .streaming-text")
        expect(streaming).to_contain_text("w0 w1 w2", timeout=10000)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = page.evaluate("(document.querySelector('article.message.assistant .streaming-text') || {}).textContent")
            if text is None:  # the saved answer took the streamed one's place
                break
            seen.append(text)
        expect(page.locator("article.message.assistant .markdown")).to_have_text(FULL.strip(), timeout=30000)
        assert len(streamed_requests(host)) == 1
    assert seen and all(FULL.startswith(text) for text in seen), "text lost or repeated after the reload"
    assert len(seen[-1]) > len(seen[0])  # it went on live after the reload
    assert Message.objects.get(role="assistant").content == FULL


def test_a_page_closed_mid_answer_finds_it_complete_when_opened_again(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap(reply=WORDS[:150], stream_delay=0.02) as host:
        session = start_long_answer(page, asgi_server.url, host)
        context = page.context
        page.close()
        deadline = time.monotonic() + 30
        while Message.objects.get(role="assistant").state == MessageState.STREAMING and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not host.disconnects
        again = context.new_page()
        again.goto(f"{asgi_server.url}{session.get_absolute_url()}")
        expect(again.locator("article.message.assistant .markdown")).to_have_text("".join(WORDS[:150]).strip())
        expect(again.locator("article.message.assistant")).not_to_contain_text(re.compile("stopped|interrupted", re.I))


def test_another_browser_sees_the_answer_live_and_its_stop_stops_the_host(asgi_page, asgi_server, browser):
    page = asgi_page
    with FakeLlamaSwap(reply=WORDS * 3, stream_delay=0.02) as host:
        session = start_long_answer(page, asgi_server.url, host)
        phone = browser.new_context()
        other = phone.new_page()
        other.goto(f"{asgi_server.url}/accounts/login/")
        other.get_by_label("Username").fill("alice")
        other.get_by_label("Password").fill("correct horse battery staple")
        other.get_by_role("button", name="Log in").click()
        other.wait_for_url(f"{asgi_server.url}/")
        other.goto(f"{asgi_server.url}{session.get_absolute_url()}")
        expect(other.get_by_role("link", name="Counting")).to_be_visible()
        live = other.locator("article.message.assistant .streaming-text")
        expect(live).to_contain_text("w0 w1 w2")
        before = len(live.inner_text())
        expect(live).not_to_have_text(live.inner_text(), timeout=5000)  # it grows as the host writes
        assert len(live.inner_text()) > before
        other.get_by_role("button", name="Stop").click()
        assert host.wait_for_disconnect(5.0), "Stop from the other browser did not stop the host"
        expect(page.locator("article.message.assistant").last).to_contain_text("Stopped before the answer was complete", timeout=10000)
        expect(other.locator("article.message.assistant").last).to_contain_text("Stopped before the answer was complete", timeout=10000)
        phone.close()
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.INTERRUPTED and 0 < len(answer.content) < len(FULL) * 3
