"""Keys that belong to users: made and revoked on the Keys page, listed by prefix, seen by staff in
admin with their owner; a key acts as its user at the gateway (openai SDK against uvicorn)."""

import datetime
import time

import httpx
import openai
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from boochat.gateway.keys import create_key, hash_key
from boochat.models import GatewayKey

pytestmark = pytest.mark.django_db(transaction=True)


def models_with(asgi_server, key):
    response = httpx.get(f"{asgi_server.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
    return response.status_code, response.json()


def test_a_key_made_on_the_keys_page_is_shown_once_and_stored_hashed(asgi_server, hosts, user_client):
    response = user_client.post("/settings/keys/", {"name": "opencode on the laptop"})
    assert response.status_code == 200
    row, key = response.context_data["created"]
    assert key.startswith("bc-") and key in response.content.decode()
    stored = GatewayKey.objects.get()
    assert stored.user.username == "alice" and stored.key_hash == hash_key(key) and key not in stored.prefix
    listing = user_client.get("/settings/keys/").content.decode()
    assert key not in listing and f"{stored.prefix}…" in listing and "never" in listing
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0) as sdk:
        assert "sam-desktop/qwen3-8b" in {m.id for m in sdk.models.list()}


def test_the_keys_page_shows_last_use_with_the_address(asgi_server, hosts, user_client):
    key = user_client.post("/settings/keys/", {"name": "script"}).context_data["created"][1]
    assert models_with(asgi_server, key)[0] == 200
    deadline = timezone.now() + datetime.timedelta(seconds=5)
    while GatewayKey.objects.get().last_used_from is None and timezone.now() < deadline:
        time.sleep(0.02)
    assert GatewayKey.objects.get().last_used_from == "127.0.0.1"
    assert "from 127.0.0.1" in user_client.get("/settings/keys/").content.decode()


@pytest.mark.parametrize(("fields", "problem"), [
    ({"name": ""}, "This field is required."),
    ({"name": "x", "expires": "2001-01-01"}, "The expiry must be in the future."),
    ({"name": "x", "scope": "no-slash"}, "is not a model pattern"),
    ({"name": "x", "expires": "someday"}, "Enter a valid date."),
])
def test_a_bad_key_form_says_why_and_makes_nothing(user_client, fields, problem):
    response = user_client.post("/settings/keys/", fields)
    assert response.status_code == 400 and problem in response.content.decode()
    assert not GatewayKey.objects.exists()


def test_revoking_on_the_keys_page_refuses_the_key_at_once(asgi_server, hosts, user_client):
    key = user_client.post("/settings/keys/", {"name": "old"}).context_data["created"][1]
    assert models_with(asgi_server, key)[0] == 200
    row = GatewayKey.objects.get()
    assert user_client.post(f"/settings/keys/{row.pk}/revoke").status_code == 302
    status, body = models_with(asgi_server, key)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert "revoked" in user_client.get("/settings/keys/").content.decode()


