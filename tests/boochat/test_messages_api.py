"""`/v1/messages` and `/v1/messages/count_tokens` (Anthropic Messages) through the official anthropic SDK,
against the app served by uvicorn: passed to llama.cpp hosts that serve them, translated for the others."""

import anthropic
import httpx
import pytest

from boochat.gateway.keys import create_key
from providers.models import ModelOverride, Provider, ProviderKind
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServer
from tests.fakes.llama_swap import CAPTURED_PIECES, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "".join(CAPTURED_PIECES)
WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def key():
    return create_key(name="tests")[1]


@pytest.fixture
def claude(asgi_server, key):
    """The SDK as Claude Code uses it: the key in x-api-key, anthropic-version sent."""
    with anthropic.Anthropic(base_url=asgi_server.url, api_key=key, max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def lab(hosts):
    """A recent llama-server that serves /v1/messages itself."""
    with FakeLlamaServer(FakeModel("gemma-3"), agent_apis=True) as host:
        make_provider(slug="lab", name="Lab", kind=ProviderKind.LLAMA_SERVER, base_url=host.url)
        yield host


def posts(host):
    return [r.path for r in host.requests if r.method == "POST"]


def chat_bodies(host):
    return [r.json() for r in host.requests if r.method == "POST" and r.path.endswith("/chat/completions")]


def test_a_host_without_the_api_gets_it_as_chat_and_is_not_asked_again(claude, hosts):
    message = claude.messages.create(model="sam-desktop/qwen3-30b", max_tokens=64, system="Be brief.", messages=HI,
                                     stop_sequences=["\n\n"], extra_body={"temperature": 0.5})
    assert message.content[0].text == REPLY and message.model == "sam-desktop/qwen3-30b"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0 and message.role == "assistant"
    claude.messages.create(model="sam-desktop/qwen3-30b", max_tokens=64, messages=HI)
    assert posts(hosts["sam-desktop"]) == ["/v1/messages", "/v1/chat/completions", "/v1/chat/completions"]
    assert chat_bodies(hosts["sam-desktop"])[0] == {
        "model": "qwen3-30b", "max_tokens": 64, "temperature": 0.5, "stop": ["\n\n"],
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}


def test_a_llama_server_that_serves_messages_gets_them_as_they_came(claude, lab):
    message = claude.messages.create(model="lab/gemma-3", max_tokens=64, messages=HI)
    assert message.content[0].text == REPLY and message.model == "lab/gemma-3"
    (request,) = [r for r in lab.requests if r.method == "POST"]
    assert request.path == "/v1/messages" and request.json() == {"model": "gemma-3", "max_tokens": 64, "messages": HI}


@pytest.mark.parametrize("model", ["sam-desktop/qwen3-8b", "lab/gemma-3"])
def test_messages_stream(claude, hosts, lab, model):
    with claude.messages.stream(model=model, max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == REPLY == final.content[0].text
    assert final.model == model and final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_a_translated_stream_is_anthropics_event_sequence(claude, hosts, asgi_server, key):
    body = {"model": "embedding/qwen3-8b", "max_tokens": 64, "messages": HI, "stream": True}
    with httpx.stream("POST", f"{asgi_server.url}/v1/messages", json=body, headers={"x-api-key": key}) as response:
        names = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    # Tokens that arrive in one read go on as one delta: between one and one per token.
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"} and 1 <= len(names[3:-3]) <= len(CAPTURED_PIECES)
    events = list(claude.messages.create(model="embedding/qwen3-8b", max_tokens=64, messages=HI, stream=True))
    kinds = [event.type for event in events]  # the SDK skips pings
    assert kinds[:2] == ["message_start", "content_block_start"] and kinds[-3:] == names[-3:]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == REPLY
    assert events[0].message.model == "embedding/qwen3-8b"
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens > 0
    assert all(sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
               for sent in chat_bodies(hosts["embedding"]))


@pytest.mark.parametrize("model, host", [("sam-desktop/qwen3-8b", "sam-desktop"), ("lab/gemma-3", "lab")])
def test_a_tool_round_trip(claude, hosts, lab, model, host):
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = claude.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=[question])
    (call,) = first.content
    assert (call.type, call.name, call.input, first.stop_reason) == ("tool_use", "get_weather", {"city": "Oslo"}, "tool_use")
    second = claude.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=[
        question, {"role": "assistant", "content": [call.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 °C"}]}])
    assert second.content[0].text == "Tool result: sunny, 21 °C"
    if host == "sam-desktop":
        sent = chat_bodies(hosts["sam-desktop"])[1]
        assert sent["tools"] == [{"type": "function", "function": {
            "name": "get_weather", "parameters": WEATHER["input_schema"], "description": WEATHER["description"]}}]
        assert sent["messages"][1:] == [
            {"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 °C"}]


def test_a_streamed_tool_use(claude, hosts):
    with claude.messages.stream(model="sam-desktop/qwen3-8b", max_tokens=64, tools=[WEATHER], messages=HI,
                                tool_choice={"type": "tool", "name": "get_weather"}) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert (block.type, block.name, block.input, final.stop_reason) == ("tool_use", "get_weather", {"city": "Oslo"},
                                                                       "tool_use")
    assert chat_bodies(hosts["sam-desktop"])[0]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_a_named_tool_choice_goes_as_chat_even_to_a_host_that_serves_messages(claude, lab):
    claude.messages.create(model="lab/gemma-3", max_tokens=64, tools=[WEATHER], messages=HI,
                           tool_choice={"type": "tool", "name": "get_weather"})
    assert posts(lab) == ["/v1/chat/completions"]


def test_images_and_deepseek_thinking(claude, hosts):
    claude.messages.create(model="sam-desktop/qwen3-8b", max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}]}])
    assert chat_bodies(hosts["sam-desktop"])[0]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}]}]
    message = claude.messages.create(model="deepseek/deepseek-v4-flash", max_tokens=1024, messages=HI,
                                     thinking={"type": "enabled", "budget_tokens": 512})
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in message.content] == [
        ("thinking", "The user greets."), ("text", "Hello!")]
    with claude.messages.stream(model="deepseek/deepseek-v4-flash", max_tokens=1024, messages=HI,
                                thinking={"type": "enabled", "budget_tokens": 512}) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].thinking == "The user greets."
    assert [body["thinking"] for body in hosts["deepseek"].chat_bodies()] == [{"type": "enabled"}] * 2


