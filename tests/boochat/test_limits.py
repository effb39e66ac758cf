"""Limits per key, per user and as a group default: requests per minute, tokens per day, streams at
once. Past one: 429 with Retry-After in OpenAI's shape at the gateway (openai SDK against uvicorn), a
clear message in the chat. Local memory here; the same tests run on Redis with REDIS_URL set."""

import time

import httpx
import openai
import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from boochat.gateway.keys import create_key
from boochat.models import ChatSession, Limits, Message, UsageRecord
from boochat.usage.recording import recorder

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.get_or_create(username="alice")[0]


def sdk_with(asgi_server, key):
    return openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=10)


@pytest.mark.django_db(transaction=True)
def test_a_keys_requests_per_minute_past_the_limit_get_429_with_retry_after(asgi_server, hosts, alice):
    _, key = create_key(user=alice, name="agent", requests_per_minute=3)
    with sdk_with(asgi_server, key) as sdk:
        for _ in range(3):
            sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)
    assert refused.value.status_code == 429
    assert refused.value.body["code"] == "rate_limit_exceeded" and refused.value.body["type"] == "rate_limit_error"
    assert "3 requests in the last minute" in refused.value.body["message"]
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert len([r for r in hosts["sam-desktop"].requests if r.method == "POST"]) == 3


@pytest.mark.django_db(transaction=True)
def test_another_key_of_the_same_user_has_its_own_count(asgi_server, hosts, alice):
    _, first = create_key(user=alice, name="a", requests_per_minute=1)
    _, second = create_key(user=alice, name="b", requests_per_minute=1)
    with sdk_with(asgi_server, first) as sdk:
        sdk.models.list()  # listing models is not counted
        sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)
    with sdk_with(asgi_server, second) as sdk:
        sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)


@pytest.mark.django_db(transaction=True)
def test_the_users_limit_counts_all_their_keys_and_a_group_gives_the_default(asgi_server, hosts, alice, django_user_model):
    group = Group.objects.create(name="students")
    Limits.objects.create(group=group, requests_per_minute=2)
    alice.groups.add(group)
    keys = [create_key(user=alice, name=str(n))[1] for n in range(3)]
    for key in keys[:2]:
        with sdk_with(asgi_server, key) as sdk:
            sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)
    with sdk_with(asgi_server, keys[2]) as sdk, pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)
    assert "Your account made 2 requests" in refused.value.body["message"]
    Limits.objects.create(user=alice, requests_per_minute=5)  # a user's own limit wins over the group's
    with sdk_with(asgi_server, keys[2]) as sdk:
        sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=HI)


@pytest.mark.django_db(transaction=True)
def test_concurrent_streams_past_the_limit_are_refused_until_one_ends(asgi_server, hosts, alice):
    hosts["sam-desktop"].reply, hosts["sam-desktop"].stream_delay = ["x "] * 50, 0.05
    _, key = create_key(user=alice, name="agent", concurrent_streams=1)
    body = {"model": "sam-desktop/qwen3-8b", "stream": True, "messages": HI}
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{asgi_server.url}/v1/chat/completions", json=body, headers=auth) as first:
        chunks = first.iter_raw()  # kept: a dropped iterator closes the response
        next(chunks)
        second = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers=auth)
        assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
        assert "1 answers streaming" in second.json()["error"]["message"] and second.headers["retry-after"]
    hosts["sam-desktop"].stream_delay = 0
    deadline = time.monotonic() + 5
    status = 429
    while status == 429 and time.monotonic() < deadline:
        status = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body, headers=auth).status_code
    assert status == 200


@pytest.mark.django_db(transaction=True)
def test_tokens_per_day_refuse_once_used_up_until_midnight(asgi_server, hosts, alice):
    _, key = create_key(user=alice, name="agent", tokens_per_day=50)
    with sdk_with(asgi_server, key) as sdk:
        answer = sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=HI)  # 53 tokens
        assert answer.usage.total_tokens == 53
        # The answer is recorded once its stream has ended on the server, which may be after the client
        # read its last byte: wait for the record, then for its tokens to be counted.
        deadline = time.monotonic() + 10
        while not UsageRecord.objects.filter(key__name="agent").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.wait_idle(10)
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=HI)
    assert "daily token limit of this key (agent) (50 tokens) is used up" in refused.value.body["message"] or \
        "daily token limit" in refused.value.body["message"]
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 86401


pages = pytest.mark.django_db


@pages
def test_a_chat_past_the_users_limit_says_so_and_saves_nothing(user_client, hosts, alice):
    Limits.objects.create(user=alice, requests_per_minute=1)
    session = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title="t")
    user_client.post(reverse("chat_send", args=[session.pk]), {"content": "one"})
    assert Message.objects.count() == 2
    refused = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "two"}, headers={"X-BooChat-Stream": "1"})
    assert refused.status_code == 429 and refused["Retry-After"]
    assert refused.json()["error"].startswith("Your account made 1 requests in the last minute: its limit.")
    assert Message.objects.count() == 2
    page = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "three"}, follow=True)
    assert "Your account made 1 requests in the last minute" in page.content.decode()


@pages
def test_chat_answers_are_recorded_and_count_against_the_daily_tokens(user_client, hosts, alice):
    Limits.objects.create(user=alice, tokens_per_day=30)
    session = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title="t")
    user_client.post(reverse("chat_send", args=[session.pk]), {"content": "one"})
    assert recorder.flush() == 1
    (record,) = UsageRecord.objects.filter(user=alice)
    assert (record.source, record.model_id, record.key_id) == ("chat", "sam-desktop/qwen3-8b", None)
    assert (record.prompt_tokens, record.completion_tokens, record.status) == (22, 18, 200)
    refused = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "two"}, headers={"X-BooChat-Stream": "1"})
    assert refused.status_code == 429 and "daily token limit of your account (30 tokens)" in refused.json()["error"]


@pages
def test_the_users_pages_show_current_use_against_each_limit(user_client, hosts, alice):
    Limits.objects.create(user=alice, requests_per_minute=10, concurrent_streams=2)
    create_key(user=alice, name="agent", tokens_per_day=1000)
    session = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title="t")
    user_client.post(reverse("chat_send", args=[session.pk]), {"content": "one"})
    recorder.flush()
    page = user_client.get(reverse("usage"))
    standings = {s.label: s for s in page.context_data["standings"]}
    assert standings["your account"].requests == 1 and standings["your account"].tokens == 40
    assert standings["key agent"].tokens == 0
    html = page.content.decode()
    assert "1 of 10" in html and "40 (no limit)" in html and "0 of 1000" in html
    assert "1 of 10" in user_client.get(reverse("keys")).content.decode()


@pages
def test_an_arena_answer_past_the_limit_stays_pending(user_client, hosts, alice):
    Limits.objects.create(user=alice, requests_per_minute=1)
    user_client.post(reverse("arena_new"), {"prompt": "hi", "model_1": "sam-desktop/qwen3-8b", "model_2": "embedding/qwen3-8b"})
    first, second = (a.pk for a in __import__("boochat.models", fromlist=["ArenaAnswer"]).ArenaAnswer.objects.order_by("position"))
    stream = {"X-BooChat-Stream": "1"}
    ok = user_client.post(reverse("arena_answer_stream", args=[first]), headers=stream)
    assert ok.status_code == 200
    refused = user_client.post(reverse("arena_answer_stream", args=[second]), headers=stream)
    assert refused.status_code == 429 and "requests in the last minute" in refused.json()["error"]
