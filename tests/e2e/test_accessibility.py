"""Accessibility in Chromium: axe-core finds no serious or critical violation on the main pages, in
light and dark; the shortcuts list opens with `?`; focus stays where it was across HTMX swaps."""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.gateway.keys import create_key
from boochat.models import ArenaAnswer, ArenaRun, ChatSession
from settings_app.models import Favorite
from tests.factories import add_message, add_usage

pytestmark = pytest.mark.django_db(transaction=True)

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
ANSWER = ("Sure:\n\n```python\nimport os\nprint(os.getcwd())  # where we are\n```\n\nso $e^{i\\pi} + 1 = 0$.\n\n"
          "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n\n[a link](https://example.org)")


def serious_violations(page):
    """axe-core's serious and critical violations on the page, one readable line each."""
    page.evaluate(AXE)  # evaluated by the browser's debugger protocol: the page's CSP does not apply
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']}: " + "; ".join(n["html"][:120] for n in v["nodes"][:3])
            for v in results["violations"] if v["impact"] in ("serious", "critical")]


@pytest.fixture
def site(hosts):
    alice = User.objects.get(username="alice")
    Favorite.objects.add(user=alice, model_id="sam-desktop/qwen3-30b")
    chat = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title="Paths")
    add_message(session=chat, role="user", content="Where am I?")
    add_message(session=chat, role="assistant", content=ANSWER, reasoning="Think.", provider="sam-desktop",
                           wire_model="qwen3-8b", model_id="sam-desktop/qwen3-8b", tokens_per_second=42.0)
    run = ArenaRun.objects.create(user=alice, prompt="Compare", analyzer_model_id="sam-desktop/qwen3-8b",
                                  analysis="Same.", analysis_state="complete")
    ArenaAnswer.objects.create(run=run, position=0, model_id="sam-desktop/qwen3-8b", content=ANSWER, state="complete")
    ArenaAnswer.objects.create(run=run, position=1, model_id="embedding/qwen3-8b", content="B", state="complete")
    key, _ = create_key(name="laptop", user=alice)
    add_usage(alice, key)
    return {"chat": chat, "run": run}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violation_on_the_main_pages(asgi_page, asgi_server, site, scheme):
    page = asgi_page
    page.emulate_media(color_scheme=scheme)
    found = {}
    for path in ["/", "/models/", "/chat/", "/chat/new", site["chat"].get_absolute_url(), "/chat/search?q=Paths", "/settings/",
                 "/arena/", site["run"].get_absolute_url(), "/settings/keys/", "/settings/usage/", "/settings/connect/"]:
        page.goto(f"{asgi_server.url}{path}")
        page.wait_for_load_state("load")
        if violations := serious_violations(page):
            found[path] = violations
    page.context.clear_cookies()
    page.goto(f"{asgi_server.url}/accounts/login/")
    if violations := serious_violations(page):
        found["/accounts/login/"] = violations
    assert found == {}


def test_the_shortcuts_list_opens_with_question_mark(asgi_page, asgi_server, site):
    page = asgi_page
    page.goto(f"{asgi_server.url}{site['chat'].get_absolute_url()}")
    expect(page.get_by_label("Message")).to_be_focused()  # an opened chat: the cursor in the message box
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Ctrl+Enter")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_label("Message").press("?")  # typing a question mark in a box types it
    expect(dialog).to_be_hidden()
    expect(page.get_by_label("Message")).to_have_value("?")
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Keyboard shortcuts")).to_be_focused()  # back where it was
    page.locator("body").press("/")
    expect(page.get_by_label("Search chats")).to_be_focused()


def test_focus_stays_on_a_control_whose_form_htmx_replaced(asgi_page, asgi_server, site):
    page = asgi_page
    page.goto(f"{asgi_server.url}{site['chat'].get_absolute_url()}")
    page.get_by_role("button", name="Chat actions").click()
    page.get_by_text("Prompt and parameters").click()
    page.get_by_label("System prompt").fill("Be brief.")
    save = page.locator("#chat-settings").get_by_role("button", name="Save", exact=True)
    save.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved: the next answer uses them.")).to_be_visible()
    expect(page.locator("#chat-settings").get_by_role("button", name="Save", exact=True)).to_be_focused()
