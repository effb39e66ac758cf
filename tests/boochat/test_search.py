"""Searching chats: titles and message text (full-text on PostgreSQL), marked, only one's own."""

import pytest
from django.urls import reverse

from boochat.models import ChatSession
from tests.boochat.test_chat import new_session
from tests.factories import add_message

pytestmark = pytest.mark.django_db


def search(client, q):
    response = client.get(reverse("chat_search"), {"q": q})
    assert response.status_code == 200 and response.template_name == "chat_search.html"
    return response


def test_titles_and_messages_match_and_open_at_the_message(user_client):
    tides = new_session(user_client, "sam-desktop/qwen3-8b", title="Ocean tides")
    asked = add_message(session=tides, role="user", content="Why does the moon pull the ocean?")
    other = new_session(user_client, "sam-desktop/qwen3-8b", title="Cooking")
    add_message(session=other, role="assistant", content="Boil the pasta in salted water.",
                           model_id="sam-desktop/qwen3-8b", provider="sam-desktop", wire_model="qwen3-8b")

    hits = search(user_client, "ocean").context_data["hits"]
    assert [(h.session.title, h.message) for h in hits] == [("Ocean tides", None), ("Ocean tides", asked)]
    body = search(user_client, "moon ocean").content.decode()
    assert f'{tides.get_absolute_url()}?at={asked.pk}#message-{asked.pk}' in body
    assert "Why does the <mark>moon</mark> pull the <mark>ocean</mark>?" in body
    assert [h.session.title for h in search(user_client, "pasta").context_data["hits"]] == ["Cooking"]
    assert search(user_client, "moon pasta").context_data["hits"] == []  # every word must match


def test_what_is_found_is_escaped_and_only_ones_own(user_client, django_user_model):
    mine = new_session(user_client, "sam-desktop/qwen3-8b", title="Mine")
    add_message(session=mine, role="user", content="<script>alert(1)</script> marker word")
    theirs = ChatSession.objects.create(user=django_user_model.objects.create_user("bob"), model_id="x/y", title="marker")
    add_message(session=theirs, role="user", content="marker in bob's chat")
    response = search(user_client, "marker")
    assert [h.session for h in response.context_data["hits"]] == [mine]
    body = response.content.decode()
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt; <mark>marker</mark> word" in body


def test_an_empty_search_finds_nothing_and_says_what_to_do(user_client):
    new_session(user_client, "sam-desktop/qwen3-8b", title="Anything")
    response = search(user_client, "   ")
    assert response.context_data["hits"] == [] and "Type words to find." in response.content.decode()
