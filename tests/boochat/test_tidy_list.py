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


class TestNoEmptyChats:
    @pytest.fixture(autouse=True)
    def _provider(self):
        make_provider(slug="sam-desktop", is_default=True)

    def test_new_chat_clicks_leave_one_chat_listed_once_it_holds_a_message(self, user_client):
        first = user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b"})
        second = user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/gpt-oss-20b"})
        assert first["Location"] == second["Location"]  # the empty chat is reused
        chat = ChatSession.objects.get()
        assert chat.model_id == "sam-desktop/gpt-oss-20b"  # with the model chosen last
        assert listed(user_client) == [] and f'id="session-link-{chat.pk}"' not in page(user_client)
        assert listed(user_client, chat.get_absolute_url()) == [chat.pk]  # except while it is on screen

        add_message(session=chat, role="user", content="hi")
        assert listed(user_client) == [chat.pk]
        third = user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b"})
        assert third["Location"] != first["Location"] and ChatSession.objects.count() == 2

    def test_a_chat_renamed_before_its_first_message_is_kept_and_listed(self, user_client):
        user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b"})
        chat = ChatSession.objects.get()
        user_client.post(reverse("chat_rename", args=[chat.pk]), {"title": "Plans"})
        assert listed(user_client) == [chat.pk]
        user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b"})
        assert ChatSession.objects.count() == 2


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
