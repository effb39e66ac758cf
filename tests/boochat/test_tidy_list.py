"""A tidy chat list: no empty chats, archive, the trash with Undo, folders, several chats at once."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from boochat.models import ChatSession, Folder, Message
from tests.factories import add_message, make_provider

pytestmark = pytest.mark.django_db


def me(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def chat_with_message(client, title="", text="hello"):
    chat = ChatSession.objects.create(user=me(client), model_id="sam-desktop/qwen3-8b", title=title)
    add_message(session=chat, role="user", content=text)
    return chat


def listed(client, url=None):
    return [c.pk for c in client.get(url or reverse("chat_index")).context_data["sessions"]]


def page(client, url=None):
    return client.get(url or reverse("chat_index")).content.decode()


STREAM = {"X-BooChat-Stream": "1"}


def turns(host):
    return [r.json() for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]  # not titles


class TestNoEmptyChats:
    """A chat is saved with its first message: "+ New chat" opens a page and saves nothing."""

    def test_new_chat_clicks_and_reloads_save_nothing(self, user_client, hosts):
        kept = chat_with_message(user_client, "Kept")
        button = f'<a class="button quiet new-chat" href="{reverse("chat_new")}">'
        assert button in page(user_client, kept.get_absolute_url())  # "+ New chat" beside a chat
        for _ in range(2):
            response = user_client.get(reverse("chat_new"))
            assert response.status_code == 200 and button in response.content.decode()
        body = response.content.decode()
        assert '<h1 id="session-title" data-untitled>New chat</h1>' in body
        assert f'<form id="composer" method="post" action="{reverse("chat_new")}"' in body and "data-new-chat" in body
        assert 'href="#composer-input">Skip to the message box' in body
        user_client.post(reverse("chat_start"), {"model_id": "sam-desktop/qwen3-8b", "content": "Hello"})
        user_client.get(reverse("chat_new"), {"model": "sam-desktop/qwen3-8b"})  # Home's start, then a reload
        user_client.get(reverse("chat_new"), {"model": "sam-desktop/qwen3-8b"})
        assert list(ChatSession.objects.all()) == [kept] and Message.objects.count() == 1
        assert listed(user_client, reverse("chat_new")) == [kept.pk]

    def test_the_first_message_saves_the_chat_with_its_turn_and_what_was_set_before(self, user_client, hosts):
        from django.core.files.uploadedfile import SimpleUploadedFile

        notes = SimpleUploadedFile("notes.txt", b"Tides follow the moon.", content_type="text/plain")
        response = user_client.post(reverse("chat_new"), {
            "model_id": "sam-desktop/qwen3-30b", "content": "Summarize my notes", "attachments": [notes],
            "system_prompt": "  Answer in French.  ", "temperature": "0.3", "top_p": "", "max_tokens": "50"})
        chat = ChatSession.objects.get()
        assert response.status_code == 302 and response["Location"] == chat.get_absolute_url()
        assert (chat.model_id, chat.system_prompt, chat.parameters) == (
            "sam-desktop/qwen3-30b", "Answer in French.", {"temperature": 0.3, "max_tokens": 50})
        question, answer = chat.messages.order_by("id")
        assert (question.role, question.content, answer.role, answer.state) == ("user", "Summarize my notes", "assistant", "complete")
        assert [a.name for a in question.attachments.all()] == ["notes.txt"]
        (sent,) = turns(hosts["sam-desktop"])
        assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
        assert "Tides follow the moon." in str(sent["messages"][-1]["content"])
        assert (sent["temperature"], sent["max_tokens"]) == (0.3, 50) and "top_p" not in sent
        assert listed(user_client) == [chat.pk]

    def test_a_refused_first_message_saves_nothing(self, user_client, hosts):
        url = reverse("chat_new")
        first = {"model_id": "sam-desktop/qwen3-8b", "content": "Hello"}
        refusals = [
            ({**first, "content": "  "}, 400, "The message is empty."),
            ({**first, "temperature": "9", "system_prompt": ""}, 400, "Temperature: Ensure this value is less than or equal to 2."),
            ({**first, "system_prompt": "a\x00b"}, 400, "the system prompt contains"),
            ({**first, "model_id": "nowhere/qwen3-8b"}, 400, "cannot start a chat"),
            ({**first, "content": "x" * 200_001}, 413, "longer than 200000 characters"),
        ]
        for data, status, error in refusals:
            response = user_client.post(url, data, headers=STREAM)
            assert response.status_code == status and error in response.json()["error"], data
            assert "X-BooChat-Chat" not in response
        image = {**first, "attachments": [self.png()]}  # qwen3-8b is not known to take images
        assert user_client.post(url, image, headers=STREAM).status_code == 400
        assert not ChatSession.objects.exists() and not Message.objects.exists()
        assert turns(hosts["sam-desktop"]) == []

    def test_a_refused_first_message_by_plain_form_keeps_the_text_and_the_panel(self, user_client, hosts):
        response = user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b", "content": "Keep me",
                                                          "system_prompt": "Be brief.", "temperature": "9"})
        body = response.content.decode()
        assert response.status_code == 400 and response.template_name == "chat.html"
        assert "Nothing was sent: Temperature: Ensure this value is less than or equal to 2." in body
        assert ">Keep me</textarea>" in body and ">\nBe brief.</textarea>" in body and 'value="9"' in body
        assert "data-autosend" not in body
        assert not ChatSession.objects.exists()

    @staticmethod
    def png():
        from django.core.files.uploadedfile import SimpleUploadedFile

        from tests.files import png

        return SimpleUploadedFile("red.png", png(), content_type="image/png")

    def test_old_empty_untitled_chats_are_deleted_by_the_upgrade(self, user_client):
        from importlib import import_module

        from django.apps import apps

        make_provider(slug="sam-desktop", is_default=True)
        old, new = [ChatSession.objects.create(user=me(user_client), model_id="sam-desktop/qwen3-8b") for _ in range(2)]
        ChatSession.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=2))
        titled = ChatSession.objects.create(user=me(user_client), model_id="sam-desktop/qwen3-8b", title="Plans")
        used = chat_with_message(user_client)
        ChatSession.objects.exclude(pk=new.pk).update(created_at=timezone.now() - timedelta(days=3))
        import_module("boochat.migrations.0011_delete_empty_untitled_chats").delete_empty_chats(apps, None)
        assert set(ChatSession.objects.all()) == {new, titled, used}  # a chat of this minute may be taking its first message


class TestTrash:
    def test_delete_needs_no_page_and_offers_undo_once(self, user_client):
        chat = chat_with_message(user_client, "Doomed")
        assert f'<form method="post" action="{reverse("chat_delete", args=[chat.pk])}"' in page(user_client, chat.get_absolute_url())
        response = user_client.post(reverse("chat_delete", args=[chat.pk]), follow=True)
        body = response.content.decode()
        assert "Moved “Doomed” to the trash (kept 30 days)." in body
        assert f'<input type="hidden" name="chats" value="{chat.pk}">' in body and "Undo delete" in body
        assert response.context_data["sessions"].object_list == []
        assert user_client.get(chat.get_absolute_url()).status_code == 404
        assert "Undo delete" not in page(user_client)  # offered once

        response = user_client.post(reverse("chat_restore"), {"chats": [chat.pk], "next": reverse("chat_index")}, follow=True)
        assert "Restored 1 chat." in response.content.decode()
        assert listed(user_client) == [chat.pk] and user_client.get(chat.get_absolute_url()).status_code == 200
        assert Message.objects.filter(session=chat).count() == 1

    def test_a_trashed_chats_messages_cannot_be_reached_sent_to_or_found(self, user_client):
        chat = chat_with_message(user_client, "Gone", text="findable words")
        question = chat.messages.get()
        user_client.post(reverse("chat_delete", args=[chat.pk]))
        assert user_client.get(reverse("chat_message", args=[question.pk])).status_code == 404
        assert user_client.post(reverse("chat_edit", args=[question.pk]), {"content": "x"}).status_code == 404
        assert user_client.post(reverse("chat_send", args=[chat.pk]), {"content": "x"}).status_code == 404
        assert user_client.get(reverse("chat_search"), {"q": "findable"}).context_data["hits"] == []

    def test_the_trash_keeps_chats_for_the_days_set_then_deletes_them(self, user_client, settings):
        settings.BOOCHAT_TRASH_DAYS = 7
        recent, old = chat_with_message(user_client, "Recent"), chat_with_message(user_client, "Old")
        user_client.post(reverse("chat_bulk"), {"action": "delete", "chats": [recent.pk, old.pk]})
        ChatSession.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=8))
        trash = user_client.get(reverse("chat_trash"))
        assert [c.pk for c in trash.context_data["chats"]] == [recent.pk]
        assert "stay here 7 days" in trash.content.decode()
        assert not ChatSession.objects.filter(pk=old.pk).exists()

    def test_restore_and_delete_for_good_from_the_trash(self, user_client):
        a, b = chat_with_message(user_client, "A"), chat_with_message(user_client, "B")
        user_client.post(reverse("chat_archive", args=[a.pk]), {"archived": "1"})
        deleted = user_client.post(reverse("chat_bulk"), {"action": "delete", "chats": [a.pk, b.pk],
                                                          "next": reverse("chat_archived")}, follow=True)
        assert "Moved 2 chats to the trash" in deleted.content.decode() and "Undo delete" in deleted.content.decode()
        user_client.post(reverse("chat_bulk"), {"action": "restore", "chats": [a.pk], "next": reverse("chat_trash")})
        user_client.post(reverse("chat_bulk"), {"action": "destroy", "chats": [b.pk], "next": reverse("chat_trash")})
        assert not ChatSession.objects.filter(pk=b.pk).exists()
        # A was archived before: it comes back archived.
        assert [c.pk for c in user_client.get(reverse("chat_archived")).context_data["chats"]] == [a.pk]

    def test_destroy_only_takes_chats_in_the_trash(self, user_client):
        chat = chat_with_message(user_client, "Live")
        response = user_client.post(reverse("chat_bulk"), {"action": "destroy", "chats": [chat.pk]}, follow=True)
        assert "Nothing was done: 1 chat of those are not in the trash." in response.content.decode()
        assert ChatSession.objects.filter(pk=chat.pk).exists()

    def test_without_trash_days_a_delete_is_for_good_and_offers_no_undo(self, user_client, settings):
        settings.BOOCHAT_TRASH_DAYS = 0
        chat = chat_with_message(user_client, "Doomed")
        body = user_client.post(reverse("chat_delete", args=[chat.pk]), follow=True).content.decode()
        assert "Deleted “Doomed”." in body and "Undo delete" not in body
        assert not ChatSession.objects.exists()


class TestArchive:
    def test_archived_chats_leave_the_list_are_found_by_search_and_come_back(self, user_client):
        chat, other = chat_with_message(user_client, "Old project", text="tidal data"), chat_with_message(user_client, "Other")
        response = user_client.post(reverse("chat_archive", args=[chat.pk]), {"archived": "1"}, follow=True)
        assert "Archived “Old project”." in response.content.decode()
        assert listed(user_client) == [other.pk]
        assert [c.pk for c in user_client.get(reverse("chat_archived")).context_data["chats"]] == [chat.pk]
        found = user_client.get(reverse("chat_search"), {"q": "tidal"})
        assert [h.session.pk for h in found.context_data["hits"]] == [chat.pk]
        assert '<span class="badge">archived</span>' in found.content.decode()
        assert user_client.get(chat.get_absolute_url()).status_code == 200  # still opens, with Unarchive
        assert ">Unarchive</button>" in page(user_client, chat.get_absolute_url())

        user_client.post(reverse("chat_archive", args=[chat.pk]), {"archived": "0"})
        assert sorted(listed(user_client)) == sorted([chat.pk, other.pk])


class TestSeveralAtOnce:
    def test_archive_delete_and_move_several(self, user_client):
        a, b, c = (chat_with_message(user_client, t) for t in "ABC")
        folder = Folder.objects.create(user=me(user_client), name="Work")
        body = page(user_client)
        assert body.count('class="pick-chat"') == 3 and 'aria-label="Select “A”"' in body
        response = user_client.post(reverse("chat_bulk"), {"action": "move", "folder": folder.pk, "chats": [a.pk, b.pk]},
                                    follow=True)
        assert "Moved 2 chats to “Work”." in response.content.decode()
        assert set(folder.chats.values_list("pk", flat=True)) == {a.pk, b.pk}
        user_client.post(reverse("chat_bulk"), {"action": "archive", "chats": [a.pk, c.pk]})
        assert listed(user_client) == [b.pk]
        user_client.post(reverse("chat_bulk"), {"action": "delete", "chats": [b.pk]})
        assert listed(user_client) == [] and ChatSession.objects.in_trash(me(user_client)).get() == b

    def test_a_chat_not_the_users_or_gone_means_nothing_is_done(self, user_client, django_user_model):
        mine = chat_with_message(user_client, "Mine")
        theirs = ChatSession.objects.create(user=django_user_model.objects.create_user("mallory"), model_id="x/y", title="T")
        response = user_client.post(reverse("chat_bulk"), {"action": "archive", "chats": [mine.pk, theirs.pk, 999999]},
                                    follow=True)
        assert "Nothing was done: 2 chats of those no longer exist." in response.content.decode()
        mine.refresh_from_db(), theirs.refresh_from_db()
        assert mine.archived_at is None and theirs.archived_at is None

    @pytest.mark.parametrize(("data", "message"), [
        ({"action": "explode", "chats": ["1"]}, "Unknown action 'explode'"),
        ({"action": "archive", "chats": ["1; DROP"]}, "Chats are named by their numbers."),
    ])
    def test_bad_requests_are_refused_saying_why(self, user_client, data, message):
        response = user_client.post(reverse("chat_bulk"), data)
        assert response.status_code == 400 and message in response.content.decode()

    def test_nothing_selected_says_so(self, user_client):
        response = user_client.post(reverse("chat_bulk"), {"action": "delete"}, follow=True)
        assert "Select the chats first." in response.content.decode()

    def test_next_must_be_a_path_of_this_site(self, user_client):
        chat = chat_with_message(user_client)
        response = user_client.post(reverse("chat_bulk"), {"action": "archive", "chats": [chat.pk],
                                                            "next": "//evil.example/x"})
        assert response["Location"] == reverse("chat_index")


class TestFolders:
    def test_create_rename_delete_and_the_list_groups_by_folder(self, user_client):
        a, b = chat_with_message(user_client, "Alpha"), chat_with_message(user_client, "Beta")
        response = user_client.post(reverse("folder_create"), {"name": "  Lab   notes ", "chats": [a.pk]}, follow=True)
        assert "Made the folder “Lab notes” with 1 chat." in response.content.decode()
        folder = Folder.objects.get()
        body = page(user_client)
        lab, rest = body.index("📁 Lab notes"), body.index(">Today<")
        assert lab < body.index(">Alpha<") < rest < body.index(">Beta<")

        user_client.post(reverse("folder_rename", args=[folder.pk]), {"name": "Lab"})
        assert "📁 Lab<" in page(user_client)
        response = user_client.post(reverse("folder_delete", args=[folder.pk]), follow=True)
        assert "Deleted the folder “Lab”; its 1 chat stay, in no folder." in response.content.decode()
        assert sorted(listed(user_client)) == sorted([a.pk, b.pk])

    @pytest.mark.parametrize(("name", "error"), [
        ("", "Name the folder."), ("x" * 101, "at most 100 characters"), ("a\x00b", "cannot be stored"),
    ])
    def test_bad_names_are_refused(self, user_client, name, error):
        response = user_client.post(reverse("folder_create"), {"name": name}, follow=True)
        assert error in response.content.decode() and not Folder.objects.exists()

    def test_a_name_used_already_is_refused(self, user_client):
        user_client.post(reverse("folder_create"), {"name": "Work"})
        other = Folder.objects.create(user=me(user_client), name="Home")
        response = user_client.post(reverse("folder_rename", args=[other.pk]), {"name": "Work"}, follow=True)
        assert "You have a folder named “Work” already." in response.content.decode()
        assert sorted(Folder.objects.values_list("name", flat=True)) == ["Home", "Work"]

    def test_another_users_folder_is_not_found(self, user_client, django_user_model):
        theirs = Folder.objects.create(user=django_user_model.objects.create_user("mallory"), name="Theirs")
        assert user_client.post(reverse("folder_rename", args=[theirs.pk]), {"name": "Mine"}).status_code == 404
        assert user_client.post(reverse("folder_delete", args=[theirs.pk])).status_code == 404
        chat = chat_with_message(user_client)
        response = user_client.post(reverse("chat_bulk"), {"action": "move", "folder": theirs.pk, "chats": [chat.pk]},
                                    follow=True)
        assert "that folder does not exist" in response.content.decode()
        chat.refresh_from_db()
        assert chat.folder is None


@pytest.fixture
def browserless(asgi_server, session_cookie):
    """A client of the ASGI server as the page's script is: logged in, streaming sends, CSRF token."""
    import httpx

    _, cookies = session_cookie()
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
        client.get(reverse("chat_index"))
        client.headers.update({**STREAM, "X-CSRFToken": client.cookies["csrftoken"]})
        yield client


