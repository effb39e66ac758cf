import json

import pytest
from django.test import Client
from django.urls import reverse

from providers.models import Provider
from settings_app.models import Favorite, UserSettings
from tests.factories import make_provider

pytestmark = pytest.mark.django_db
URL = "/api/settings"


@pytest.fixture
def providers():
    make_provider(slug="sam-desktop", is_default=True)
    make_provider(slug="embedding")


def patch(client, body):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.patch(URL, data, content_type="application/json")


def test_get_starts_empty(user_client):
    response = user_client.get(URL)
    assert response.status_code == 200
    assert response.json() == {"default_model": None, "favorite_models": [], "theme": "system"}


def test_patch_normalizes_bare_and_legacy_ids_and_collapses_duplicates(user_client, providers):
    response = patch(user_client, {"favorite_models": [
        "embedding/qwen3-8b", "qwen3-8b", "llama-swap/qwen3-8b", "sam-desktop/box2/gpt-oss-20b", "embedding/qwen3-8b",
    ]})
    assert response.status_code == 200, response.content
    expected = ["embedding/qwen3-8b", "sam-desktop/qwen3-8b", "sam-desktop/box2/gpt-oss-20b"]
    assert response.json()["favorite_models"] == expected
    assert user_client.get(URL).json()["favorite_models"] == expected


def test_malformed_ids_are_rejected_naming_each_one_and_nothing_is_written(user_client, providers):
    patch(user_client, {"favorite_models": ["sam-desktop/qwen3-8b"]})
    response = patch(user_client, {"favorite_models": ["ok/../x", 5, "nowhere/qwen3-8b", "sam-desktop/fine", ""]})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e.split(":")[0] for e in errors] == [
        "favorite_models[0]", "favorite_models[1]", "favorite_models[2]", "favorite_models[4]",
    ]
    assert "unknown provider 'nowhere'" in errors[2]
    assert Favorite.objects.ids_for(Favorite.objects.get().user) == ["sam-desktop/qwen3-8b"]


@pytest.mark.parametrize("body, message", [
    ("{nope", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"favourites": []}, "unknown field(s): favourites"),
    ({"favorite_models": "sam-desktop/qwen3-8b"}, "favorite_models must be a list"),
    ({"favorite_models_add": {"a": 1}}, "favorite_models_add must be a list"),
    ({"default_model": 12}, "default_model: 12 is not a string"),
    ({"default_model": "nowhere/x"}, "unknown provider 'nowhere'"),
])
def test_bad_bodies_are_400_with_a_message(user_client, providers, body, message):
    response = patch(user_client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_unavailable_favorites_are_kept_until_removed(user_client, providers):
    # No host answers for these providers at all: every favorite is unavailable.
    patch(user_client, {"favorite_models": ["sam-desktop/qwen3-8b", "embedding/nomic-embed"]})
    assert patch(user_client, {"default_model": "sam-desktop/qwen3-8b"}).status_code == 200
    assert user_client.get(reverse("picker")).status_code == 200
    assert user_client.get(reverse("settings")).status_code == 200
    assert user_client.get(URL).json()["favorite_models"] == ["sam-desktop/qwen3-8b", "embedding/nomic-embed"]

    response = patch(user_client, {"favorite_models_remove": ["embedding/nomic-embed"]})
    assert response.json()["favorite_models"] == ["sam-desktop/qwen3-8b"]


def test_favorites_of_a_removed_provider_survive_a_round_trip(user_client, providers):
    patch(user_client, {"favorite_models": ["embedding/qwen3-8b", "sam-desktop/qwen3-8b"]})
    Provider.objects.filter(slug="embedding").delete()
    stored = user_client.get(URL).json()["favorite_models"]
    response = patch(user_client, {"favorite_models": stored})
    assert response.status_code == 200
    assert response.json()["favorite_models"] == stored
    # ...but a new id on an unknown provider is still refused
    assert patch(user_client, {"favorite_models_add": ["gone/x"]}).status_code == 400


def test_unrelated_writes_never_touch_favorites(user_client, providers):
    patch(user_client, {"favorite_models": ["sam-desktop/a", "sam-desktop/b"]})
    response = patch(user_client, {"default_model": "qwen3-8b"})
    assert response.json() == {"default_model": "sam-desktop/qwen3-8b", "favorite_models": ["sam-desktop/a", "sam-desktop/b"],
                               "theme": "system"}
    assert patch(user_client, {"default_model": None}).json()["default_model"] is None
    assert user_client.get(URL).json()["favorite_models"] == ["sam-desktop/a", "sam-desktop/b"]


def test_add_and_remove_operations_commute(user_client, providers):
    patch(user_client, {"favorite_models": ["sam-desktop/a"]})
    patch(user_client, {"favorite_models_add": ["sam-desktop/b", "a"]})
    response = patch(user_client, {"favorite_models_add": ["sam-desktop/c"], "favorite_models_remove": ["sam-desktop/b"]})
    assert response.json()["favorite_models"] == ["sam-desktop/a", "sam-desktop/c"]


def test_replacing_the_list_keeps_its_order(user_client, providers):
    patch(user_client, {"favorite_models": ["sam-desktop/a", "sam-desktop/b", "sam-desktop/c"]})
    response = patch(user_client, {"favorite_models": ["sam-desktop/c", "sam-desktop/a"]})
    assert response.json()["favorite_models"] == ["sam-desktop/c", "sam-desktop/a"]


def test_login_is_required_and_answered_in_json(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert "log in" in response.json()["error"]


def test_csrf_is_enforced_for_session_users(django_user_model, providers):
    user = django_user_model.objects.create_user("bob", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert patch(client, {"favorite_models": ["sam-desktop/a"]}).status_code == 403
    client.get(reverse("settings"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.patch(URL, json.dumps({"favorite_models": ["sam-desktop/a"]}),
                            content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 200


def test_each_user_sees_only_their_own(django_user_model, providers):
    alice, bob = Client(), Client()
    alice.force_login(django_user_model.objects.create_user("alice2"))
    bob.force_login(django_user_model.objects.create_user("bob2"))
    patch(alice, {"favorite_models": ["sam-desktop/a"]})
    assert bob.get(URL).json()["favorite_models"] == []
    patch(bob, {"favorite_models": ["sam-desktop/b"]})
    assert alice.get(URL).json()["favorite_models"] == ["sam-desktop/a"]
    assert UserSettings.objects.count() == 2
