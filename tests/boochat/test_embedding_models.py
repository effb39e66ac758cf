"""Models that serve embeddings only are not offered for chat: known from the host's list
(`architecture.output_modalities` without text), or from an override in admin or the provider file."""

import pytest
from django.urls import reverse

from boochat.models import ArenaRun, ChatSession
from providers.models import ModelOverride, ModelPurpose, Provider
from tests.boochat.test_chat import new_session, send

pytestmark = pytest.mark.django_db

NOMIC = "embedding/nomic-embed"  # listed by its host as serving embeddings only (tests/conftest.py)


def test_a_model_listed_as_embeddings_only_is_shown_as_such_and_not_offered_for_chat(user_client, hosts):
    models = user_client.get(reverse("picker")).content.decode()
    assert "embeddings</span>" in models and f"?model={NOMIC.replace('/', '%2F')}" not in models
    api = user_client.get(reverse("api_models")).json()
    assert next(m for m in api["models"] if m["id"] == NOMIC)["embedding"] is True
    for page in (reverse("chat_index"), reverse("home"), reverse("settings"), reverse("arena_index")):
        html = user_client.get(page).content.decode()
        assert f'value="{NOMIC}"' not in html and 'value="embedding/qwen3-8b"' in html, page


def test_chatting_with_an_embedding_model_is_refused_everywhere(user_client, hosts):
    page = user_client.get(reverse("chat_new"), {"model": NOMIC}, follow=True).content.decode()
    assert "serves embeddings only; it cannot chat" in page
    sent = user_client.post(reverse("chat_new"), {"model_id": NOMIC, "content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert sent.status_code == 400 and "embeddings only" in sent.json()["error"] and not ChatSession.objects.exists()

    chat = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    response = user_client.post(reverse("chat_set_model", args=[chat.pk]), {"model_id": NOMIC}, headers={"HX-Request": "true"})
    assert response.status_code == 400 and "embeddings only" in response.content.decode()
    send(user_client, chat, "hi")
    answer = chat.messages.get(role="assistant")
    refused = user_client.post(reverse("chat_regenerate", args=[answer.pk]), {"model_id": NOMIC},
                               headers={"X-BooChat-Stream": "1"})
    assert refused.status_code == 400 and "embeddings only" in refused.json()["error"]
    assert chat.messages.count() == 2
    settings = user_client.post(reverse("settings"), {"default_model": NOMIC}).content.decode()
    assert "embeddings only" in settings
    api = user_client.patch(reverse("api_settings"), {"default_model": NOMIC}, content_type="application/json")
    assert api.status_code == 400 and "embeddings only" in api.content.decode()
    arena = user_client.post(reverse("arena_new"), {"prompt": "x", "model_1": "sam-desktop/qwen3-8b", "model_2": NOMIC},
                             follow=True)
    assert "embeddings only" in arena.content.decode() and not ArenaRun.objects.exists()
    # Still a favorite and a gateway model like any other: only chat is refused.
    assert user_client.post(reverse("favorite_toggle"), {"star": NOMIC}).status_code == 302


def test_an_override_decides_either_way(user_client, hosts):
    embedding = Provider.objects.get(slug="embedding")
    ModelOverride.objects.create(provider=embedding, model="nomic-embed", purpose=ModelPurpose.CHAT)
    ModelOverride.objects.create(provider=embedding, model="deepseek-r1-qwen3-8b", purpose=ModelPurpose.EMBEDDING)
    html = user_client.get(reverse("chat_index")).content.decode()
    assert f'value="{NOMIC}"' in html and 'value="embedding/deepseek-r1-qwen3-8b"' not in html
