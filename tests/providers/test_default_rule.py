"""Who decides the default provider: the provider file when it names one, else admin; never a flip."""

import json

import pytest
from django.urls import reverse

from providers.models import Provider
from providers.sync import sync_from_environment
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


def provider_file(tmp_path, settings, *, default):
    path = tmp_path / "llama-providers.json"
    path.write_text(json.dumps({"providers": [
        {"slug": "sam-desktop", "kind": "llama_swap", "base_url": "http://127.0.0.1:9", "default": default},
    ]}))
    settings.LLAMA_PROVIDERS_PATH = str(path)
    sync_from_environment()


def make_default(admin_client, provider):
    return admin_client.post(reverse("admin:providers_provider_changelist"),
                             {"action": "make_default", "_selected_action": [provider.pk]}, follow=True)


def test_when_the_file_names_the_default_admin_refuses_another_and_says_where(admin_client, tmp_path, settings):
    provider_file(tmp_path, settings, default=True)
    by_hand = make_provider(slug="by-hand")
    response = make_default(admin_client, by_hand)
    assert "makes sam-desktop the default: change &quot;default&quot; there" in response.content.decode()
    assert Provider.objects.default().slug == "sam-desktop"

    url = reverse("admin:providers_provider_change", args=[by_hand.pk])
    form = {"slug": "by-hand", "name": "By hand", "kind": "llama_swap", "base_url": "http://127.0.0.1:9",
            "sidecar_url": "", "api_key_env": "", "enabled": "on", "is_default": "on",
            "connect_timeout": "3", "read_timeout": "600", "models_timeout": "2",
            "overrides-TOTAL_FORMS": "0", "overrides-INITIAL_FORMS": "0"}
    response = admin_client.post(url, form)
    assert response.status_code == 200 and "makes sam-desktop the default" in response.content.decode()
    sync_from_environment()  # a start or HUP
    assert Provider.objects.default().slug == "sam-desktop"


def test_when_the_file_names_none_admins_choice_survives_the_sync(admin_client, tmp_path, settings):
    provider_file(tmp_path, settings, default=False)
    by_hand = make_provider(slug="by-hand")
    response = make_default(admin_client, by_hand)
    assert "By-hand is now the default provider" in response.content.decode()
    sync_from_environment()
    assert Provider.objects.default().slug == "by-hand"
