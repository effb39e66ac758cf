"""The model a new chat starts with: the user's last one while it is served, else the admin's
default, else the first favorite, else the default provider's first chat model."""

import pytest
from django.urls import reverse

from boochat.models import ChatSession
from providers.models import ModelOverride, Provider
from settings_app.models import Favorite
from tests.factories import add_message

pytestmark = pytest.mark.django_db


def me(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def offered(client):
    """The model Home, the chat start page and "+ New chat" (no model asked for) select."""
    home = client.get(reverse("home")).context_data["selected"]
    start = client.get(reverse("chat_index")).context_data["selected"]
    new = client.get(reverse("chat_new")).context_data["selected"]
    assert home == start == new
    return home


def used(client, model_id):
    chat = ChatSession.objects.create(user=me(client), model_id=model_id, title="used")
    add_message(session=chat, role="user", content="hi")


def test_the_last_used_model_while_it_is_served(user_client, hosts, settings):
    settings.BOOCHAT_DEFAULT_MODEL = "sam-desktop/qwen3-8b"
    used(user_client, "deepseek/deepseek-v4-flash")
    assert offered(user_client) == "deepseek/deepseek-v4-flash"
    html = user_client.get(reverse("home")).content.decode()
    assert '<option value="deepseek/deepseek-v4-flash" selected>' in html

    used(user_client, "old-box/qwen3-8b")  # no such host any more: the next rule
    assert offered(user_client) == "sam-desktop/qwen3-8b"


def test_the_admins_default_from_the_environment_then_from_admin(user_client, hosts, settings):
    ModelOverride.objects.create(provider=Provider.objects.get(slug="embedding"), model="deepseek-r1-qwen3-8b",
                                 new_chats=True)
    settings.BOOCHAT_DEFAULT_MODEL = "deepseek/deepseek-v4-flash"
    assert offered(user_client) == "deepseek/deepseek-v4-flash"
    settings.BOOCHAT_DEFAULT_MODEL = ""
    assert offered(user_client) == "embedding/deepseek-r1-qwen3-8b"


def test_a_bare_default_means_the_default_provider(user_client, hosts, settings):
    settings.BOOCHAT_DEFAULT_MODEL = "qwen3-8b"
    assert offered(user_client) == "sam-desktop/qwen3-8b"


def test_then_the_first_favorite_then_the_default_providers_first_chat_model(user_client, hosts):
    Favorite.objects.add(user=me(user_client), model_id="embedding/qwen3-8b")
    assert offered(user_client) == "embedding/qwen3-8b"
    Favorite.objects.all().delete()
    first = offered(user_client)
    assert first.startswith("sam-desktop/")


def test_the_users_own_default_comes_first(user_client, hosts):
    from settings_app.models import UserSettings

    used(user_client, "deepseek/deepseek-v4-flash")
    UserSettings.objects.create(user=me(user_client), default_model="embedding/qwen3-8b")
    assert offered(user_client) == "embedding/qwen3-8b"


def test_a_chosen_model_still_wins(user_client, hosts):
    used(user_client, "deepseek/deepseek-v4-flash")
    assert user_client.get(reverse("chat_index"), {"model": "sam-desktop/qwen3-30b"}).context_data["selected"] == "sam-desktop/qwen3-30b"
    assert user_client.get(reverse("chat_new"), {"model": "sam-desktop/qwen3-30b"}).context_data["selected"] == "sam-desktop/qwen3-30b"
    user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-30b", "content": "hi"})
    assert ChatSession.objects.latest("id").model_id == "sam-desktop/qwen3-30b"
