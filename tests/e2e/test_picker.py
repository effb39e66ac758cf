import re

import pytest
from playwright.sync_api import expect

from tests.factories import make_provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hosts(sam_desktop, embedding_host):
    make_provider(slug="sam-desktop", name="Sam's desktop", base_url=sam_desktop.url, is_default=True)
    make_provider(slug="embedding", name="Embedding box", base_url=embedding_host.url)
    make_provider(slug="gone", name="Gone box", base_url="http://127.0.0.1:9")


def test_picker_groups_toggles_filters_and_marks_down_hosts(logged_in_page, live_server, hosts):
    page = logged_in_page
    page.goto(f"{live_server.url}/models/")

    headings = page.get_by_role("heading", level=2).all_inner_texts()
    assert headings[0].startswith("★ Favorites")
    assert [re.sub(r"\s+", " ", h).strip() for h in headings[1:]] == ["Sam's desktop up", "Embedding box up", "Gone box down"]

    gone = page.locator("#provider-gone")
    expect(gone.locator(".state")).to_have_text("down")
    expect(gone).to_contain_text("connection refused or host unreachable")

    # Star a model: it appears in Favorites without a page reload.
    page.evaluate("window.__noReload = true")
    favorites = page.locator("#favorites")
    expect(favorites.get_by_role("button", name="Remove qwen3-8b · embedding from favorites", exact=True)).to_have_count(0)
    star = page.get_by_role("button", name="Add qwen3-8b · embedding to favorites")
    star.click()
    expect(favorites.get_by_role("button", name="Remove qwen3-8b · embedding from favorites")).to_be_visible()
    expect(page.locator("#provider-embedding").get_by_role("button", name="Remove qwen3-8b · embedding from favorites")).to_have_attribute("aria-pressed", "true")
    # the same name on the other host is untouched
    expect(page.get_by_role("button", name="Add qwen3-8b · sam-desktop to favorites")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("window.__noReload") is True

    # Type to filter.
    page.get_by_label("Filter models").fill("deepseek")
    expect(page.locator("#provider-embedding li.model:visible")).to_have_count(1)
    expect(page.locator("#provider-sam-desktop li.model:visible")).to_have_count(0)

    # Keyboard: arrow down from the filter box lands on the first visible star.
    page.get_by_label("Filter models").press("ArrowDown")
    expect(page.get_by_role("button", name="Add deepseek-r1-qwen3-8b · embedding to favorites")).to_be_focused()
    page.keyboard.press("Enter")
    expect(favorites.get_by_role("button", name="Remove deepseek-r1-qwen3-8b · embedding from favorites")).to_be_visible()

    # Unstar from the Favorites section: it leaves Favorites and its group row follows.
    page.get_by_label("Filter models").fill("")
    favorites.get_by_role("button", name="Remove qwen3-8b · embedding from favorites", exact=True).click()
    expect(favorites.get_by_role("button", name="Remove qwen3-8b · embedding from favorites", exact=True)).to_have_count(0)
    expect(page.locator("#provider-embedding").get_by_role("button", name="Add qwen3-8b · embedding to favorites")).to_be_visible()
    assert page.evaluate("window.__noReload") is True

    page.reload()
    expect(favorites.get_by_role("button", name="Remove deepseek-r1-qwen3-8b · embedding from favorites")).to_be_visible()


def test_keyboard_toggle_keeps_focus_and_the_filter_hides_empty_hosts(logged_in_page, live_server, hosts):
    page = logged_in_page
    page.goto(f"{live_server.url}/models/")
    star = page.locator("#provider-sam-desktop").get_by_role("button", name=re.compile("Add qwen3-30b"))
    star.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#favorites")).to_contain_text("qwen3-30b")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused.startswith("Remove qwen3-30b")  # the same model's star, now pressed
    page.keyboard.press("Enter")  # and it can be pressed again at once
    expect(page.locator("#favorites")).not_to_contain_text("qwen3-30b")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')").startswith("Add qwen3-30b")

    page.get_by_label("Filter models").fill("nomic")
    expect(page.locator("#provider-embedding")).to_be_visible()
    expect(page.locator("#provider-sam-desktop")).to_be_hidden()
    expect(page.get_by_text("No model matches.")).to_be_hidden()
    page.get_by_label("Filter models").fill("no-such-model-anywhere")
    expect(page.get_by_text("No model matches.")).to_be_visible()


def test_the_composer_picker_finds_models_by_typing_and_works_from_the_keyboard(logged_in_page, live_server, hosts):
    from django.contrib.auth.models import User

    from boochat.models import ChatSession

    page = logged_in_page
    chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
    page.goto(f"{live_server.url}{chat.get_absolute_url()}")
    page.get_by_role("button", name="Model: sam-desktop/qwen3-8b").click()  # the chip opens the picker
    search = page.get_by_label("Find a model")
    select = page.locator("#session-model")
    expect(select.locator("option:checked")).to_have_text("qwen3-8b · sam-desktop")  # the host shows when closed

    search.fill("r1")
    expect(page.locator(".model-search-status")).to_have_text("1 matching")
    visible = select.locator("option:not([hidden])")
    expect(visible).to_have_count(1)
    expect(visible).to_have_text("deepseek-r1-qwen3-8b · embedding")
    search.fill("nomic")  # an embedding model: not offered for chat
    expect(page.locator(".model-search-status")).to_have_text("No model matches")
    expect(select.locator("optgroup[label='Sam\\'s desktop']")).to_be_hidden()
    search.fill("no such model")
    expect(page.locator(".model-search-status")).to_have_text("No model matches")

    # Keyboard only: type, move into the list, take the second match with Enter.
    search.fill("qwen3-8b")
    search.press("ArrowDown")
    expect(select).to_be_focused()
    page.keyboard.press("ArrowDown")
    with page.expect_response(lambda response: response.url.endswith(f"/chat/{chat.pk}/model")):
        page.keyboard.press("Enter")  # the chat's model changes at once, as a choice in the closed select does
    expect(page.locator("#session-model option:checked")).to_have_text("qwen3-8b · embedding")
    chat.refresh_from_db()
    assert chat.model_id == "embedding/qwen3-8b"

    # Enter in the search takes the first match.
    page.get_by_role("button", name="Model: embedding/qwen3-8b").click()
    page.get_by_label("Find a model").fill("30b")
    page.get_by_label("Find a model").press("Enter")
    expect(page.locator("#session-model option:checked")).to_have_text("qwen3-30b · sam-desktop (loaded)")
