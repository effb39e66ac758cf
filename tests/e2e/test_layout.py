"""Phone layout in Chromium: no page scrolls sideways at 360 or 390 px, the composer stays in reach,
and the chat list is a drawer."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ArenaAnswer, ArenaRun, ChatSession
from settings_app.models import Favorite
from tests.factories import add_message

pytestmark = pytest.mark.django_db(transaction=True)

LONG_ANSWER = ("A long_identifier_that_does_not_break_anywhere_at_all_" * 3 + "\n\n```python\n"
               + "result = some_function(argument_one, argument_two, argument_three, argument_four)\n" * 3 + "```\n\n"
               + "| column one | column two | column three | column four | column five |\n|---|---|---|---|---|\n"
               + "| " + " | ".join(["a fairly long cell value"] * 5) + " |\n\n$$\\sum_{i=0}^{n} x_i^2 + y_i^2 + z_i^2 + w_i^2 + v_i^2$$")


def overflow(page):
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.fixture
def pages(hosts, django_user_model):
    alice = User.objects.get(username="alice")
    alice.is_staff = True
    alice.save()
    Favorite.objects.add(user=alice, model_id="sam-desktop/qwen3-30b")
    Favorite.objects.add(user=alice, model_id="embedding/deepseek-r1-qwen3-8b")
    chat = ChatSession.objects.create(user=alice, model_id="sam-desktop/box2/gpt-oss-20b",
                                      title="A chat with a rather long title about many things")
    for n in range(6):
        add_message(session=chat, role="user", content=f"Question {n} " + "word " * 30)
        add_message(session=chat, role="assistant", content=LONG_ANSWER, provider="sam-desktop",
                               wire_model="box2/gpt-oss-20b", model_id="sam-desktop/box2/gpt-oss-20b")
    run = ArenaRun.objects.create(user=alice, prompt="Compare " * 20, analyzer_model_id="sam-desktop/qwen3-8b",
                                  analysis="Both fine.", analysis_state="complete")
    for position, model in enumerate(["sam-desktop/qwen3-8b", "embedding/qwen3-8b", "deepseek/deepseek-chat"]):
        ArenaAnswer.objects.create(run=run, position=position, model_id=model, content=LONG_ANSWER, state="complete",
                                   provider=model.split("/")[0])
    return {"chat": chat, "run": run}


@pytest.mark.parametrize("width", [360, 390])
def test_no_page_scrolls_sideways_on_a_phone(asgi_page, asgi_server, pages, width):
    page = asgi_page
    page.set_viewport_size({"width": width, "height": 780})
    chat, run = pages["chat"], pages["run"]
    paths = ["/", "/models/", "/chat/", chat.get_absolute_url(), "/chat/search?q=Question",
             f"/chat/{chat.pk}/delete", "/settings/", "/arena/", run.get_absolute_url()]
    for path in paths:
        page.goto(f"{asgi_server.url}{path}")
        page.wait_for_load_state("load")
        assert overflow(page) <= 0, f"{path} is {overflow(page)} px too wide at {width} px"
    page.context.clear_cookies()
    page.goto(f"{asgi_server.url}/accounts/login/")
    assert overflow(page) <= 0, "the login page"


def test_the_composer_is_in_reach_and_the_chat_list_is_a_drawer(asgi_page, asgi_server, pages):
    page = asgi_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{asgi_server.url}{pages['chat'].get_absolute_url()}")
    composer = page.get_by_label("Message")
    expect(composer).to_be_in_viewport()
    expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    page.mouse.wheel(0, -5000)  # scrolled anywhere in the conversation, it stays at the bottom
    expect(composer).to_be_in_viewport()

    sessions = page.get_by_role("complementary", name="Chat sessions")
    expect(sessions).not_to_be_in_viewport()
    toggle = page.get_by_role("button", name="Chats", exact=True)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sessions.get_by_role("link", name="A chat with a rather long")).to_be_in_viewport()
    expect(sessions.get_by_role("link", name="New chat")).to_be_focused()
    page.keyboard.press("Escape")
    expect(sessions).not_to_be_in_viewport()
    expect(toggle).to_be_focused()

    page.set_viewport_size({"width": 1280, "height": 800})  # wide: the list is a column again
    expect(sessions).to_be_in_viewport()
    expect(toggle).to_be_hidden()


@pytest.mark.parametrize("width", [1440, 390])
def test_the_chat_page_paints_without_layout_shift(asgi_page, asgi_server, pages, width):
    page = asgi_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{asgi_server.url}{pages['chat'].get_absolute_url()}")
    page.wait_for_load_state("load")
    shifts = page.evaluate("""() => new Promise(resolve => {
        const entries = [];
        new PerformanceObserver(list => entries.push(...list.getEntries())).observe({type: 'layout-shift', buffered: true});
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(
            entries.filter(e => !e.hadRecentInput).reduce((sum, e) => sum + e.value, 0))));
    })""")
    assert shifts < 0.01, f"cumulative layout shift {shifts:.3f} at {width} px"
