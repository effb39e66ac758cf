"""`/v1/responses` (OpenAI Responses) through the official openai SDK, against the app served by uvicorn
and the fake hosts: translated to Chat Completions on every host, pools and errors included."""

import json

import httpx
import openai
import pytest

from boochat.gateway.keys import create_key
from providers.models import ModelOverride, Provider, ProviderKind
from tests.boochat.test_gateway import inference_requests
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServer
from tests.fakes.llama_swap import CAPTURED_PIECES, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = "".join(CAPTURED_PIECES)
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
         "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture
def key():
    return create_key(name="tests")[1]


@pytest.fixture
def sdk(asgi_server, key):
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=10) as client:
        yield client


def chat_bodies(host):
    return [r.json() for r in host.requests if r.method == "POST" and r.path == "/v1/chat/completions"]


def test_a_string_input_with_instructions(sdk, hosts):
    response = sdk.responses.create(model="sam-desktop/qwen3-30b", input="hi", instructions="Be brief.",
                                    max_output_tokens=50, temperature=0.2)
    assert response.output_text == REPLY
    assert response.model == "sam-desktop/qwen3-30b" and response.status == "completed"
    assert response.id.startswith("resp_") and response.output[0].type == "message"
    assert response.usage.input_tokens > 0 and response.usage.total_tokens > response.usage.input_tokens
    (body,) = chat_bodies(hosts["sam-desktop"])
    assert body == {"model": "qwen3-30b", "max_tokens": 50, "temperature": 0.2, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]}


def test_a_stream_is_the_responses_event_sequence_with_sequence_numbers(sdk, hosts):
    events = list(sdk.responses.create(model="sam-desktop/qwen3-30b", input="hi", stream=True))
    kinds = [event.type for event in events]
    # Tokens that arrive in one read go on as one delta: between one and one per token.
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"} and 1 <= len(kinds[4:-4]) <= len(CAPTURED_PIECES)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
    completed = events[-1].response
    assert completed.output_text == REPLY and completed.model == "sam-desktop/qwen3-30b"
    assert completed.usage.output_tokens > 0
    (body,) = chat_bodies(hosts["sam-desktop"])
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_the_sdks_stream_helper_builds_the_final_response(sdk, hosts):
    with sdk.responses.stream(model="embedding/qwen3-8b", input="hi") as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == REPLY == final.output_text


def test_a_function_tool_round_trip(sdk, hosts):
    first = sdk.responses.create(model="sam-desktop/qwen3-8b", input="Weather in Oslo?", tools=[WEATHER],
                                 tool_choice="auto")
    (call,) = first.output
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "get_weather", {"city": "Oslo"})
    second = sdk.responses.create(model="sam-desktop/qwen3-8b", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 °C"},
    ])
    assert second.output_text == "Tool result: sunny, 21 °C"
    sent = chat_bodies(hosts["sam-desktop"])
    assert sent[0]["tools"] == [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}]
    assert sent[0]["tool_choice"] == "auto"
    assert sent[1]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": call.call_id, "type": "function", "function": {
            "name": "get_weather", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21 °C"}]


def test_codex_tools_namespaces_flattened_and_hosted_tools_left_out_and_named(sdk, hosts):
    namespace = {"type": "namespace", "name": "weather_v1", "description": "Weather tools", "tools": [WEATHER]}
    raw = sdk.responses.with_raw_response.create(model="sam-desktop/qwen3-8b", input="?", tools=[
        namespace, {"type": "web_search", "external_web_access": False}])
    assert raw.headers["x-boochat-tools-left-out"] == "web_search"
    (call,) = raw.parse().output
    assert (call.name, call.to_dict()["namespace"]) == ("get_weather", "weather_v1")
    (body,) = chat_bodies(hosts["sam-desktop"])
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_weather"]
    events = list(sdk.responses.create(model="sam-desktop/qwen3-8b", input="?", tools=[namespace], stream=True))
    assert events[-1].response.output[0].to_dict()["namespace"] == "weather_v1"


