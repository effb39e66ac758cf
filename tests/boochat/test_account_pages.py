"""The Connect page, everyone's usage for staff, `manage.py usage` and the retention: through the test
client and call_command."""

import datetime
import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from boochat.models import UsageRecord
from boochat.usage.recording import Use, prune, recorder
from providers.models import ModelAccess

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.get_or_create(username="alice")[0]


def use(user, model_id="sam-desktop/qwen3-8b", served_by="sam-desktop/qwen3-8b", **fields):
    recorder.record(Use("gateway", model_id, user_id=user.pk, served_by=served_by, endpoint="chat/completions",
                        prompt_tokens=fields.pop("prompt", 10), completion_tokens=fields.pop("completion", 5), **fields))


def test_connect_shows_the_url_as_reached_and_the_users_models_with_their_context(user_client, hosts, alice, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "chat.lab.example"]
    group = Group.objects.create(name="lab")
    ModelAccess.objects.create(group=group, patterns="sam-desktop/*")
    alice.groups.add(group)
    page = user_client.get("/settings/connect/", headers={"host": "chat.lab.example"})
    assert page.status_code == 200
    assert page.context_data["base_url"] == "http://chat.lab.example/v1"
    models = {m["id"]: m["context"] for m in page.context_data["models"]}
    assert set(models) == {"sam-desktop/qwen3-30b", "sam-desktop/qwen3-8b", "sam-desktop/box2/gpt-oss-20b"}
    assert models["sam-desktop/qwen3-30b"] == 32768
    config = json.loads(page.context_data["opencode"])
    provider = config["provider"]["boochat"]
    assert provider["options"]["baseURL"] == "http://chat.lab.example/v1"
    assert provider["models"]["sam-desktop/qwen3-30b"]["limit"]["context"] == 32768
    html = page.content.decode()
    for snippet in ("curl http://chat.lab.example/v1/chat/completions", "from openai import OpenAI",
                    "new OpenAI({ baseURL", 'litellm.completion(model="openai/sam-desktop/', "opencode.json"):
        assert snippet in html
    assert "deepseek/" not in html


def test_connect_uses_the_public_url_when_set(user_client, hosts, settings):
    settings.BOOCHAT_PUBLIC_URL = "https://boochat.example.org"
    assert user_client.get("/settings/connect/").context_data["base_url"] == "https://boochat.example.org/v1"


def test_staff_see_everyones_usage_by_user_host_and_model(admin_client, alice, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    use(alice)
    use(alice, model_id="fleet/qwen3-8b", served_by="embedding/qwen3-8b")
    use(bob, prompt=100, completion=50)
    recorder.flush()
    page = admin_client.get("/settings/usage/all/?period=30d")
    assert page.status_code == 200
    by_user = {row["name"]: row["requests"] for row in page.context_data["by_user"]}
    assert by_user == {"alice": 2, "bob": 1}
    by_host = {row["name"]: (row["requests"], row["prompt"]) for row in page.context_data["by_host"]}
    assert by_host == {"sam-desktop": (2, 110), "embedding": (1, 10)}
    assert page.context_data["totals"] == {"requests": 3, "prompt": 120, "completion": 60, "cached": 0}
    csv = b"".join(admin_client.get("/settings/usage/all/?format=csv").streaming_content).decode().splitlines()
    assert len(csv) == 4


def test_everyones_usage_is_for_staff_only(user_client):
    assert user_client.get("/settings/usage/all/").status_code == 403
    assert user_client.get("/settings/usage/all/?format=csv").status_code == 403


def test_a_users_usage_page_shows_only_theirs(user_client, alice, django_user_model):
    use(django_user_model.objects.create_user("bob"))
    use(alice, prompt=7, completion=3)
    recorder.flush()
    page = user_client.get("/settings/usage/?period=nonsense")
    assert page.context_data["period"] == "24h"
    assert page.context_data["totals"] == {"requests": 1, "prompt": 7, "completion": 3, "cached": 0}


def test_the_usage_command_prints_csv_and_json_since_a_moment(alice):
    use(alice, prompt=3)
    recorder.flush()
    old = UsageRecord.objects.create(at=timezone.now() - datetime.timedelta(days=10), user=alice, source="chat",
                                     model_id="sam-desktop/old", status=200)
    out = io.StringIO()
    call_command("usage", "--since", "7d", "--format", "json", stdout=out)
    (record,) = json.loads(out.getvalue())
    assert (record["user"], record["prompt_tokens"], record["model_id"]) == ("alice", 3, "sam-desktop/qwen3-8b")
    out = io.StringIO()
    call_command("usage", "--since", (timezone.now() - datetime.timedelta(days=30)).date().isoformat(), "--format", "csv",
                 stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("at,user,key") and len(lines) == 3 and "sam-desktop/old" in lines[1]
    assert old.pk


def test_the_usage_command_names_a_bad_since():
    with pytest.raises(Exception, match="--since 'yesterday'"):
        call_command("usage", "--since", "yesterday")


def test_records_past_the_retention_are_pruned(alice, settings):
    settings.BOOCHAT_USAGE_DAYS = 30
    UsageRecord.objects.create(at=timezone.now() - datetime.timedelta(days=31), user=alice, source="chat",
                               model_id="a/b", status=200)
    kept = UsageRecord.objects.create(at=timezone.now() - datetime.timedelta(days=29), user=alice, source="chat",
                                      model_id="a/b", status=200)
    assert prune() == 1
    assert list(UsageRecord.objects.all()) == [kept]


def test_a_groups_admin_page_gives_it_patterns_and_default_limits(admin_client):
    group = Group.objects.create(name="students")
    page = admin_client.get(f"/admin/auth/group/{group.pk}/change/")
    assert page.status_code == 200 and "model_access-TOTAL_FORMS" in page.content.decode()
    response = admin_client.post(f"/admin/auth/group/{group.pk}/change/", {
        "name": "students", "model_access-TOTAL_FORMS": "1", "model_access-INITIAL_FORMS": "0",
        "model_access-0-patterns": "embedding/*",
        "limits-TOTAL_FORMS": "1", "limits-INITIAL_FORMS": "0", "limits-0-requests_per_minute": "20",
    })
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert ModelAccess.objects.get(group=group).patterns == "embedding/*"
    assert group.limits.requests_per_minute == 20


def test_connect_shows_codex_cli_and_claude_code_setups_with_the_first_model(user_client, hosts, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "chat.lab.example"]
    page = user_client.get("/settings/connect/", headers={"host": "chat.lab.example"})
    example = page.context_data["example"]
    assert example == next(m["id"] for m in page.context_data["models"] if not m["embedding"])
    html = page.content.decode()
    for snippet in ("~/.codex/config.toml", f'model = "{example}"', 'model_provider = "boochat"',
                    "[model_providers.boochat]", 'name = "BooChat"', 'base_url = "http://chat.lab.example/v1"',
                    'env_key = "BOOCHAT_API_KEY"', 'wire_api = "responses"'):
        assert snippet in html, snippet
    assert (f"ANTHROPIC_BASE_URL=http://chat.lab.example ANTHROPIC_AUTH_TOKEN=$BOOCHAT_API_KEY "
            f"ANTHROPIC_MODEL={example} claude") in html