@pytest.mark.django_db(transaction=True)
def test_the_first_message_is_answered_at_once_with_its_chats_address(browserless):
    from boochat.chat.turns import STOPPED_BEFORE_START
    from tests.fakes.llama_swap import FakeLlamaSwap

    with FakeLlamaSwap() as host:
        host.first_byte_delay = 30  # a model being loaded: the page must not wait for it to learn the chat
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        with browserless.stream("POST", reverse("chat_new"), data={"model_id": "sam-desktop/qwen3-8b", "content": "Hi"}) as response:
            chat = ChatSession.objects.get()
            answer = chat.messages.get(role="assistant")
            assert response.status_code == 200 and response.headers["x-boochat-chat"] == chat.get_absolute_url()
            assert response.headers["x-boochat-message"] == str(answer.pk)
            listing = browserless.get(chat.get_absolute_url(), headers={"X-BooChat-Stream": ""}).text
            assert f'id="session-link-{chat.pk}"' in listing and "(writing…)" in listing  # listed, in progress
            assert browserless.post(reverse("chat_stop", args=[chat.pk])).status_code == 204
            body = response.read()
    assert body.endswith(b'event: end\ndata: {"state":"interrupted","error":"%s"}\n\n' % STOPPED_BEFORE_START.encode())


@pytest.mark.django_db(transaction=True)
def test_a_first_message_the_host_refuses_keeps_its_chat_with_the_reason(browserless):
    from tests.fakes.llama_swap import FakeLlamaSwap

    with FakeLlamaSwap() as host:
        host.fault, host.fault_paths = "503", {"/v1/chat/completions"}
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        response = browserless.post(reverse("chat_new"), data={"model_id": "sam-desktop/qwen3-8b", "content": "Hi"})
    chat = ChatSession.objects.get()
    question, answer = chat.messages.order_by("id")
    assert response.headers["x-boochat-chat"] == chat.get_absolute_url() and b'"state":"failed"' in response.content
    assert question.content == "Hi" and answer.state == "failed" and "is not ready" in answer.error
