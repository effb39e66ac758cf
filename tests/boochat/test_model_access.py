"""Model access by group: patterns given to a Django group in admin decide what its members see and
use at every door (the gateway through the openai SDK, the picker, chat, regenerate, arena)."""

import openai
import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from boochat.gateway.keys import create_key
from boochat.models import ArenaRun, ChatSession, Message
from providers.models import ModelAccess


def restrict(user, patterns, name="students"):
    group, _ = Group.objects.get_or_create(name=name)
    ModelAccess.objects.update_or_create(group=group, defaults={"patterns": "\n".join(patterns)})
    user.groups.add(group)
    return group


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.get_or_create(username="alice")[0]


@pytest.fixture
def sdk_for(asgi_server):
    clients = []

    def make(user):
        client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=create_key(user=user, name="k")[1],
                               max_retries=0, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.django_db(transaction=True)
def test_a_user_outside_a_groups_patterns_cannot_list_or_call_its_models(sdk_for, hosts, alice):
    restrict(alice, ["embedding/*", "sam-desktop/qwen3-8b"])
    sdk = sdk_for(alice)
    listed = {m.id for m in sdk.models.list()}
    assert "sam-desktop/qwen3-8b" in listed and "embedding/nomic-embed" in listed
    assert not {m for m in listed if m.startswith("deepseek/") or m == "sam-desktop/qwen3-30b"}
    for model in ("sam-desktop/qwen3-30b", "deepseek/deepseek-v4-flash"):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert refused.value.status_code == 403
        assert refused.value.body["code"] == "model_not_allowed" and model in refused.value.body["message"]
    with pytest.raises(openai.PermissionDeniedError):
        sdk.models.retrieve("sam-desktop/qwen3-30b")
    with pytest.raises(openai.PermissionDeniedError):
        list(sdk.chat.completions.create(model="qwen3-30b", stream=True,  # a bare id: the default provider's
                                         messages=[{"role": "user", "content": "hi"}]))
    assert sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert [r.json()["model"] for r in hosts["sam-desktop"].requests if r.method == "POST"] == ["qwen3-8b"]
    assert not [r for r in hosts["deepseek"].requests if r.method == "POST"]


@pytest.mark.django_db(transaction=True)
def test_users_in_no_restricting_group_keep_every_model(sdk_for, hosts, alice, django_user_model):
    restrict(django_user_model.objects.create_user("bob"), ["embedding/*"])
    alice.groups.add(Group.objects.create(name="no patterns here"))
    listed = {m.id for m in sdk_for(alice).models.list()}
    assert {"sam-desktop/qwen3-30b", "deepseek/deepseek-v4-flash", "embedding/qwen3-8b"} <= listed


@pytest.mark.django_db(transaction=True)
def test_several_groups_allow_what_any_of_them_allows(sdk_for, hosts, alice):
    restrict(alice, ["embedding/*"], name="a")
    restrict(alice, ["deepseek/*"], name="b")
    assert {m.id.partition("/")[0] for m in sdk_for(alice).models.list()} == {"embedding", "deepseek"}


@pytest.mark.django_db(transaction=True)
def test_a_change_of_groups_counts_at_once(sdk_for, hosts, alice):
    sdk = sdk_for(alice)
    assert "sam-desktop/qwen3-30b" in {m.id for m in sdk.models.list()}
    group = restrict(alice, ["embedding/*"])
    assert "sam-desktop/qwen3-30b" not in {m.id for m in sdk.models.list()}
    alice.groups.remove(group)
    assert "sam-desktop/qwen3-30b" in {m.id for m in sdk.models.list()}


pages = pytest.mark.django_db


