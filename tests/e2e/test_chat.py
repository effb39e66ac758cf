import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.chat.turns import STOPPED_BEFORE_START
from boochat.models import ChatSession, Message, MessageState
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_chat_streams_stops_and_survives_a_reload(asgi_page, asgi_server):
    page = asgi_page
    words = [f"w{i} " for i in range(300)]
    with FakeLlamaSwap([FakeModel("qwen3-8b"), FakeModel("qwen3-30b", loaded=True)], reply=["Hello ", "there ", "friend."]) as host:
        make_provider(slug="sam-desktop", name="Sam's desktop", base_url=host.url, is_default=True)
        page.goto(f"{asgi_server.url}/chat/")
        page.get_by_label("Model", exact=True).select_option("sam-desktop/qwen3-30b")
        page.get_by_role("button", name="Start chat").click()
        expect(page.locator("#session-title")).to_have_text("New chat")

        # A slow answer: the first words show while the host is still sending.
        host.stream_delay = 0.15
        page.get_by_label("Message").fill("Say hello")
        page.get_by_role("button", name="Send").click()
        answer = page.locator("article.message.assistant").last
        expect(answer).to_contain_text("Hello", timeout=5000)
        assert "friend." not in answer.inner_text()  # still streaming
        expect(answer.locator(".markdown")).to_have_text("Hello there friend.", timeout=5000)
        expect(answer).to_contain_text("qwen3-30b · sam-desktop")
        expect(page.locator("#session-title")).not_to_have_text("New chat", timeout=5000)
        title = page.locator("#session-title").inner_text()
        expect(page.locator("aside").get_by_role("link", name=title)).to_be_visible()  # the list follows

        # A long answer, stopped half-way.
        host.reply, host.stream_delay = words, 0.05
        page.get_by_label("Message").fill("Count slowly")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        expect(page.locator("article.message.assistant").last).to_contain_text("w3 ", timeout=5000)
        page.get_by_role("button", name="Stop").click()
        assert host.wait_for_disconnect(2.0)
        stopped = page.locator("article.message.assistant").last
        expect(stopped.locator(".state-label")).to_have_text("Stopped", timeout=5000)  # neutral, not a failure
        expect(stopped.locator(".message-error")).to_have_count(0)

    saved = Message.objects.filter(role="assistant").order_by("id")
    assert [m.state for m in saved] == [MessageState.COMPLETE, MessageState.INTERRUPTED]
    assert 0 < saved[1].content.count(" ") < 300

    page.reload()
    expect(page.locator("article.message.user")).to_have_count(2)
    expect(page.locator("article.message.assistant").first.locator(".markdown")).to_have_text("Hello there friend.")
    expect(page.locator("article.message.assistant").last).to_contain_text("Stopped")
    title = page.locator("#session-title").inner_text()
    expect(page.get_by_role("link", name=title)).to_be_visible()
    expect(page.locator(".context-usage")).to_contain_text("tokens of context")


def test_stop_before_the_first_byte_shows_the_stopped_answer_without_a_reload(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        host.first_byte_delay = 30
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=User.objects.get(username="alice"),
                                             model_id="sam-desktop/qwen3-8b", title="t")
        page.goto(f"{asgi_server.url}{session.get_absolute_url()}")
        page.get_by_label("Message").fill("hello")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("button", name="Stop")).to_be_visible()
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Stop").click()
        answer = page.locator("article.message.assistant").last
        expect(answer).to_contain_text(STOPPED_BEFORE_START, timeout=5000)
        expect(answer.locator(".state-label")).to_have_text("Stopped")


