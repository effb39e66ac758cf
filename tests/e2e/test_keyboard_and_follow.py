"""Chat round two in Chromium at 1440×900 and 390×844: the view follows a streaming answer until the
reader scrolls up, the composer stays in view, two everyday tasks by keyboard alone (keys counted and
printed), the picker's ranking, and questions that keep their text."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from boochat.models import ChatSession, Message, MessageState
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


class Keyboard:
    """The page's keyboard, counting keys: a chord (Control+Enter) is one press, typed text one per character."""

    def __init__(self, page):
        self.page, self.presses, self.typed = page, 0, 0

    def press(self, key: str, times: int = 1) -> None:
        for _ in range(times):
            self.page.keyboard.press(key)
            self.presses += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text)
        self.typed += len(text)

    @property
    def total(self) -> int:
        return self.presses + self.typed


def answer_bottom_in_view(page) -> bool:
    """Whether the growing answer's end is in view, waiting for the page's next scroll; False if it is
    not within a few seconds. The page follows the text in the frame's resize step, after this check's
    own step, so on a loaded machine where text arrives every frame the check may see up to a few
    lines not followed yet: it allows 100 px (a page not following is thousands of pixels away)."""
    try:
        page.wait_for_function("""() => {
            const answer = [...document.querySelectorAll('article.message.assistant')].pop();
            const dock = document.querySelector('.composer-dock').getBoundingClientRect();
            const bottom = answer.getBoundingClientRect().bottom;
            return bottom > 0 && bottom <= dock.bottom + 100;
        }""", timeout=5000)
    except PlaywrightTimeoutError:
        below = page.evaluate("""() => [...document.querySelectorAll('article.message.assistant')].pop().getBoundingClientRect()
            .bottom - document.querySelector('.composer-dock').getBoundingClientRect().bottom""")
        print(f"The answer's end is {below:.0f} px below the composer's bottom; the page is at {page.evaluate('window.scrollY')}")
        return False
    return True


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_view_follows_the_answer_until_the_reader_scrolls_up(asgi_page, asgi_server, size):
    page = asgi_page
    page.set_viewport_size(SIZES[size])
    lines = [f"line {n}\n\n" for n in range(400)]
    with FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=65536)], reply=lines, stream_delay=0.03) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b",
                                          title="Long")
        for n in range(8):
            add_message(session=chat, role="user", content=f"Question {n} " + "word " * 40)
            add_message(session=chat, role="assistant", content="An answer. " * 60, provider="sam-desktop",
                        wire_model="qwen3-8b", model_id="sam-desktop/qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        expect(page.get_by_label("Message")).to_be_focused()  # an opened chat: the cursor in the box
        assert page.evaluate("window.scrollY") > 0  # ...and its latest turn in view
        page.get_by_label("Message").fill("Count")
        page.get_by_role("button", name="Send").click()
        answer = page.locator("article.message.assistant").last
        expect(answer).to_contain_text("line 40", timeout=10000)  # far past the window's height
        assert answer_bottom_in_view(page), "the page did not follow the answer"
        expect(page.get_by_role("button", name="Stop")).to_be_in_viewport()
        expect(page.get_by_label("Message")).to_be_in_viewport()
        expect(page.get_by_role("button", name="Jump to latest")).to_be_hidden()

        # Scrolled up: the page stays where the reader is, and offers the way back.
        page.mouse.move(SIZES[size]["width"] // 2, 300)
        page.mouse.wheel(0, -1500)
        jump = page.get_by_role("button", name="Jump to latest")
        expect(jump).to_be_visible()
        where = page.evaluate("window.scrollY")
        expect(answer).to_contain_text("line 120", timeout=15000)
        assert abs(page.evaluate("window.scrollY") - where) < 2, "the page kept following after the reader scrolled up"
        expect(page.get_by_role("button", name="Stop")).to_be_in_viewport()
        jump.click()
        expect(jump).to_be_hidden()
        expect(answer).to_contain_text("line 160", timeout=15000)
        assert answer_bottom_in_view(page)
        if size == "desktop":  # the chat list is a column of its own that stays in view
            expect(page.get_by_role("complementary", name="Chat sessions").get_by_role("link", name="New chat")).to_be_in_viewport()
        page.get_by_role("button", name="Stop").click()
        expect(answer.locator(".state-label")).to_have_text("Stopped", timeout=10000)


def test_start_send_stop_and_send_again_by_keyboard_alone(asgi_page, asgi_server):
    page = asgi_page
    page.set_viewport_size(SIZES["desktop"])
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=[f"w{i} " for i in range(400)], stream_delay=0.05) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        page.goto(f"{asgi_server.url}/")
        keys = Keyboard(page)
        expect(page.get_by_label("Message")).to_be_focused()  # Home: the message box, ready
        keys.type("Count slowly")
        keys.press("Control+Enter")  # starts the chat, which sends the question
        page.wait_for_url("**/chat/*/")
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        expect(page.locator("article.message.assistant").last).to_contain_text("w3 ", timeout=10000)
        expect(page.get_by_label("Message")).to_be_focused()
        keys.press("Escape")  # stops
        expect(page.locator("article.message.assistant").last.locator(".state-label")).to_have_text("Stopped", timeout=10000)
        host.reply, host.stream_delay = ["Again."], 0
        keys.type("Once more")
        keys.press("Control+Enter")
        # Sent while the first chat's title is still being written (the slow host): answered and saved all the same.
        expect(page.locator("article.message.assistant").last.locator(".markdown")).to_have_text("Again.", timeout=10000)
    states = list(Message.objects.filter(role="assistant").order_by("id").values_list("state", flat=True))
    assert states == [MessageState.INTERRUPTED, MessageState.COMPLETE]
    print(f"\nstart, send, stop, send again: {keys.total} keys ({keys.presses} presses, {keys.typed} typed characters)")
    assert keys.presses == 2 + 1


def test_edit_an_earlier_question_and_switch_branches_by_keyboard_alone(asgi_page, asgi_server):
    page = asgi_page
    page.set_viewport_size(SIZES["desktop"])
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["Edited answer."]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b",
                                          title="Two turns")
        for n in (1, 2):
            add_message(session=chat, role="user", content=f"Question {n}")
            add_message(session=chat, role="assistant", content=f"Answer {n}", provider="sam-desktop",
                        wire_model="qwen3-8b", model_id="sam-desktop/qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        keys = Keyboard(page)
        expect(page.get_by_label("Message")).to_be_focused()
        # Back through the turns: the second answer's 5 buttons, the second question's 2, the first answer's
        # Delete, then its "Edit the question".
        keys.press("Shift+Tab", 9)
        first = page.locator("article.message.user").first
        expect(page.locator("article.message.assistant").first.get_by_role("link", name="Edit the question")).to_be_focused()
        keys.press("Enter")  # opens the first question's edit box, the cursor in it
        expect(first.get_by_label("Edited question")).to_be_focused()
        keys.press("Control+a")
        keys.type("Question 1, edited")
        keys.press("Control+Enter")  # sends the edit
        expect(page.locator("article.message.assistant .markdown")).to_have_text("Edited answer.", timeout=10000)
        position = page.locator("article.message.user .branch-position")
        expect(position).to_have_text("2/2")
        previous = page.locator("article.message.user").get_by_role("button", name="Previous")
        expect(previous).to_be_focused()  # on the new question's ‹ ›, not <body>
        keys.press("Enter")
        expect(position).to_have_text("1/2")
        expect(page.locator("article.message.user")).to_have_count(2)
        expect(page.locator("article.message.user").first.get_by_role("button", name="Next")).to_be_focused()
        keys.press("Enter")
        expect(position).to_have_text("2/2")
        expect(page.locator("article.message.user").first.get_by_role("button", name="Previous")).to_be_focused()
    print(f"\nedit an earlier question and switch branches: {keys.total} keys ({keys.presses} presses, "
          f"{keys.typed} typed characters)")
    assert keys.presses == 9 + 1 + 1 + 1 + 2


def test_a_skip_link_and_a_shortcut_reach_the_message_box(asgi_page, asgi_server, hosts):
    page = asgi_page
    chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
    page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
    page.get_by_role("link", name="BooChat").focus()  # the page's first link: the skip link is just before it
    page.keyboard.press("Shift+Tab")
    skip = page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Message")).to_be_focused()
    page.get_by_role("link", name="Models", exact=True).focus()
    page.keyboard.press("Shift+Escape")
    expect(page.get_by_label("Message")).to_be_focused()
    for path in ("/models/", "/chat/search?q=x"):
        page.goto(f"{asgi_server.url}{path}")
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("/")
        expect(page.get_by_role("searchbox").first).to_be_focused()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_the_model_picker_ranks_exact_names_first_finds_hosts_by_name_and_fits_a_phone(asgi_page, asgi_server, size):
    page = asgi_page
    page.set_viewport_size(SIZES[size])
    with FakeLlamaSwap([FakeModel("deepseek-r1-qwen3-8b"), FakeModel("qwen3-8b")]) as beta:
        make_provider(slug="beta", name="Beta box", base_url=beta.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="beta/deepseek-r1-qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        page.get_by_role("button", name="Model: beta/deepseek-r1-qwen3-8b").click()
        search = page.get_by_label("Find a model")
        expect(search).to_be_focused()
        search.fill("qwen3 8b beta")
        first = page.locator("#session-model option:not([hidden])").first
        expect(first).to_have_attribute("value", "beta/qwen3-8b")  # the exact name before a longer one
        search.fill("beta box qwen3-8b")  # the host's display name
        expect(first).to_have_attribute("value", "beta/qwen3-8b")
        expect(page.locator("#session-model")).to_be_in_viewport(ratio=1)  # the list opens where it is seen
        with page.expect_response(lambda response: response.url.endswith(f"/chat/{chat.pk}/model")):
            search.press("Enter")
        expect(page.get_by_role("button", name="Model: beta/qwen3-8b")).to_be_visible()  # the page reloaded with it
    chat.refresh_from_db()
    assert chat.model_id == "beta/qwen3-8b"

    # Touch targets: 24×24 CSS px at least (WCAG 2.5.8); the composer's main actions 44 px on a phone.
    page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
    small = page.evaluate("""() => [...document.querySelectorAll('button, a.button, summary, .attach-button, .chip')]
        .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
        .map(e => [e.getAttribute('aria-label') || e.textContent.trim(), e.getBoundingClientRect()])
        .filter(([, r]) => r.width > 0 && (r.width < 24 || r.height < 24)).map(([name]) => name)""")
    assert small == []
    if size == "phone":
        for name in ("Send", "Attach files"):
            box = page.get_by_role("button", name=name).bounding_box() if name == "Send" else \
                page.locator(".attach-button").bounding_box()
            assert box["width"] >= 44 and box["height"] >= 44, name


def test_a_question_keeps_its_line_breaks_and_indentation(asgi_page, asgi_server):
    page = asgi_page
    question = "Why does this fail?\n\ndef f():\n    return 1\n        # indented more"
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["Because."], stream_delay=0.2) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        page.get_by_label("Message").fill(question)
        page.get_by_role("button", name="Send").click()
        asked = page.locator("article.message.user .content").last
        expect(asked).to_have_text(question)  # while the answer streams
        assert asked.inner_text() == question
        expect(page.locator("article.message.assistant .markdown")).to_have_text("Because.", timeout=10000)
        asked = page.locator("article.message.user .content").last
        assert asked.inner_text() == question  # and as saved


def test_without_javascript_menus_the_model_chip_and_delete_with_undo_still_work(browser, asgi_server, hosts, django_user_model):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    django_user_model.objects.create_user("bob", password="correct horse battery staple")
    page.goto(f"{asgi_server.url}/accounts/login/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    chat = ChatSession.objects.create(user=User.objects.get(username="bob"), model_id="sam-desktop/qwen3-8b", title="Plain")
    page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
    page.get_by_role("button", name="Model: sam-desktop/qwen3-8b").click()  # a <details>: opens without a script
    page.get_by_label("Model", exact=True).select_option("embedding/qwen3-8b")
    page.get_by_role("button", name="Use this model").click()
    chat.refresh_from_db()
    assert chat.model_id == "embedding/qwen3-8b"
    page.get_by_role("button", name="Chat actions").click()
    page.get_by_role("button", name="Delete chat").click()  # to the trash, with Undo in the list
    expect(page.get_by_text("Moved “Plain” to the trash")).to_be_visible()
    assert ChatSession.objects.in_trash(chat.user).get() == chat
    page.get_by_role("button", name="Undo delete").click()
    expect(page.get_by_text("Restored 1 chat.")).to_be_visible()
    context.close()