def test_a_streamed_function_call(sdk, hosts):
    events = list(sdk.responses.create(model="sam-desktop/qwen3-8b", input="?", tools=[WEATHER], stream=True,
                                       tool_choice={"type": "function", "name": "get_weather"}))
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Oslo"}
    (item,) = events[-1].response.output
    assert (item.type, item.name, item.status) == ("function_call", "get_weather", "completed")
    (body,) = chat_bodies(hosts["sam-desktop"])
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_an_image_input_goes_as_an_image_url_part(sdk, hosts):
    sdk.responses.create(model="sam-desktop/qwen3-8b", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": PIXEL, "detail": "low"}]}])
    (body,) = chat_bodies(hosts["sam-desktop"])
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}}]}]


def test_deepseek_reasoning_becomes_a_reasoning_item_and_effort_its_control(sdk, hosts):
    response = sdk.responses.create(model="deepseek/deepseek-v4-flash", input="hi", reasoning={"effort": "high"})
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "The user greets." and response.output_text == "Hello!"
    assert response.usage.output_tokens_details.reasoning_tokens == 5
    events = list(sdk.responses.create(model="deepseek/deepseek-v4-flash", input="hi", stream=True,
                                       reasoning={"effort": "medium"}))
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == "The user greets."
    assert events[-1].response.output_text == "Hello!"
    first, second = hosts["deepseek"].chat_bodies()
    assert (first["reasoning_effort"], first["thinking"]) == ("high", {"type": "enabled"})
    assert second["reasoning_effort"] == "high"  # DeepSeek has low, high and max


def test_a_previous_response_is_expanded_for_the_same_key_only(sdk, hosts, asgi_server):
    first = sdk.responses.create(model="sam-desktop/qwen3-8b", input="My name is Ada.", instructions="Be brief.")
    sdk.responses.create(model="sam-desktop/qwen3-8b", input="What is my name?", previous_response_id=first.id)
    sent = chat_bodies(hosts["sam-desktop"])[1]["messages"]
    assert sent == [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": REPLY},
                    {"role": "user", "content": "What is my name?"}]  # instructions are not inherited
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=create_key(name="other")[1], max_retries=0) as other:
        with pytest.raises(openai.BadRequestError) as excinfo:
            other.responses.create(model="sam-desktop/qwen3-8b", input="?", previous_response_id=first.id)
    assert excinfo.value.body["param"] == "previous_response_id" and "unknown or expired" in excinfo.value.body["message"]
    unstored = sdk.responses.create(model="sam-desktop/qwen3-8b", input="hi", store=False)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model="sam-desktop/qwen3-8b", input="?", previous_response_id=unstored.id)
    assert len(chat_bodies(hosts["sam-desktop"])) == 3


def test_a_streamed_response_is_kept_for_a_follow_up(sdk, hosts):
    events = list(sdk.responses.create(model="embedding/qwen3-8b", input="one", stream=True))
    sdk.responses.create(model="embedding/qwen3-8b", input="two", previous_response_id=events[-1].response.id)
    assert chat_bodies(hosts["embedding"])[1]["messages"] == [
        {"role": "user", "content": "one"}, {"role": "assistant", "content": REPLY}, {"role": "user", "content": "two"}]


def test_without_kept_responses_a_previous_id_is_refused(sdk, hosts, settings):
    settings.BOOCHAT_RESPONSES_TTL = 0
    with pytest.raises(openai.BadRequestError) as excinfo:
        sdk.responses.create(model="sam-desktop/qwen3-8b", input="?", previous_response_id="resp_1")
    assert "BOOCHAT_RESPONSES_TTL is 0" in excinfo.value.body["message"]