def test_count_tokens_from_the_host_its_tokenizer_or_an_estimate(claude, hosts, lab):
    native = claude.messages.count_tokens(model="lab/gemma-3", messages=HI)
    assert native.input_tokens > 0 and posts(lab) == ["/v1/messages/count_tokens"]
    raw = claude.messages.with_raw_response.count_tokens(model="sam-desktop/qwen3-8b", messages=HI, system="Be brief.")
    assert raw.headers["x-boochat-token-count"] == "tokenizer"
    assert raw.parse().input_tokens == len("Be brief.\nhi") // 3 + 1
    assert posts(hosts["sam-desktop"]) == ["/v1/messages/count_tokens", "/upstream/qwen3-8b/tokenize"]
    raw = claude.messages.with_raw_response.count_tokens(model="deepseek/deepseek-v4-flash", messages=HI)
    assert raw.headers["x-boochat-token-count"] == "estimate"
    assert raw.parse().input_tokens == 1 and raw.parse().model_extra["estimated"] is True
    assert hosts["deepseek"].chat_bodies() == []


def test_keys_as_x_api_key_or_bearer(asgi_server, key, hosts):
    with anthropic.Anthropic(base_url=asgi_server.url, auth_token=key, max_retries=0) as bearer:
        assert bearer.messages.create(model="sam-desktop/qwen3-8b", max_tokens=8, messages=HI).content[0].text == REPLY
    with anthropic.Anthropic(base_url=asgi_server.url, api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as excinfo:
            wrong.messages.create(model="sam-desktop/qwen3-8b", max_tokens=8, messages=HI)
    assert excinfo.value.body == {"type": "error", "error": {"type": "authentication_error", "message": (
        "Missing, invalid, revoked or expired API key: send 'Authorization: Bearer <key>' (or 'x-api-key: <key>') "
        "with a key made on BooChat's Keys page.")}}


def test_a_pools_member_answers_and_is_named(claude, hosts, lab):
    pool = Provider.objects.create(slug="fleet", name="Any box", kind=ProviderKind.POOL)
    ModelOverride.objects.create(provider=pool, model="any", members=["gone/qwen3-8b", "lab/gemma-3"])
    ModelOverride.objects.create(provider=pool, model="mixed", members=["gone/qwen3-8b", "embedding/qwen3-8b"])
    make_provider(slug="gone", name="Gone box", base_url="http://127.0.0.1:9")
    raw = claude.messages.with_raw_response.create(model="fleet/any", max_tokens=8, messages=HI)
    assert raw.headers["x-boochat-served-by"] == "lab/gemma-3" and raw.parse().model == "fleet/any"
    with claude.messages.stream(model="fleet/mixed", max_tokens=8, messages=HI) as stream:
        assert stream.get_final_message().content[0].text == REPLY
    assert posts(lab) == ["/v1/messages"]


def test_errors_are_in_anthropics_envelope(claude, hosts, asgi_server, key):
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        claude.messages.create(model="nowhere/qwen3-8b", max_tokens=8, messages=HI)
    assert excinfo.value.body["type"] == "error" and excinfo.value.body["error"]["type"] == "invalid_request_error"
    assert "unknown provider 'nowhere'" in excinfo.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as excinfo:
        claude.messages.create(model="sam-desktop/no-such-model", max_tokens=8, messages=HI)
    assert excinfo.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        claude.messages.create(model="sam-desktop/qwen3-8b", max_tokens=8, messages=[
            {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}])
    assert "messages[0].content[0]: user messages cannot hold 'document' blocks" in excinfo.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as excinfo:
        claude.messages.create(model="sam-desktop/qwen3-8b", max_tokens=8, messages=HI,
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "tools[0]" in excinfo.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as excinfo:  # the host's own 400: over its context
        claude.messages.create(model="embedding/qwen3-8b", max_tokens=8, messages=[{"role": "user", "content": "x" * 3000}])
    assert "Embedding box (embedding)" in excinfo.value.body["error"]["message"]
    response = httpx.post(f"{asgi_server.url}/v1/messages", json={"model": "sam-desktop/qwen3-8b", "messages": HI},
                          headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    assert response.status_code == 400
    assert response.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": "'max_tokens' is required."}}
    response = httpx.get(f"{asgi_server.url}/v1/messages", headers={"x-api-key": key})
    assert response.status_code == 405 and response.json()["error"]["type"] == "invalid_request_error"
    assert posts(hosts["sam-desktop"]) == ["/v1/messages", "/v1/chat/completions"]  # only the unknown model


def test_models_are_listed_once_for_every_api(claude, hosts):
    ids = {model.id for model in claude.models.list()}
    assert {"sam-desktop/qwen3-8b", "deepseek/deepseek-v4-flash"} <= ids


def test_a_host_failing_mid_stream_ends_it_with_an_error_event(claude, hosts):
    hosts["embedding"].error_after = 3  # the host's `data: {"error": ...}` after three events
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        list(claude.messages.create(model="embedding/qwen3-8b", max_tokens=64, messages=HI, stream=True))
    assert excinfo.value.body == {"type": "error", "error": {"type": "api_error", "message": "slot crashed"}}
    hosts["embedding"].error_after, hosts["embedding"].drop_after = None, 3  # the host dies mid-answer
    with pytest.raises(anthropic.APIStatusError) as excinfo:
        list(claude.messages.create(model="embedding/qwen3-8b", max_tokens=64, messages=HI, stream=True))
    assert "Lost the connection to provider 'embedding' mid-answer" in excinfo.value.body["error"]["message"]


def test_a_client_leaving_a_translated_stream_closes_the_upstream(asgi_server, key, hosts):
    hosts["sam-desktop"].reply, hosts["sam-desktop"].stream_delay = ["x "] * 400, 0.02
    body = {"model": "sam-desktop/qwen3-8b", "max_tokens": 800, "stream": True, "messages": HI}
    with httpx.stream("POST", f"{asgi_server.url}/v1/messages", json=body, headers={"x-api-key": key}) as response:
        for chunk in response.iter_raw():
            if b'"x ' in chunk:
                break
    assert hosts["sam-desktop"].wait_for_disconnect(timeout=5.0)


def test_the_django_view_serves_the_same_api(client, key, hosts, lab):
    from django.urls import reverse

    response = client.post(reverse("gateway_messages"), {"model": "lab/gemma-3", "max_tokens": 8, "messages": HI},
                           content_type="application/json", headers={"x-api-key": key})
    assert response.status_code == 200 and response.json()["content"][0]["text"] == REPLY
    response = client.post(reverse("gateway_count_tokens"), {"model": "nowhere/x", "messages": HI},
                           content_type="application/json", headers={"x-api-key": key})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_claude_codes_request_shape(claude, hosts):
    """System turns between the others, cache_control, metadata, adaptive thinking, context_management."""
    claude.messages.create(
        model="sam-desktop/qwen3-8b", max_tokens=32000, system=[{"type": "text", "text": "You are an agent."}],
        metadata={"user_id": "u1"}, thinking={"type": "adaptive"}, messages=[
            {"role": "user", "content": [{"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "Available agent types: claude."}],
        extra_body={"context_management": {"edits": []}, "output_config": {"effort": "high"}})
    assert chat_bodies(hosts["sam-desktop"])[0]["messages"] == [
        {"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Say hello"},
        {"role": "system", "content": "Available agent types: claude."}]


def test_streamed_text_keeps_every_character(claude, hosts):
    hosts["embedding"].reply = ['He said "hi"\\', " é 😀", "\u2028x\n", "</script>"]
    with claude.messages.stream(model="embedding/qwen3-8b", max_tokens=64, messages=HI) as stream:
        assert "".join(stream.text_stream) == "".join(hosts["embedding"].reply)
