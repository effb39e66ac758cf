"""Sharing a chat: a read-only snapshot of the branch shown, for anyone with the link, until revoked."""

import pytest
from django.test import Client
from django.urls import reverse

from boochat.models import Attachment, ChatSession, SharedChat
from tests.factories import add_message

pytestmark = pytest.mark.django_db


def me(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


@pytest.fixture
def chat(user_client):
    chat = ChatSession.objects.create(user=me(user_client), model_id="sam-desktop/qwen3-8b", title="Tides")
    question = add_message(session=chat, role="user", content="Why tides?\n    indented code")
    Attachment.objects.create(message=question, kind="text", name="secret-notes.txt", media_type="text/plain", size=5,
                              text="secret file text")
    add_message(session=chat, role="assistant", content="**The moon.**", model_id="sam-desktop/qwen3-8b",
                wire_model="qwen3-8b")
    return chat


def share(client, chat):
    response = client.post(reverse("chat_share", args=[chat.pk]), follow=True)
    assert response.status_code == 200
    return SharedChat.objects.latest("id"), response.content.decode()


def test_a_shared_link_shows_the_branch_to_anyone_without_login_and_nothing_else(user_client, chat):
    ChatSession.objects.create(user=chat.user, model_id="x/y", title="My other private chat")
    shared, page = share(user_client, chat)
    assert len(shared.token) >= 40 and f"/s/{shared.token}" in page  # the link is shown, and listed under the chat
    assert f'action="{reverse("share_revoke", args=[shared.pk])}"' in page

    response = Client().get(shared.get_absolute_url())  # nobody logged in
    body = response.content.decode()
    assert response.status_code == 200
    assert response["X-Robots-Tag"] == "noindex, nofollow" and '<meta name="robots" content="noindex, nofollow">' in body
    assert response["Referrer-Policy"] == "no-referrer"
    assert "<strong>The moon.</strong>" in body and "Why tides?\n    indented code" in body and "qwen3-8b" in body
    assert "1 attached file not shared." in body
    for private in ("secret-notes.txt", "secret file text", "My other private chat", "alice", "Log out", "/chat/"):
        assert private not in body


def test_the_share_is_a_snapshot_of_the_branch_shown(user_client, chat):
    shared, _ = share(user_client, chat)
    add_message(session=chat, role="user", content="A later question")
    body = Client().get(shared.get_absolute_url()).content.decode()
    assert "A later question" not in body
    assert SharedChat.objects.get(pk=shared.pk).messages[0]["content"] == "Why tides?\n    indented code"


def test_only_the_branch_shown_is_shared(user_client, chat):
    first = chat.messages.get(role="user")
    edited = add_message(session=chat, role="user", content="Edited question", parent=None)
    add_message(session=chat, role="assistant", content="Another answer", parent=edited)
    user_client.post(reverse("chat_branch", args=[chat.pk]), {"message": first.pk})
    shared, _ = share(user_client, chat)
    body = Client().get(shared.get_absolute_url()).content.decode()
    assert "Why tides?" in body and "Edited question" not in body and "Another answer" not in body


def test_a_revoked_link_answers_404(user_client, chat):
    shared, _ = share(user_client, chat)
    page = user_client.post(reverse("share_revoke", args=[shared.pk]), follow=True).content.decode()
    assert "The link is revoked" in page and f"/s/{shared.token}" not in page
    assert Client().get(shared.get_absolute_url()).status_code == 404


def test_a_deleted_chats_links_answer_404(user_client, chat):
    shared, _ = share(user_client, chat)
    user_client.post(reverse("chat_delete", args=[chat.pk]))  # to the trash
    assert Client().get(shared.get_absolute_url()).status_code == 404
    assert Client().get("/s/not-a-token").status_code == 404


def test_another_user_cannot_share_or_revoke(user_client, chat, django_user_model):
    shared, _ = share(user_client, chat)
    mallory = Client()
    mallory.force_login(django_user_model.objects.create_user("mallory"))
    assert mallory.post(reverse("chat_share", args=[chat.pk])).status_code == 404
    assert mallory.post(reverse("share_revoke", args=[shared.pk])).status_code == 404
    assert Client().get(shared.get_absolute_url()).status_code == 200


def test_each_share_is_a_new_link_and_an_empty_chat_has_nothing_to_share(user_client, chat):
    first, _ = share(user_client, chat)
    second, _ = share(user_client, chat)
    assert first.token != second.token
    empty = ChatSession.objects.create(user=chat.user, model_id="x/y")
    page = user_client.post(reverse("chat_share", args=[empty.pk]), follow=True).content.decode()
    assert "Nothing to share yet" in page and not SharedChat.objects.filter(session=empty).exists()


def test_staff_can_revoke_a_link_in_admin_without_seeing_its_token(user_client, chat, django_user_model):
    shared, _ = share(user_client, chat)
    admin_client = Client()
    admin_client.force_login(django_user_model.objects.create_superuser("root", password="pw-for-tests-only"))
    listing = admin_client.get("/admin/boochat/sharedchat/").content.decode()
    assert "Tides" in listing and shared.token not in listing
    admin_client.post("/admin/boochat/sharedchat/", {"action": "revoke", "_selected_action": [shared.pk]})
    assert Client().get(shared.get_absolute_url()).status_code == 404


def test_a_shared_answer_shows_its_tool_calls_read_only_and_escaped(user_client, chat):
    answer = chat.messages.get(role="assistant")
    answer.tool_rounds = [{"text": "Let me *look*.", "reasoning": "private thoughts", "calls": [
        {"id": "call_1", "function": "web__read_page", "arguments": '{"url": "https://example.org/<i>"}',
         "result": "<script>alert('x')</script> The Moon pulls.", "is_error": False, "duration_ms": 120,
         "approval": "run", "state": "done"},
        {"id": "call_2", "function": "web__web_search", "arguments": "{}", "result": "", "is_error": False,
         "duration_ms": None, "approval": "", "state": "waiting"}]}]
    answer.save()
    shared, _ = share(user_client, chat)
    page = Client().get(shared.get_absolute_url()).content.decode()
    assert page.count('<details class="tool-call') == 2 and "<details class=\"tool-call\" data-call=\"call_1\">" in page  # collapsed
    assert "web__read_page" in page and "120 ms" in page and "<em>look</em>" in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; The Moon pulls." in page and "<script>alert" not in page
    assert "{&quot;url&quot;: &quot;https://example.org/&lt;i&gt;&quot;}" in page
    assert "not run" in page and "tool-approval" not in page and "private thoughts" not in page
    answer.tool_rounds = []
    answer.save()  # the copy keeps the calls as they were shared
    assert "web__read_page" in Client().get(shared.get_absolute_url()).content.decode()
