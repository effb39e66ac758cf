"""The theme: saved per user (settings page and API), written by the server on every page."""

import json

import pytest
from django.urls import reverse

from settings_app.models import UserSettings
from tests.factories import add_message

pytestmark = pytest.mark.django_db


def html_theme(response):
    body = response.content.decode()
    start = body.index("<html")
    return body[start:body.index(">", start)]


def test_every_page_follows_the_system_until_the_user_chooses(user_client, client):
    assert 'data-theme="system"' in html_theme(user_client.get(reverse("home")))
    client.logout()
    assert 'data-theme="system"' in html_theme(client.get(reverse("login")))


def test_the_settings_page_saves_the_theme_and_every_page_has_it(user_client):
    response = user_client.post(reverse("settings"), {"theme": "dark"})
    assert response.status_code == 302
    assert UserSettings.objects.get().theme == "dark"
    for name in ("home", "settings", "chat_index", "picker", "arena_index"):
        assert 'data-theme="dark"' in html_theme(user_client.get(reverse(name))), name
    page = user_client.get(reverse("settings")).content.decode()
    assert '<input type="radio" name="theme" value="dark" checked>' in page


def test_an_unknown_theme_is_refused_with_a_message(user_client):
    response = user_client.post(reverse("settings"), {"theme": "neon"})
    assert response.status_code == 400
    assert "Theme: choose light, dark or as the system." in response.content.decode()
    assert UserSettings.objects.get().theme == "system"


def test_the_api_reads_and_changes_the_theme(user_client):
    response = user_client.patch("/api/settings", json.dumps({"theme": "light"}), content_type="application/json")
    assert response.status_code == 200 and response.json()["theme"] == "light"
    assert user_client.get("/api/settings").json()["theme"] == "light"
    bad = user_client.patch("/api/settings", json.dumps({"theme": 3}), content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"] == "theme: 3 is not one of system, light, dark"
    assert UserSettings.objects.get().theme == "light"


def test_fragments_do_not_read_the_theme(user_client, django_user_model):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from boochat.models import ChatSession

    chat = ChatSession.objects.create(user=django_user_model.objects.get(username="alice"), model_id="x/y")
    message = add_message(session=chat, role="assistant", content="hi")
    user_client.get(reverse("chat_message", args=[message.pk]))  # warm the session and the user
    with CaptureQueriesContext(connection) as captured:
        user_client.get(reverse("chat_message", args=[message.pk]))
    assert captured.captured_queries and not any("settings_app_usersettings" in q["sql"] for q in captured.captured_queries)