def test_rename_in_place_then_delete(asgi_page, asgi_server):
    page = asgi_page
    chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
    expect(page.locator("#session-title")).to_have_text("New chat")
    expect(page.locator(f"#session-link-{chat.pk}")).to_have_text("New chat")  # one name everywhere
    page.get_by_role("button", name="Chat actions").click()
    page.locator(".chat-actions").get_by_text("Rename").click()
    page.get_by_label("New title").fill("Tides")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#session-title")).to_have_text("Tides")
    expect(page.locator(f"#session-link-{chat.pk}")).to_have_text("Tides")  # the list, without a reload
    page.get_by_role("button", name="Chat actions").click()
    page.get_by_role("button", name="Delete chat").click()  # to the trash, with Undo: no page asks first
    expect(page.get_by_text("Moved “Tides” to the trash")).to_be_visible()
    assert ChatSession.objects.in_trash(chat.user).get() == chat


def test_a_refused_answer_shows_its_model_and_host_at_once(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        host.fault, host.fault_paths = "503", {"/v1/chat/completions"}
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        expect(page.get_by_text("Ctrl+Enter sends")).to_be_visible()
        page.get_by_label("Message").fill("hello")
        page.get_by_label("Message").press("Control+Enter")
        failed = page.locator("article.message.state-failed").last
        expect(failed).to_contain_text("is not ready")
        expect(failed.locator(".message-meta")).to_have_text("qwen3-8b · sam-desktop")


def test_search_opens_the_chat_at_the_message(asgi_page, asgi_server):
    page = asgi_page
    alice = User.objects.get(username="alice")
    chat = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title="Oceans")
    for n in range(30):
        add_message(session=chat, role="user", content=f"filler question {n} " + "words " * 40)
    found = add_message(session=chat, role="user", content="Where do albatrosses sleep?")
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    page.goto(f"{asgi_server.url}/chat/")
    page.get_by_label("Search chats").fill("albatrosses")
    page.get_by_label("Search chats").press("Enter")
    hit = page.locator(".search-hits li").first
    expect(hit.locator("mark")).to_have_text("albatrosses")
    hit.get_by_role("link", name="Oceans").click()
    page.wait_for_url(f"**{chat.get_absolute_url()}?at={found.pk}#message-{found.pk}")
    expect(page.locator(f"#message-{found.pk}")).to_be_in_viewport()


def test_a_system_prompt_set_in_the_panel_reaches_the_host(asgi_page, asgi_server):
    page = asgi_page
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["Bonjour"]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        page.get_by_role("button", name="Chat actions").click()
        page.get_by_text("Prompt and parameters").click()
        page.get_by_label("System prompt").fill("Answer in French.")
        page.get_by_label("Temperature").fill("0.3")
        page.locator("#chat-settings").get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_text("Saved: the next answer uses them.")).to_be_visible()
        page.get_by_label("Message").fill("Hello")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("article.message.assistant").last.locator(".markdown")).to_have_text("Bonjour")
        (turn,) = [r.json() for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]
    assert turn["messages"][0] == {"role": "system", "content": "Answer in French."} and turn["temperature"] == 0.3


