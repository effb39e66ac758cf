"""The chat list in Chromium: delete with Undo, several chats archived at once and put back, folders."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession
from tests.factories import add_message

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = [{"width": 1440, "height": 900}, {"width": 390, "height": 844}]


def chats(*titles):
    alice = User.objects.get(username="alice")
    made = []
    for title in titles:
        chat = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title=title)
        add_message(session=chat, role="user", content=f"About {title}")
        made.append(chat)
    return made


def chat_list(page):
    """The chat list, opened first where it is a drawer (phones)."""
    toggle = page.get_by_role("button", name="Chats", exact=True)
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false":
        toggle.click()
    return page.get_by_role("complementary", name="Chat sessions")


@pytest.mark.parametrize("size", SIZES, ids=["desktop", "phone"])
def test_delete_then_undo_brings_the_chat_back(logged_in_page, live_server, size):
    page = logged_in_page
    page.set_viewport_size(size)
    doomed, _ = chats("Doomed plans", "Other")
    page.goto(f"{live_server.url}{doomed.get_absolute_url()}")
    page.get_by_role("button", name="Chat actions").click()
    page.get_by_role("button", name="Delete chat").click()  # no page in between

    expect(page.get_by_text("Moved “Doomed plans” to the trash")).to_be_visible()
    listing = chat_list(page)
    expect(listing.get_by_role("link", name="Doomed plans")).to_have_count(0)
    undo = listing.get_by_role("button", name="Undo delete")
    expect(undo).to_be_visible()
    undo.click()

    expect(page.get_by_text("Restored 1 chat.")).to_be_visible()
    chat_list(page).get_by_role("link", name="Doomed plans").click()
    expect(page.locator("#session-title")).to_have_text("Doomed plans")
    expect(page.locator("article.message.user")).to_contain_text("About Doomed plans")


@pytest.mark.parametrize("size", SIZES, ids=["desktop", "phone"])
def test_several_chats_archived_at_once_and_put_back(logged_in_page, live_server, size):
    page = logged_in_page
    page.set_viewport_size(size)
    chats("Alpha", "Beta", "Gamma")
    page.goto(f"{live_server.url}/chat/")
    listing = chat_list(page)
    listing.get_by_role("checkbox", name="Select “Alpha”").check()
    listing.get_by_role("checkbox", name="Select “Gamma”").check()
    listing.get_by_role("button", name="Archive selected").click()

    expect(page.get_by_text("Archived 2 chats.")).to_be_visible()
    listing = chat_list(page)
    expect(listing.get_by_role("link", name="Beta")).to_be_visible()
    expect(listing.get_by_role("link", name="Alpha")).to_have_count(0)
    expect(listing.get_by_role("link", name="Gamma")).to_have_count(0)

    listing.get_by_role("link", name="Archived chats").click()
    expect(page.get_by_role("heading", name="Archived chats")).to_be_visible()
    page.get_by_role("checkbox", name="Select “Alpha”").check()
    page.get_by_role("button", name="Put selected back in the list").click()
    expect(page.get_by_text("Put 1 chat back in the list.")).to_be_visible()
    expect(page.get_by_role("link", name="Gamma")).to_be_visible()  # still archived
    page.goto(f"{live_server.url}/chat/")
    expect(chat_list(page).get_by_role("link", name="Alpha")).to_be_visible()


def test_a_folder_made_from_the_list_groups_its_chats(logged_in_page, live_server):
    page = logged_in_page
    page.set_viewport_size(SIZES[0])
    chats("Alpha", "Beta")
    page.goto(f"{live_server.url}/chat/")
    listing = chat_list(page)
    listing.get_by_text("Folders", exact=True).click()
    listing.get_by_label("New folder").fill("Lab notes")
    listing.get_by_role("button", name="Create").click()
    expect(page.get_by_text("Made the folder “Lab notes”.")).to_be_visible()

    listing = chat_list(page)
    listing.get_by_role("checkbox", name="Select “Beta”").check()
    listing.get_by_label("to", exact=True).select_option(label="Lab notes")
    listing.get_by_role("button", name="Move selected").click()
    expect(page.get_by_text("Moved 1 chat to “Lab notes”.")).to_be_visible()
    headings = chat_list(page).locator("h2.chat-group")
    expect(headings.first).to_have_text("📁 Lab notes")
    expect(chat_list(page).locator("h2.chat-group:has-text('Lab notes') + ul")).to_contain_text("Beta")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violation_on_the_new_pages(asgi_page, asgi_server, scheme):
    from boochat.chat.share_views import snapshot
    from boochat.models import Folder, SharedChat
    from tests.e2e.test_accessibility import serious_violations

    page = asgi_page
    page.emulate_media(color_scheme=scheme)
    kept, archived, trashed = chats("Kept", "Archived one", "Trashed one")
    folder = Folder.objects.create(user=kept.user, name="Lab")
    ChatSession.objects.filter(pk=kept.pk).update(folder=folder)
    ChatSession.objects.filter(pk=archived.pk).update(archived_at="2026-01-01T00:00:00Z")
    ChatSession.objects.filter(pk=trashed.pk).move_to_trash()
    share = SharedChat.objects.create(session=kept, token="t" * 43, title="Kept", messages=snapshot(list(kept.messages.all())))
    found = {}
    for path in ["/chat/", kept.get_absolute_url(), "/chat/archived", "/chat/trash", share.get_absolute_url()]:
        page.goto(f"{asgi_server.url}{path}")
        page.wait_for_load_state("load")
        if violations := serious_violations(page):
            found[path] = violations
    assert found == {}
