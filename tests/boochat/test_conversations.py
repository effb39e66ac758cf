"""Managing conversations: rename, pin, delete (a stream in progress for the chat stops)."""

import time

import httpx
import pytest
from django.urls import reverse

from boochat.models import ChatSession, Message
from tests.boochat.test_chat import new_session
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db


def test_rename_inline_and_without_javascript(user_client):
    chat = new_session(user_client, "sam-desktop/qwen3-8b")
    assert chat.title == "" and str(chat) == "New chat"
    response = user_client.post(reverse("chat_rename", args=[chat.pk]), {"title": "  Tides   near poles "},
                                headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.template_name == "chat.html#session_title"
    body = response.content.decode()
    assert '<h1 id="session-title" >Tides near poles</h1>' in body.replace("  ", " ")
    assert f'id="session-link-{chat.pk}"' in body and 'hx-swap-oob="true"' in body  # the list follows
    chat.refresh_from_db()
    assert chat.title == "Tides near poles" and chat.title_claimed_at is not None  # no title is generated over it

    response = user_client.post(reverse("chat_rename", args=[chat.pk]), {"title": "Plain form"})
    assert response.status_code == 302 and response["Location"] == chat.get_absolute_url()
    assert ChatSession.objects.get(pk=chat.pk).title == "Plain form"


@pytest.mark.parametrize("title, error", [("   ", "The title is empty."), ("x" * 201, "longer than 200 characters")])
def test_a_bad_title_is_refused_and_changes_nothing(user_client, title, error):
    chat = new_session(user_client, "sam-desktop/qwen3-8b", title="Kept")
    response = user_client.post(reverse("chat_rename", args=[chat.pk]), {"title": title}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and error in response.content.decode()
    page = user_client.post(reverse("chat_rename", args=[chat.pk]), {"title": title}, follow=True)
    assert error in page.content.decode()
    assert ChatSession.objects.get(pk=chat.pk).title == "Kept"


def test_pinned_chats_head_the_list(user_client):
    older = new_session(user_client, "sam-desktop/qwen3-8b", title="Older")
    new_session(user_client, "sam-desktop/qwen3-8b", title="Newer")
    assert [c.title for c in user_client.get(reverse("chat_index")).context_data["sessions"]] == ["Newer", "Older"]
    assert user_client.post(reverse("chat_pin", args=[older.pk]), {"pinned": "1"}).status_code == 302
    page = user_client.get(reverse("chat_index"))
    assert [c.title for c in page.context_data["sessions"]] == ["Older", "Newer"]
    assert 'title="Pinned"' in page.content.decode()
    user_client.post(reverse("chat_pin", args=[older.pk]), {"pinned": "0"})
    assert [c.title for c in user_client.get(reverse("chat_index")).context_data["sessions"]] == ["Newer", "Older"]


def test_delete_asks_first_then_removes_everything(user_client, settings):
    settings.BOOCHAT_TRASH_DAYS = 0  # no trash: deleted at once (the trash: test_tidy_list.py)
    chat = new_session(user_client, "sam-desktop/qwen3-8b", title="Doomed")
    add_message(session=chat, role="user", content="hi")
    confirm = user_client.get(reverse("chat_delete", args=[chat.pk]))
    assert confirm.status_code == 200 and "Delete “Doomed”?" in confirm.content.decode()
    assert ChatSession.objects.filter(pk=chat.pk).exists()  # asking deletes nothing
    response = user_client.post(reverse("chat_delete", args=[chat.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("chat_index")
    assert "Deleted “Doomed”." in response.content.decode()
    assert not ChatSession.objects.exists() and not Message.objects.exists()


def test_another_users_chat_cannot_be_renamed_pinned_or_deleted(user_client, django_user_model):
    other = ChatSession.objects.create(user=django_user_model.objects.create_user("mallory"), model_id="x/y", title="Mine")
    for name, data in (("chat_rename", {"title": "Pwned"}), ("chat_pin", {"pinned": "1"}), ("chat_delete", {})):
        assert user_client.post(reverse(name, args=[other.pk]), data).status_code == 404
    other.refresh_from_db()
    assert (other.title, other.pinned) == ("Mine", False)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trash_days", [0, 30])
def test_deleting_a_chat_stops_its_answer_and_the_host(asgi_server, session_cookie, settings, trash_days):
    settings.BOOCHAT_TRASH_DAYS = trash_days
    user, cookies = session_cookie()
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["word "] * 400, stream_delay=0.02) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        chat = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
            client.get(chat.get_absolute_url())
            token = {"X-CSRFToken": client.cookies["csrftoken"]}
            started = time.monotonic()
            with client.stream("POST", reverse("chat_send", args=[chat.pk]), data={"content": "talk"},
                               headers={**token, "X-BooChat-Stream": "1"}) as response:
                chunks = response.iter_raw()
                received = next(chunks)
                assert client.post(reverse("chat_delete", args=[chat.pk]), headers=token).status_code == 302
                received += b"".join(chunks)  # the stream ends by itself
            took = time.monotonic() - started
        assert host.wait_for_disconnect(2.0)
    assert b'"type":"deleted"' in received and b"[DONE]" not in received
    assert took < 5  # 400 words at 20 ms would take 8 s
    if trash_days:  # in the trash, the answer saved as far as it went
        assert ChatSession.objects.in_trash(user).get() == chat
        assert Message.objects.get(role="assistant").state == "interrupted"
    else:
        assert not ChatSession.objects.exists() and not Message.objects.exists()  # nothing left behind


def test_the_list_is_grouped_by_recency_and_paged(user_client):
    from datetime import timedelta

    from django.utils import timezone

    def chat(title, days_ago, pinned=False):
        made = new_session(user_client, "sam-desktop/qwen3-8b", title=title, pinned=pinned)
        ChatSession.objects.filter(pk=made.pk).update(updated_at=timezone.now() - timedelta(days=days_ago))

    chat("Last month", 30)
    chat("This week", 3)
    chat("Now", 0)
    chat("Kept on top", 90, pinned=True)
    body = user_client.get(reverse("chat_index")).content.decode()
    order = [body.index(text) for text in ("Pinned", "Kept on top", "Today", "Now", "Previous 7 days", "This week",
                                           "Older", "Last month")]
    assert order == sorted(order)

    for n in range(48):
        chat(f"Old {n}", 40)
    first = user_client.get(reverse("chat_index")).content.decode()
    assert "Older chats →" in first and first.count('id="session-link-') == 50
    second = user_client.get(reverse("chat_index"), {"page": 2}).content.decode()
    assert second.count('id="session-link-') == 2 and "← Newer" in second


def test_long_titles_are_cut_at_a_word_in_the_list(user_client):
    chat = new_session(user_client, "sam-desktop/qwen3-8b",
                       title="How the tides near the poles differ from those at the equator")
    body = user_client.get(reverse("chat_index")).content.decode()
    assert f'title="{chat.title}">How the tides near the poles differ…</a>' in body


def test_the_closed_model_select_names_the_host(user_client, hosts):
    chat = new_session(user_client, "embedding/qwen3-8b")
    body = user_client.get(chat.get_absolute_url()).content.decode()
    assert '<option value="embedding/qwen3-8b" selected>qwen3-8b · embedding' in body
    assert '<option value="sam-desktop/qwen3-8b">qwen3-8b · sam-desktop' in body


def test_home_leads_to_chatting_and_models_rows_to_a_chat_with_them(user_client, hosts):
    recent = new_session(user_client, "sam-desktop/qwen3-8b", title="Yesterday's chat")
    home = user_client.get(reverse("home")).content.decode()
    assert home.index('aria-label="Start chat"') < home.index("Hosts")  # chatting first, the host table below
    assert f'href="{recent.get_absolute_url()}"' in home

    models = user_client.get(reverse("picker")).content.decode()
    assert 'href="/chat/new?model=embedding/qwen3-8b" aria-label="Chat with qwen3-8b · embedding"' in models
    start = user_client.get(reverse("chat_new"), {"model": "embedding/qwen3-8b"}).content.decode()
    assert '<option value="embedding/qwen3-8b" selected>' in start
    start = user_client.get(reverse("chat_index"), {"model": "embedding/qwen3-8b"}).content.decode()
    assert '<option value="embedding/qwen3-8b" selected>' in start