def test_edit_resend_regenerate_on_another_host_and_branch_navigation(asgi_page, asgi_server):
    page = asgi_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    with (FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["From ", "Sam."]) as sam,
          FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["From ", "the ", "other box."]) as other):
        make_provider(slug="sam-desktop", base_url=sam.url, is_default=True)
        make_provider(slug="embedding", base_url=other.url)
        chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b",
                                          title="Branches")
        page.goto(f"{asgi_server.url}{chat.get_absolute_url()}")
        page.get_by_label("Message").fill("Who are you?")
        page.get_by_role("button", name="Send", exact=True).click()
        answer = page.locator("article.message.assistant").last
        expect(answer.locator(".markdown")).to_have_text("From Sam.")

        # Copy the whole answer.
        answer.get_by_role("button", name="Copy").click()
        expect(answer.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == "From Sam."

        # Regenerate with the other host's model of the same name, chosen in place.
        answer.get_by_role("link", name="With another model…").click()
        answer.get_by_label("Answer again with").select_option("embedding/qwen3-8b")
        answer.get_by_role("button", name="Regenerate").last.click()
        second = page.locator("article.message.assistant").last
        expect(second.locator(".markdown")).to_have_text("From the other box.")
        expect(second.locator(".message-meta")).to_contain_text("qwen3-8b · embedding")
        expect(second.locator(".branch-position")).to_have_text("2/2")
        assert [r.json()["messages"] for r in other.requests_to("/v1/chat/completions")] == [
            [{"role": "user", "content": "Who are you?"}]]
        second.get_by_role("button", name="Previous").click()
        expect(page.locator("article.message.assistant").last.locator(".markdown")).to_have_text("From Sam.")
        expect(page.locator(".branch-position")).to_have_text("1/2")

        # Edit the question and resend: the earlier branch stays, reachable with ‹ ›.
        question = page.locator("article.message.user").last
        question.get_by_role("button", name="Edit", exact=True).click()
        question.get_by_label("Edited question").fill("Who are you, really?")
        question.get_by_role("button", name="Send edited").click()
        expect(page.locator("article.message.user")).to_have_count(1)
        expect(page.locator("article.message.user .content")).to_have_text("Who are you, really?")
        expect(page.locator("article.message.assistant .markdown")).to_have_text("From Sam.")
        expect(page.locator("article.message.user .branch-position")).to_have_text("2/2")
        page.locator("article.message.user").get_by_role("button", name="Previous").click()
        expect(page.locator("article.message.user .content")).to_have_text("Who are you?")
        page.reload()
        expect(page.locator("article.message.user .content")).to_have_text("Who are you?")

        # Delete the turn: the chat is empty again, the other branch too is still there.
        page.locator("article.message.user").get_by_role("button", name="Delete").click()
        page.get_by_role("dialog", name="Delete this question and its answers?").get_by_role("button", name="Delete").click()
        expect(page.locator("article.message.user .content")).to_have_text("Who are you, really?")
    assert Message.objects.filter(session=chat).count() == 2


def chat_list(page):
    """The chat list, opened first where it is a drawer (phones); closed again with Escape."""
    toggle = page.get_by_role("button", name="Chats", exact=True)
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false":
        toggle.click()
    return page.get_by_role("complementary", name="Chat sessions")


@pytest.mark.parametrize("size", [{"width": 1440, "height": 900}, {"width": 390, "height": 844}], ids=["desktop", "phone"])
def test_a_new_chat_is_saved_with_its_first_message_and_its_page_becomes_the_chats(asgi_page, asgi_server, size):
    page = asgi_page
    page.set_viewport_size(size)
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["Bonjour ", "à ", "toi."], stream_delay=0.1) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        page.goto(f"{asgi_server.url}/chat/")
        for _ in range(2):  # "+ New chat", twice: a page, no chat
            chat_list(page).get_by_role("link", name="New chat").click()
            page.wait_for_url("**/chat/new*")
            expect(page.get_by_label("Message")).to_be_focused()
        expect(page.locator("#session-title")).to_have_text("New chat")
        assert not ChatSession.objects.exists()

        # Set before the first message: the prompt and a parameter (a wrong one first), and a file.
        page.get_by_role("button", name="Chat actions").click()
        page.get_by_text("Prompt and parameters").click()
        page.get_by_label("System prompt").fill("Answer in French.")
        page.get_by_label("Temperature").fill("9")
        page.get_by_role("button", name="Close").click()  # on a phone too: the top bar never covers the sheet
        page.locator("#attach-input").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"Tides."})
        page.get_by_label("Message").fill("Say hello")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("article.message.state-failed")).to_contain_text("Temperature: Ensure this value is less than or equal to 2.")
        expect(page.get_by_label("Message")).to_have_value("Say hello")  # refused: nothing saved, nothing lost
        expect(page.locator("#attach-list")).to_contain_text("notes.txt")
        assert page.url.endswith("/chat/new") and not ChatSession.objects.exists()

        page.get_by_role("button", name="Chat actions").click()
        page.get_by_text("Prompt and parameters").click()
        page.get_by_label("Temperature").fill("0.3")
        page.get_by_role("button", name="Close").click()  # on a phone too: the top bar never covers the sheet
        page.evaluate("window.notReloaded = true")
        page.get_by_role("button", name="Send").click()
        page.wait_for_url("**/chat/*/")
        chat = ChatSession.objects.get()
        assert page.url == f"{asgi_server.url}{chat.get_absolute_url()}"
        expect(page.locator(f"#session-link-{chat.pk}")).to_be_attached()  # listed while it answers
        answer = page.locator("article.message.assistant").last
        expect(answer).to_contain_text("Bonjour", timeout=5000)
        expect(answer.locator(".markdown")).to_have_text("Bonjour à toi.", timeout=5000)
        expect(page.locator("article.message.user").last).to_contain_text("notes.txt")
        expect(page.locator("#session-title")).not_to_have_text("New chat", timeout=5000)
        title = page.locator("#session-title").inner_text()
        sessions = chat_list(page)  # on a phone, the drawer's button still opens it
        expect(sessions.get_by_role("link", name=title)).to_be_visible()
        expect(sessions.get_by_text("(writing…)")).to_have_count(0)
        page.keyboard.press("Escape")
        assert page.evaluate("window.notReloaded") is True  # the same page, now the chat's
        page.get_by_role("button", name="Chat actions").click()
        expect(page.locator(".chat-actions").get_by_text("Rename")).to_be_visible()  # the chat's own actions
        (turn,) = [r.json() for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]
    chat.refresh_from_db()
    assert (chat.system_prompt, chat.parameters) == ("Answer in French.", {"temperature": 0.3})
    assert turn["messages"][0] == {"role": "system", "content": "Answer in French."} and turn["temperature"] == 0.3
    assert [a.name for a in chat.messages.get(role="user").attachments.all()] == ["notes.txt"]

    page.goto(f"{asgi_server.url}/chat/new")
    page.reload()
    expect(chat_list(page).locator("[id^=session-link-]")).to_have_count(1)
    assert ChatSession.objects.count() == 1


