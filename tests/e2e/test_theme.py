"""Dark mode in Chromium: the system's preference, and the user's choice over it."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession
from tests.factories import add_message

pytestmark = pytest.mark.django_db(transaction=True)

LIGHT_BG, DARK_BG = "rgb(255, 255, 255)", "rgb(23, 25, 28)"


def background(page):
    return page.evaluate("getComputedStyle(document.documentElement).backgroundColor")


def keyword_colour(page):
    return page.locator(".highlight span.kn").first.evaluate("e => getComputedStyle(e).color")


def test_pages_follow_the_system_and_the_users_choice_wins(logged_in_page, live_server):
    page = logged_in_page
    chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
    add_message(session=chat, role="assistant", content="```python\nimport os\n```")
    url = f"{live_server.url}{chat.get_absolute_url()}"

    page.emulate_media(color_scheme="light")
    page.goto(url)
    assert background(page) == LIGHT_BG
    light_keyword = keyword_colour(page)
    page.emulate_media(color_scheme="dark")
    assert background(page) == DARK_BG  # the system's change applies at once
    assert keyword_colour(page) != light_keyword  # the code's colours follow

    # The user's choice wins over the system's, on every page, from the first paint.
    page.goto(f"{live_server.url}/settings/")
    page.get_by_role("radio", name="Light", exact=True).check()
    page.get_by_role("button", name="Save theme").click()
    expect(page.get_by_text("Theme saved.")).to_be_visible()
    assert page.locator("html").get_attribute("data-theme") == "light"
    assert background(page) == LIGHT_BG
    page.goto(url)
    assert background(page) == LIGHT_BG and keyword_colour(page) == light_keyword

    page.emulate_media(color_scheme="light")
    page.goto(f"{live_server.url}/settings/")
    page.get_by_role("radio", name="Dark", exact=True).check()
    page.get_by_role("button", name="Save theme").click()
    for path in ("/", "/models/", "/arena/", chat.get_absolute_url()):
        page.goto(f"{live_server.url}{path}")
        assert background(page) == DARK_BG, path
