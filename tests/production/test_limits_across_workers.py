"""Keys, limits and model access on a 2-worker gunicorn server, as production runs it: exact across
workers only with PostgreSQL and Redis, so these run there (CI sets DATABASE_URL and REDIS_URL)."""

import asyncio
import datetime
import time

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from boochat.gateway.keys import create_key
from boochat.models import UsageRecord
from providers.models import ModelAccess

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="limits are shared by workers through Redis: set REDIS_URL"),
]


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("two workers writing usage at once need PostgreSQL: set DATABASE_URL")


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


async def post_all(base, key, count):
    """`count` chat requests at once, each on its own connection; their statuses."""
    body = {"model": "sam-desktop/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]}
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def one():
            response = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            return response.status_code

        return await asyncio.gather(*(one() for _ in range(count)))


def test_a_thousand_concurrent_requests_against_100_a_minute_admit_exactly_100(app_process, hosts, alice, postgres):
    _, key = create_key(user=alice, name="runaway agent", requests_per_minute=100)
    base, _ = app_process(workers=2)
    statuses = asyncio.run(post_all(base, key, 1000))
    assert statuses.count(200) == 100 and statuses.count(429) == 900
    assert len([r for r in hosts["sam-desktop"].requests if r.method == "POST"]) == 100
    deadline = time.monotonic() + 20
    while UsageRecord.objects.filter(user=alice).count() < 1000 and time.monotonic() < deadline:
        time.sleep(0.2)
    recorded = UsageRecord.objects.filter(user=alice)
    assert recorded.filter(status=200).count() == 100 and recorded.filter(status=429).count() == 900
    assert sum(recorded.values_list("prompt_tokens", flat=True)) == 100 * 42


def statuses(base, key, count=10):
    codes = []
    for _ in range(count):  # a new connection each: the workers take turns at accepting them
        with httpx.Client(base_url=base, timeout=10) as client:
            codes.append(client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code)
    return codes


def test_an_expired_key_is_refused_by_every_worker_once_it_expires(app_process, hosts, alice, postgres):
    base, _ = app_process(workers=2)
    expires = timezone.now() + datetime.timedelta(seconds=5)
    _, key = create_key(user=alice, name="temp", expires_at=expires)
    known = set()  # a new key reaches the other workers within their snapshot's second
    while known != {200} and timezone.now() < expires - datetime.timedelta(seconds=2):
        known = set(statuses(base, key))
    assert known == {200}
    while timezone.now() < expires:
        time.sleep(0.05)
    assert set(statuses(base, key)) == {401}  # at once: each request compares the expiry


def test_a_user_outside_a_groups_patterns_is_refused_by_every_worker(app_process, hosts, alice, postgres):
    group = Group.objects.create(name="students")
    ModelAccess.objects.create(group=group, patterns="embedding/*")
    alice.groups.add(group)
    _, key = create_key(user=alice, name="k")
    base, _ = app_process(workers=2)
    auth = {"Authorization": f"Bearer {key}"}
    for _ in range(6):
        with httpx.Client(base_url=base, timeout=10) as client:
            listed = {m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]}
            assert listed and all(m.startswith("embedding/") for m in listed)
            refused = client.post("/v1/chat/completions", headers=auth, json={
                "model": "sam-desktop/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    assert not [r for r in hosts["sam-desktop"].requests if r.method == "POST"]
