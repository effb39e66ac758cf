"""Limits and clear refusals: body sizes, nesting, favorites, CSRF for API clients."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connections
from django.test import Client

from boochat.models import ChatSession, Message
from settings_app.models import Favorite
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    client = Client()
    client.force_login(django_user_model.objects.create_user("alice"))
    return client


def test_deeply_nested_json_in_settings_is_a_400(alice):
    body = '{"favorite_models": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = alice.patch("/api/settings", body, content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]


def test_favorites_past_the_limit_are_refused_whole(alice, settings):
    settings.BOOCHAT_MAX_FAVORITES = 5
    too_many = [f"sam-desktop/m{n}" for n in range(6)]
    response = alice.patch("/api/settings", {"favorite_models": too_many}, content_type="application/json")
    assert response.status_code == 400 and "at most 5 favorites" in response.json()["error"]
    assert not Favorite.objects.exists()

    alice.patch("/api/settings", {"favorite_models": too_many[:4]}, content_type="application/json")
    response = alice.patch("/api/settings", {"favorite_models_add": too_many[4:]}, content_type="application/json")
    assert response.status_code == 400 and "at most 5 favorites" in response.json()["error"]
    assert Favorite.objects.count() == 4  # the add that fitted was not kept either: all or nothing
    response = alice.post("/favorites/toggle", {"star": "sam-desktop/m4"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    response = alice.post("/favorites/toggle", {"star": "sam-desktop/m5"}, headers={"HX-Request": "true"})
    assert response.status_code == 400 and "at most 5 favorites" in response.content.decode()
    assert Favorite.objects.count() == 5


def test_a_100000_id_list_is_refused_at_once_and_500_are_one_bulk_write(alice, django_assert_max_num_queries):
    huge = [f"sam-desktop/m{n}" for n in range(100_000)]
    response = alice.patch("/api/settings", json.dumps({"favorite_models": huge}), content_type="application/json")
    assert response.status_code == 400 and "100000 entries" in response.json()["error"]
    many = [f"sam-desktop/m{n}" for n in range(400)] + ["sam-desktop/m0"] * 100  # duplicates collapse
    with django_assert_max_num_queries(25):
        response = alice.patch("/api/settings", {"favorite_models": many}, content_type="application/json")
    assert response.status_code == 200 and len(response.json()["favorite_models"]) == 400
    reordered = list(reversed(many[:400]))
    with django_assert_max_num_queries(25):
        response = alice.patch("/api/settings", {"favorite_models": reordered}, content_type="application/json")
    assert response.json()["favorite_models"] == reordered


@pytest.mark.django_db(transaction=True)
def test_concurrent_stars_and_unstars_of_one_model_end_as_the_last_asked(django_user_model):
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    user = django_user_model.objects.create_user("tabs")

    def press(field):
        tab = Client()
        tab.force_login(user)
        try:
            return tab.post("/favorites/toggle", {field: "sam-desktop/qwen3-8b"}, headers={"HX-Request": "true"}).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(press, ["star"] * 100)) == {200}
    assert Favorite.objects.ids_for(user) == ["sam-desktop/qwen3-8b"]
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(press, ["star", "unstar"] * 50)) == {200}
    assert press("unstar") == 200 and Favorite.objects.ids_for(user) == []
    assert press("star") == 200 and Favorite.objects.ids_for(user) == ["sam-desktop/qwen3-8b"]


def test_an_api_client_without_a_csrf_token_gets_json(django_user_model):
    anonymous = Client(enforce_csrf_checks=True)
    response = anonymous.patch("/api/settings", {"favorite_models": []}, content_type="application/json")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert "CSRF check failed" in response.json()["error"]
    page = anonymous.post("/favorites/toggle", {"star": "x/y"})
    assert page.status_code == 403 and "text/html" in page["Content-Type"]


@pytest.mark.django_db(transaction=True)
def test_a_chat_send_past_the_body_limit_is_a_413(asgi_server, session_cookie, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    user, cookies = session_cookie()
    chat = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b")
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
        client.get(chat.get_absolute_url())
        token = {"X-CSRFToken": client.cookies["csrftoken"]}
        streamed = client.post(f"/chat/{chat.pk}/send", data={"content": "x" * 20_000},
                               headers={**token, "X-BooChat-Stream": "1"})
        assert streamed.status_code == 413 and "larger than 10000 bytes" in streamed.json()["error"]
        form = client.post(f"/chat/{chat.pk}/send", data={"content": "x" * 20_000}, headers=token)
        assert form.status_code == 413 and "larger than 10000 bytes" in form.text
    assert not Message.objects.exists()
