"""Text no database stores (U+0000, which PostgreSQL refuses; a lone surrogate, which neither database
can encode) is refused at every door with a 400 naming the field, the same on SQLite and PostgreSQL,
and nothing is written. Error messages never quote unbounded input."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from boochat.models import ChatSession, Message, Preset
from settings_app.models import Favorite, UserSettings
from tests.boochat.test_chat import new_session
from tests.factories import make_provider

pytestmark = pytest.mark.django_db
NUL = "\x00"


@pytest.fixture
def chat(user_client):
    make_provider(slug="sam-desktop", is_default=True)  # a dead address: nothing may reach a host
    return new_session(user_client, "sam-desktop/qwen3-8b", title="Kept")


@pytest.mark.parametrize("header", [{"X-BooChat-Stream": "1"}, {}])
def test_a_send_with_a_nul_is_refused(user_client, chat, header):
    response = user_client.post(reverse("chat_send", args=[chat.pk]), {"content": f"Hello{NUL}there"}, headers=header,
                                follow=not header)
    text = response.json()["error"] if header else response.content.decode()
    assert response.status_code == 400 if header else response.redirect_chain
    assert "Nothing was sent: the message contains a NUL character (U+0000), which cannot be stored." in text
    assert not Message.objects.exists()


@pytest.mark.parametrize("htmx", [True, False])
def test_a_rename_with_a_nul_is_refused(user_client, chat, htmx):
    response = user_client.post(reverse("chat_rename", args=[chat.pk]), {"title": f"New{NUL}title"},
                                headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 400
    assert response.content.decode() == "Not renamed: the title contains a NUL character (U+0000), which cannot be stored."
    assert ChatSession.objects.get(pk=chat.pk).title == "Kept"


def test_a_search_with_a_nul_is_refused(user_client, chat):
    response = user_client.get(reverse("chat_search"), {"q": f"Kept{NUL}"})
    assert response.status_code == 400 and response.context_data["hits"] == []
    assert "Nothing was searched: the search contains a NUL character (U+0000)" in response.content.decode()


@pytest.mark.parametrize("field, label", [("preset_name", "preset name"), ("system_prompt", "system prompt")])
def test_a_preset_with_a_nul_is_refused(user_client, chat, field, label):
    data = {"keep": "preset", "preset_name": "Terse", "system_prompt": "Be brief.", field: f"Be{NUL}brief"}
    response = user_client.post(reverse("chat_settings", args=[chat.pk]), data, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert response.content.decode() == f"Nothing was saved: the {label} contains a NUL character (U+0000), which cannot be stored."
    assert not Preset.objects.exists() and ChatSession.objects.get(pk=chat.pk).system_prompt == ""


def boochat_export(**changes):
    message = {"id": 1, "parent": None, "role": "user", "content": "Hello", "model": ""}
    chat = {"format": "boochat.chat/1", "title": "Imported", "model": "a/b",
            "messages": [message, {**message, "id": 2, "parent": 1, "role": "assistant", "content": "Hi", "model": "a/b"}]}
    for path, value in changes.items():
        *within, last = path.split(".")
        target = chat
        for step in within:
            target = target[int(step)] if isinstance(target, list) else target[step]
        target[last] = value
    return json.dumps(chat).encode()  # ensure_ascii: a lone surrogate is written as its \ud800 escape


@pytest.mark.parametrize("bad", [NUL, "\ud800"])
@pytest.mark.parametrize("path, error", [
    ("title", "Chat 1: its title contains"),
    ("model", "Chat 1: its model contains"),
    ("messages.1.content", "Chat 1 (Imported), message 2: its text contains"),
    ("messages.1.model", "Chat 1 (Imported), message 2: its model contains"),
])
def test_an_import_with_unstorable_text_is_refused_naming_the_message(user_client, path, error, bad):
    raw = boochat_export(**{path: f"x{bad}y"})
    assert (b"\\u0000" if bad == NUL else b"\\ud800") in raw
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile("export.json", raw, "application/json")})
    assert response.status_code == 400
    problem = "a NUL character (U+0000)" if bad == NUL else "a lone surrogate (U+D800)"
    assert f"Nothing was imported: {error} {problem}, which cannot be stored." in response.content.decode()
    assert not ChatSession.objects.exists() and not Message.objects.exists()


def test_a_chatgpt_export_with_a_nul_names_the_node(user_client):
    from tests.boochat.test_import import CHATGPT

    raw = json.dumps(CHATGPT).replace("About ten minutes.", "About ten\\u0000 minutes.").encode()
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile("c.json", raw, "application/json")})
    assert response.status_code == 400
    assert ("Nothing was imported: Chat 1 (Pasta), message “n3”: its text contains a NUL character (U+0000), "
            "which cannot be stored.") in response.content.decode()
    assert not ChatSession.objects.exists()


@pytest.mark.parametrize("body, error", [
    ('{"favorite_models": ["sam-desktop/qwen\\ud800"]}', "favorite_models[0] contains a lone surrogate (U+D800)"),
    ('{"favorite_models_add": ["a", "sam-desktop/q\\udfff"]}', "favorite_models_add[1] contains a lone surrogate (U+DFFF)"),
    ('{"default_model": "sam-desktop/qwen\\ud800"}', "default_model contains a lone surrogate (U+D800)"),
    ('{"theme": "dark\\ud800"}', "theme contains a lone surrogate (U+D800)"),
    ('{"the\\ud800me": "dark"}', "a key of the body contains a lone surrogate (U+D800)"),
    ('{"default_model": "sam-desktop/q\\u0000"}', "default_model contains a NUL character (U+0000)"),
])
def test_the_settings_api_refuses_unstorable_text_in_json(user_client, chat, body, error):
    response = user_client.patch("/api/settings", body, content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["error"] == f"{error}, which cannot be stored."
    assert not Favorite.objects.exists() and not UserSettings.objects.exclude(default_model="", theme="system").exists()


@pytest.mark.parametrize("body, field", [
    ({"theme": "x" * 10_000_000}, "theme"),
    ({"default_model": "Not a slug/" + "x" * 10_000_000}, "default_model"),
    ({"favorite_models": ["Not a slug/" + "x" * 10_000_000]}, "favorite_models[0]"),
    ({"x" * 10_000_000: 1}, "unknown field(s)"),
    ({"theme": list(range(1_000_000))}, "theme"),
])
def test_a_huge_value_is_not_echoed_in_the_error(user_client, chat, body, field):
    response = user_client.patch("/api/settings", json.dumps(body), content_type="application/json")
    assert response.status_code == 400 and len(response.content) < 1000, len(response.content)
    assert field in response.json()["error"]