def test_the_model_chosen_on_a_new_chats_page_keeps_the_text_and_starts_the_chat(asgi_page, asgi_server):
    page = asgi_page
    with (FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["From Sam."]) as sam,
          FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["From the other box."]) as other):
        make_provider(slug="sam-desktop", base_url=sam.url, is_default=True)
        make_provider(slug="embedding", base_url=other.url)
        page.goto(f"{asgi_server.url}/chat/new")
        page.get_by_label("Message").fill("Who are you?")
        page.get_by_role("button", name="Model: sam-desktop/qwen3-8b").click()
        search = page.get_by_label("Find a model")
        search.fill("qwen3-8b embedding")
        search.press("Enter")
        page.wait_for_url("**/chat/new?model=embedding%2Fqwen3-8b")  # the new chat's page for that model
        expect(page.get_by_role("button", name="Model: embedding/qwen3-8b")).to_be_visible()
        expect(page.get_by_label("Message")).to_have_value("Who are you?")  # the text typed stays
        assert not ChatSession.objects.exists()
        page.get_by_role("button", name="Send").click()
        expect(page.locator("article.message.assistant").last.locator(".markdown")).to_have_text("From the other box.")
        chat = ChatSession.objects.get()
        assert chat.model_id == "embedding/qwen3-8b" and page.url.endswith(chat.get_absolute_url())

        # The page is the chat's now: its model chip changes the chat's model.
        page.get_by_role("button", name="Model: embedding/qwen3-8b").click()
        with page.expect_response(lambda response: response.url.endswith(f"/chat/{chat.pk}/model")):
            page.get_by_label("Find a model").fill("qwen3-8b sam-desktop")
            page.get_by_label("Find a model").press("Enter")
    chat.refresh_from_db()
    assert chat.model_id == "sam-desktop/qwen3-8b"
