"""Chats exported as Markdown and JSON, one or all, each only by its owner."""

import json

import pytest
from django.urls import reverse

from boochat.models import ChatSession
from tests.boochat.test_chat import new_session
from tests.factories import add_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(user_client):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="Tides: near the poles?")
    add_message(session=session, role="user", content="How do tides work?")
    add_message(session=session, role="assistant", content="The **Moon** pulls.", reasoning="Think of gravity.",
                           model_id="sam-desktop/qwen3-8b", provider="sam-desktop", wire_model="qwen3-8b",
                           usage={"total_tokens": 42})
    add_message(session=session, role="assistant", content="Half", state="interrupted",
                           error="Stopped before the answer was complete.", model_id="embedding/qwen3-8b",
                           provider="embedding", wire_model="qwen3-8b")
    return session


def test_a_chat_as_markdown(user_client, chat):
    response = user_client.get(reverse("chat_export_md", args=[chat.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="tides-near-the-poles.md"'
    text = response.content.decode()
    assert text.startswith("# Tides: near the poles?\n\nModel: `sam-desktop/qwen3-8b`")
    assert "## You\n\nHow do tides work?" in text
    assert "## qwen3-8b · sam-desktop" in text and "The **Moon** pulls." in text and "Think of gravity." in text
    assert "## qwen3-8b · embedding\n\nHalf\n\n> Interrupted: Stopped before the answer was complete." in text


def test_a_chat_as_json(user_client, chat):
    response = user_client.get(reverse("chat_export_json", args=[chat.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="tides-near-the-poles.json"'
    data = json.loads(response.content)
    assert data["format"] == "boochat.chat/1" and data["title"] == "Tides: near the poles?"
    assert [(m["role"], m.get("provider"), m.get("state")) for m in data["messages"]] == [
        ("user", None, None), ("assistant", "sam-desktop", "complete"), ("assistant", "embedding", "interrupted")]
    assert data["messages"][1]["reasoning"] == "Think of gravity." and data["messages"][1]["usage"] == {"total_tokens": 42}


def test_all_chats_and_only_ones_own(user_client, chat, django_user_model):
    ChatSession.objects.create(user=django_user_model.objects.create_user("bob"), model_id="x/y", title="Bob's")
    data = json.loads(user_client.get(reverse("chat_export_all")).content)
    assert data["format"] == "boochat.chats/1" and [c["title"] for c in data["chats"]] == ["Tides: near the poles?"]
    bobs = ChatSession.objects.get(title="Bob's")
    assert user_client.get(reverse("chat_export_md", args=[bobs.pk])).status_code == 404
    assert user_client.get(reverse("chat_export_json", args=[bobs.pk])).status_code == 404