def test_nobody_revokes_or_sees_another_users_key(user_client, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    row, key = create_key(user=bob, name="bob's")
    assert user_client.post(f"/settings/keys/{row.pk}/revoke").status_code == 404
    assert GatewayKey.objects.get(pk=row.pk).revoked_at is None
    assert row.prefix not in user_client.get("/settings/keys/").content.decode()


def test_an_expired_key_is_refused(asgi_server, hosts, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    _, key = create_key(user=alice, name="temp", expires_at=timezone.now() + datetime.timedelta(hours=1))
    assert models_with(asgi_server, key)[0] == 200
    GatewayKey.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert models_with(asgi_server, key)[0] == 401


def test_a_key_expiring_while_the_snapshot_is_fresh_is_refused(asgi_server, hosts, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    _, key = create_key(user=alice, name="temp", expires_at=timezone.now() + datetime.timedelta(seconds=1))
    assert models_with(asgi_server, key)[0] == 200
    deadline = timezone.now() + datetime.timedelta(seconds=5)
    while models_with(asgi_server, key)[0] == 200 and timezone.now() < deadline:
        time.sleep(0.02)
    assert models_with(asgi_server, key)[0] == 401


def test_a_keys_scope_narrows_what_it_lists_and_calls(asgi_server, hosts, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    _, key = create_key(user=alice, name="embeddings only", scope=["embedding/*"])
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0) as sdk:
        assert {m.id.partition("/")[0] for m in sdk.models.list()} == {"embedding"}
        with pytest.raises(openai.PermissionDeniedError) as refused:
            sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["code"] == "model_not_allowed"
    assert [r for r in hosts["sam-desktop"].requests if r.method == "POST"] == []


def test_a_deactivated_users_keys_stop_working(asgi_server, hosts, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    _, key = create_key(user=alice, name="laptop")
    assert models_with(asgi_server, key)[0] == 200
    alice.is_active = False
    alice.save()
    assert models_with(asgi_server, key)[0] == 401


def test_staff_see_every_key_with_its_owner_and_revoke_it(asgi_server, hosts, admin_client, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    row, key = create_key(user=bob, name="bob's agent")
    listing = admin_client.get("/admin/boochat/gatewaykey/").content.decode()
    assert "bob&#x27;s agent" in listing and ">bob<" in listing
    admin_client.post("/admin/boochat/gatewaykey/", {"action": "revoke", "_selected_action": [row.pk]})
    assert models_with(asgi_server, key)[0] == 401


def test_admin_makes_a_key_for_a_service_user(admin_client, django_user_model):
    service = django_user_model.objects.create_user("ci-bot")
    response = admin_client.post("/admin/boochat/gatewaykey/add/", {
        "name": "CI", "user": service.pk, "scope": '["sam-desktop/*"]', "requests_per_minute": "30"})
    assert response.status_code == 200 and response.context["key"].startswith("bc-")
    row = GatewayKey.objects.get()
    assert (row.user, row.scope, row.requests_per_minute) == (service, ["sam-desktop/*"], 30)


def test_the_migration_gives_each_key_to_whoever_made_it_or_the_first_superuser(django_user_model):
    call_command("migrate", "boochat", "0009", verbosity=0)
    try:
        old = MigrationExecutor(connection).loader.project_state([
            ("boochat", "0009_folders_archive_trash_shares"), ("admin", "0003_logentry_add_action_flag_choices"),
            ("contenttypes", "0002_remove_content_type_name"), ("auth", "0012_alter_user_first_name_max_length")]).apps
        OldKey, OldUser = old.get_model("boochat", "GatewayKey"), old.get_model("auth", "User")
        maker = OldUser.objects.create(username="maker", is_superuser=True, is_staff=True)
        first = OldUser.objects.create(username="first-superuser", is_superuser=True, is_staff=True)
        OldUser.objects.filter(pk=maker.pk).update(id=first.pk + 10)  # the maker is not the first superuser
        maker = OldUser.objects.get(username="maker")
        made = OldKey.objects.create(name="made in admin", prefix="bc-aaaa", key_hash="a" * 64)
        orphan = OldKey.objects.create(name="made by a script", prefix="bc-bbbb", key_hash="b" * 64)
        LogEntry = old.get_model("admin", "LogEntry")
        ContentType = old.get_model("contenttypes", "ContentType")
        key_type, _ = ContentType.objects.get_or_create(app_label="boochat", model="gatewaykey")
        LogEntry.objects.create(user_id=maker.pk, content_type_id=key_type.pk, object_id=str(made.pk),
                                object_repr="made in admin", action_flag=1, action_time=timezone.now())
    finally:
        call_command("migrate", verbosity=0)
    assert GatewayKey.objects.get(pk=made.pk).user.username == "maker"
    assert GatewayKey.objects.get(pk=orphan.pk).user.username == "first-superuser"
    assert not GatewayKey.objects.filter(revoked_at__isnull=False).exists()


@pytest.mark.parametrize("scope", ['{"a": 1}', '[1, 2]', '["no-slash"]', '"sam-desktop/*"'])
def test_admin_refuses_a_scope_that_is_not_a_list_of_patterns(admin_client, django_user_model, scope):
    root = django_user_model.objects.get(username="root")
    response = admin_client.post("/admin/boochat/gatewaykey/add/", {"name": "x", "user": root.pk, "scope": scope})
    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert not GatewayKey.objects.exists()


def test_a_key_scope_past_100_patterns_is_refused(user_client):
    response = user_client.post("/settings/keys/", {"name": "x", "scope": "\n".join(f"p{n}/*" for n in range(101))})
    assert response.status_code == 400 and "At most 100 patterns." in response.content.decode()