def test_a_pools_member_answers_and_is_named(sdk, hosts):
    pool = Provider.objects.create(slug="fleet", name="Any box", kind=ProviderKind.POOL)
    ModelOverride.objects.create(provider=pool, model="qwen3-8b", members=["gone/qwen3-8b", "embedding/qwen3-8b"])
    make_provider(slug="gone", name="Gone box", base_url="http://127.0.0.1:9")
    raw = sdk.responses.with_raw_response.create(model="fleet/qwen3-8b", input="hi")
    assert raw.headers["x-booChat-served-by"] == "embedding/qwen3-8b"
    assert raw.parse().output_text == REPLY and raw.parse().model == "fleet/qwen3-8b"
    events = list(sdk.responses.create(model="fleet/qwen3-8b", input="hi", stream=True))
    assert events[-1].response.output_text == REPLY


def test_a_llama_server_that_serves_responses_itself_is_still_asked_for_chat(sdk, hosts):
    with FakeLlamaServer(FakeModel("gemma-3"), agent_apis=True) as lab:
        make_provider(slug="lab", name="Lab", kind=ProviderKind.LLAMA_SERVER, base_url=lab.url)
        events = list(sdk.responses.create(model="lab/gemma-3", input="hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [r.path for r in lab.requests if r.method == "POST"] == ["/v1/chat/completions"]


def test_errors_are_in_openais_envelope(sdk, hosts, asgi_server, key):
    with pytest.raises(openai.BadRequestError) as excinfo:
        sdk.responses.create(model="nowhere/qwen3-8b", input="hi")
    assert excinfo.value.body["code"] == "unknown_provider"
    with pytest.raises(openai.NotFoundError) as excinfo:
        sdk.responses.create(model="sam-desktop/no-such-model", input="hi")
    assert excinfo.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as excinfo:
        sdk.responses.create(model="sam-desktop/qwen3-8b", input=[{"type": "input_file", "file_id": "f1"}])
    assert excinfo.value.body["param"] == "input[0]" and "'input_file'" in excinfo.value.body["message"]
    with pytest.raises(openai.BadRequestError) as excinfo:
        sdk.responses.create(model="sam-desktop/qwen3-8b", input="hi", tools=[
            WEATHER, {"type": "custom", "name": "apply_patch", "format": {"type": "text"}}])
    assert excinfo.value.body["param"] == "tools[1]" and "'custom'" in excinfo.value.body["message"]
    with pytest.raises(openai.BadRequestError) as excinfo:  # the host's own 400: over its context
        sdk.responses.create(model="embedding/qwen3-8b", input="x" * 3000)
    assert excinfo.value.body["type"] == "exceed_context_size_error" and "Embedding box" in excinfo.value.body["message"]
    assert [r.path for r in hosts["embedding"].requests if r.method == "POST"] == ["/v1/chat/completions"]
    # Only the unknown model reached sam-desktop (llama-swap refuses it itself); bad bodies reach no host.
    assert [r.json()["model"] for r in inference_requests(hosts)["sam-desktop"]] == ["no-such-model"]
    response = httpx.post(f"{asgi_server.url}/v1/responses", content=b"[1]",
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_host_failing_mid_stream_fails_the_response(sdk, hosts):
    hosts["embedding"].error_after = 3
    events = list(sdk.responses.create(model="embedding/qwen3-8b", input="hi", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.error.message == "slot crashed"
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_the_django_view_serves_the_same_api(client, key, hosts):
    from django.urls import reverse

    response = client.post(reverse("gateway_responses"), {"model": "sam-desktop/qwen3-8b", "input": "hi"},
                           content_type="application/json", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.json()["output"][0]["content"][0]["text"] == REPLY


def test_streamed_text_keeps_every_character(sdk, hosts):
    hosts["embedding"].reply = ['He said "hi"\\', " é 😀", "\u2028x\n", "</script>"]
    events = list(sdk.responses.create(model="embedding/qwen3-8b", input="hi", stream=True))
    expected = "".join(hosts["embedding"].reply)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected
    assert events[-1].response.output_text == expected
