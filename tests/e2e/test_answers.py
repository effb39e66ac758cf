"""Rendered answers in Chromium: highlighted code that copies, maths drawn from MathML."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession
from tests.factories import add_message

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Here:\n\n```python\ndef area(r):\n    return 3.14 * r ** 2\n```\n\nso $A = \\pi r^2$, and\n\n$$\n\\int_0^1 x\\,dx = \\frac{1}{2}\n$$"


def test_code_is_highlighted_and_copies_and_maths_is_mathml(logged_in_page, live_server):
    page = logged_in_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
    add_message(session=chat, role="user", content="Area of a circle?")
    add_message(session=chat, role="assistant", content=ANSWER)
    page.goto(f"{live_server.url}{chat.get_absolute_url()}")

    block = page.locator(".code-block")
    expect(block.locator(".code-lang")).to_have_text("python")
    expect(block.locator("span.k", has_text="def")).to_be_visible()
    expect(block.locator("span.k", has_text="def")).not_to_have_css("color", "rgb(29, 33, 39)")  # coloured, not text
    block.get_by_role("button", name="Copy python code").click()
    expect(block.get_by_role("button", name="Copy python code")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "def area(r):\n    return 3.14 * r ** 2\n"

    inline, display = page.locator("math").nth(0), page.locator("math").nth(1)
    assert inline.evaluate("m => m.namespaceURI") == "http://www.w3.org/1998/Math/MathML"
    assert display.get_attribute("display") == "block"
    # Drawn as maths: the fraction's 1 stands above its 2, and no source shows.
    numerator, denominator = display.locator("mfrac mn").nth(0), display.locator("mfrac mn").nth(1)
    assert numerator.bounding_box()["y"] + numerator.bounding_box()["height"] <= denominator.bounding_box()["y"] + 1
    expect(page.locator("article.message.assistant")).not_to_contain_text("$")
    expect(page.locator("article.message.assistant")).not_to_contain_text("\\frac")