@pages
def test_admin_gives_a_group_patterns_and_refuses_bad_ones(admin_client):
    group = Group.objects.create(name="students")
    bad = admin_client.post("/admin/providers/modelaccess/add/", {"group": group.pk, "patterns": "qwen3-8b"})
    assert bad.status_code == 200 and "is not a model pattern" in bad.content.decode()
    good = admin_client.post("/admin/providers/modelaccess/add/", {"group": group.pk, "patterns": "embedding/*\nfleet/qwen3-8b"})
    assert good.status_code == 302 and ModelAccess.objects.get().patterns == "embedding/*\nfleet/qwen3-8b"


@pages
def test_the_picker_and_api_list_only_allowed_models(user_client, hosts, alice):
    restrict(alice, ["embedding/*"])
    page = user_client.get(reverse("picker")).content.decode()
    assert "embedding/qwen3-8b" in page and "sam-desktop/qwen3-30b" not in page
    ids = {m["id"] for m in user_client.get("/api/models").json()["models"]}
    assert ids and all(i.startswith("embedding/") for i in ids)


@pages
def test_a_chat_cannot_start_move_to_or_send_to_a_model_not_allowed(user_client, hosts, alice):
    restrict(alice, ["embedding/*"])
    response = user_client.get(reverse("chat_new"), {"model": "sam-desktop/qwen3-30b"}, follow=True)
    assert "You may not use the model &#x27;sam-desktop/qwen3-30b&#x27;" in response.content.decode()
    sent = user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-30b", "content": "hi"},
                            headers={"X-BooChat-Stream": "1"})
    assert sent.status_code == 403 and "You may not use the model 'sam-desktop/qwen3-30b'" in sent.json()["error"]
    assert not ChatSession.objects.exists()
    session = ChatSession.objects.create(user=alice, model_id="embedding/qwen3-8b")
    moved = user_client.post(reverse("chat_set_model", args=[session.pk]), {"model_id": "deepseek/deepseek-v4-flash"},
                             follow=True)
    assert "You may not use the model" in moved.content.decode()
    session.refresh_from_db()
    assert session.model_id == "embedding/qwen3-8b"
    ChatSession.objects.filter(pk=session.pk).update(model_id="sam-desktop/qwen3-30b")  # allowed before
    sent = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert sent.status_code == 403 and "You may not use the model 'sam-desktop/qwen3-30b'" in sent.json()["error"]
    assert not Message.objects.exists()
    assert not [r for r in hosts["sam-desktop"].requests if r.method == "POST"]


@pages
def test_regenerating_with_a_model_not_allowed_is_refused(user_client, hosts, alice):
    restrict(alice, ["embedding/*"])
    session = ChatSession.objects.create(user=alice, model_id="embedding/qwen3-8b", title="t")
    user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"})
    answer = Message.objects.get(role="assistant")
    response = user_client.post(reverse("chat_regenerate", args=[answer.pk]), {"model_id": "deepseek/deepseek-v4-flash"},
                                headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 403 and "deepseek/deepseek-v4-flash" in response.json()["error"]
    assert Message.objects.filter(role="assistant").count() == 1


@pages
def test_an_arena_run_with_a_model_not_allowed_is_refused(user_client, hosts, alice):
    restrict(alice, ["embedding/*"])
    response = user_client.post(reverse("arena_new"), {"prompt": "hi", "model_1": "embedding/qwen3-8b",
                                                       "model_2": "sam-desktop/qwen3-30b"})
    assert response.status_code == 200 and "You may not use the model" in response.content.decode()
    assert not ArenaRun.objects.exists()


@pages
def test_titles_still_use_the_configured_task_model(user_client, hosts, alice, settings):
    settings.BOOCHAT_TASK_MODEL = "sam-desktop/qwen3-30b"  # loaded, and outside alice's patterns
    restrict(alice, ["embedding/*"])
    session = ChatSession.objects.create(user=alice, model_id="embedding/qwen3-8b")
    user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"})
    assert [r.json()["model"] for r in hosts["sam-desktop"].requests_to("/v1/chat/completions")] == ["qwen3-30b"]
    session.refresh_from_db()
    assert session.title
