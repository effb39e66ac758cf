"""The agent APIs (Responses through the openai SDK, Messages through the anthropic SDK) behind the
same model access, limits and usage record as Chat Completions."""

import time

import anthropic
import openai
import pytest
from django.contrib.auth.models import Group

from boochat.gateway.keys import create_key
from boochat.models import UsageRecord
from providers.models import ModelAccess

pytestmark = pytest.mark.django_db(transaction=True)
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


def records_of(user, count, timeout=10):
    deadline = time.monotonic() + timeout
    while UsageRecord.objects.filter(user=user).count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(UsageRecord.objects.filter(user=user).order_by("id"))


def restrict(user, patterns):
    group = Group.objects.create(name="students")
    ModelAccess.objects.create(group=group, patterns=patterns)
    user.groups.add(group)


def test_messages_and_responses_refuse_a_model_not_allowed(asgi_server, hosts, alice):
    restrict(alice, "embedding/*")
    _, key = create_key(user=alice, name="agent")
    with anthropic.Anthropic(base_url=asgi_server.url, api_key=key, max_retries=0, timeout=10) as claude:
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            claude.messages.create(model="sam-desktop/qwen3-30b", max_tokens=16, messages=HI)
    assert refused.value.body["type"] == "error" and refused.value.body["error"]["type"] == "permission_error"
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=10) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            sdk.responses.create(model="sam-desktop/qwen3-30b", input="hi")
    assert denied.value.body["code"] == "model_not_allowed"
    assert not [r for r in hosts["sam-desktop"].requests if r.method == "POST"]


def test_messages_past_a_limit_get_429_in_anthropics_shape(asgi_server, hosts, alice):
    _, key = create_key(user=alice, name="agent", requests_per_minute=1)
    with anthropic.Anthropic(base_url=asgi_server.url, api_key=key, max_retries=0, timeout=10) as claude:
        claude.messages.create(model="sam-desktop/qwen3-30b", max_tokens=16, messages=HI)
        with pytest.raises(anthropic.RateLimitError) as refused:
            claude.messages.create(model="sam-desktop/qwen3-30b", max_tokens=16, messages=HI)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_agent_api_answers_are_recorded_with_their_tokens(asgi_server, hosts, alice):
    _, key = create_key(user=alice, name="agent")
    with anthropic.Anthropic(base_url=asgi_server.url, api_key=key, max_retries=0, timeout=10) as claude:
        message = claude.messages.create(model="sam-desktop/qwen3-30b", max_tokens=16, messages=HI)
        with claude.messages.stream(model="sam-desktop/qwen3-30b", max_tokens=16, messages=HI) as stream:
            streamed = stream.get_final_message()
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=10) as sdk:
        response = sdk.responses.create(model="sam-desktop/qwen3-30b", input="hi")
    records = records_of(alice, 3)
    assert [r.endpoint for r in records] == ["messages", "messages", "responses"]
    assert records[0].completion_tokens == message.usage.output_tokens > 0
    assert records[0].prompt_tokens == message.usage.input_tokens
    assert records[1].completion_tokens == streamed.usage.output_tokens > 0
    assert (records[2].prompt_tokens, records[2].completion_tokens) == (response.usage.input_tokens,
                                                                         response.usage.output_tokens)
    assert all(r.served_by == "sam-desktop/qwen3-30b" and r.status == 200 for r in records)
