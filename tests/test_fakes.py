"""The fakes answer like the captured hosts; later tests rely on them, so they are checked here."""

import json

import httpx
import pytest

from tests.fakes.deepseek import FakeDeepSeek
from tests.fakes.fixtures import (
    decode_chunked,
    fixture_bytes,
    http_fixture,
    json_fixture,
    sse_events,
)
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

V226_CAPS = {"capabilities": {"function_calling": True, "vision": True}}
V250_EXTRA = {
    "architecture": {"input_modalities": ["text", "image"], "modality": "text+image->text", "output_modalities": ["text"]},
    "capabilities": {"function_calling": True, "vision": True},
    "supported_parameters": ["tools", "tool_choice"],
}


def fixture_host(version):
    """The host the llama-swap fixtures were written for."""
    extra = {"v150": {}, "v226": V226_CAPS, "v250": V250_EXTRA}[version]
    models = [
        FakeModel("qwen3-30b", name="Qwen3 30B", description="MoE, 3B active", context_length=32768,
                  aliases=("coder",), extra=extra, loaded=True),
        FakeModel("qwen3-8b"),
    ]
    if version != "v150":
        models.insert(0, FakeModel("gpt-oss-20b", peer="box2"))
    return FakeLlamaSwap(models, version=version)


def without_created(listing):
    return [{k: v for k, v in entry.items() if k != "created"} for entry in listing["data"]]


@pytest.mark.parametrize("version", ["v150", "v226", "v250"])
def test_model_listing_matches_each_llama_swap_version(version):
    with fixture_host(version) as host:
        listing = httpx.get(f"{host.url}/v1/models").json()
    assert without_created(listing) == without_created(json_fixture(f"llama-swap/{version}-v1-models.json"))


def test_running_lists_loaded_models():
    with fixture_host("v150") as host:
        assert httpx.get(f"{host.url}/running").json() == json_fixture("llama-swap/v150-running.json")


@pytest.mark.parametrize("version, status, body", [
    ("v150", 400, b"could not find suitable inference handler for nosuch"),
    ("v226", 404, fixture_bytes("llama-swap/v226-unknown-model-404.json")),
    ("head", 404, fixture_bytes("llama-swap/head-unknown-model-404.json")),
])
def test_unknown_model_answers_in_each_versions_shape(version, status, body):
    with FakeLlamaSwap(version=version) as host:
        response = httpx.post(f"{host.url}/v1/chat/completions", json={"model": "nosuch", "messages": []})
    assert (response.status_code, response.content) == (status, body)


def test_stream_is_byte_identical_to_the_capture():
    with FakeLlamaSwap() as host:
        with httpx.stream("POST", f"{host.url}/v1/chat/completions",
                          json=json_fixture("llama-server/requests/chat_stream_usage.json")) as response:
            body = b"".join(response.iter_raw())
    assert response.headers["content-type"] == "text/event-stream"
    assert body == http_fixture("llama-server/12-a-chat-stream-usage.http")[2]


def test_stream_without_usage_matches_its_capture():
    with FakeLlamaSwap() as host:
        request = {**json_fixture("llama-server/requests/chat_stream.json")}
        body = httpx.post(f"{host.url}/v1/chat/completions", json=request).content
    assert body == http_fixture("llama-server/11-a-chat-stream.http")[2]


def test_each_event_is_its_own_network_chunk_like_the_wire_capture():
    wire = fixture_bytes("llama-server/90-a-chat-stream-usage.wire")
    captured = decode_chunked(wire.partition(b"\r\n\r\n")[2])
    host = FakeLlamaSwap()
    assert b"".join(host.stream_events("qwen3-8b", include_usage=True)).count(b"data: ") == captured.count(b"data: ")


def test_non_stream_chat_matches_the_capture():
    with FakeLlamaSwap() as host:
        answer = httpx.post(f"{host.url}/v1/chat/completions", json=json_fixture("llama-server/requests/chat.json")).json()
    captured = json_fixture("llama-server/10-a-chat.http")
    assert answer["choices"][0]["message"]["content"] == "".join(host.reply)
    answer["choices"][0]["message"]["content"] = captured["choices"][0]["message"]["content"]
    assert answer == captured


def test_over_context_is_refused_like_llama_server_also_when_streaming():
    with FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=2048)]) as host:
        response = httpx.post(f"{host.url}/v1/chat/completions", json=json_fixture("llama-server/requests/over_ctx_stream.json"))
    assert response.status_code == 400
    assert response.json() == json_fixture("llama-server/21-a-over-ctx-stream.http")


def test_the_same_prompt_fits_one_host_and_not_the_other():
    request = json_fixture("llama-server/requests/mid_ctx.json")
    with FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=2048)]) as a, FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=1024)]) as b:
        assert httpx.post(f"{a.url}/v1/chat/completions", json=request).status_code == 200
        over = httpx.post(f"{b.url}/v1/chat/completions", json=request)
    assert over.json() == json_fixture("llama-server/58-b-mid-ctx-over.http")


def test_props_report_the_models_context_and_load_it():
    with FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=1024), FakeModel("other", loaded=True)]) as host:
        props = httpx.get(f"{host.url}/upstream/qwen3-8b/props").json()
        running = httpx.get(f"{host.url}/running").json()
    assert props["default_generation_settings"]["n_ctx"] == 1024
    assert props.keys() == json_fixture("llama-server/02-a-props.http").keys()
    assert running == {"running": [{"model": "qwen3-8b", "state": "ready"}]}


def test_chat_needs_the_json_content_type_like_llama_swap():
    with FakeLlamaSwap() as host:
        response = httpx.post(f"{host.url}/v1/chat/completions", content=b'{"model":"qwen3-8b"}')
    assert response.status_code == 400


def test_loading_state_precedes_a_swap():
    with FakeLlamaSwap([FakeModel("qwen3-30b")], send_loading_state=True) as host:
        body = httpx.post(f"{host.url}/v1/chat/completions",
                          json={"model": "qwen3-30b", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).content
    events = [e for e in body.split(b"\n\n") if e]
    assert json.loads(events[0][6:]) == json.loads(sse_events("llama-swap/v250-send-loading-state-stream.sse")[0][6:])


def test_client_disconnect_is_observed():
    with FakeLlamaSwap(reply=["x"] * 200, stream_delay=0.02) as host:
        with httpx.stream("POST", f"{host.url}/v1/chat/completions",
                          json={"model": "qwen3-8b", "stream": True, "messages": []}) as response:
            next(response.iter_raw())
        assert host.wait_for_disconnect(2)


def test_several_hosts_run_at_once_and_record_their_own_requests():
    with FakeLlamaSwap() as a, FakeLlamaSwap() as b:
        httpx.get(f"{a.url}/health")
        assert a.port != b.port
        assert [r.path for r in a.requests] == ["/health"]
        assert b.requests == []


class TestFakeDeepSeek:
    def test_requires_the_key(self):
        with FakeDeepSeek() as host:
            assert httpx.get(f"{host.url}/models").status_code == 401
            listing = httpx.get(f"{host.url}/models", headers={"Authorization": "Bearer sk-test-deepseek"}).json()
        assert listing == json_fixture("deepseek/models.json")

    def test_streams_keep_alives_and_reasoning(self):
        with FakeDeepSeek() as host:
            body = httpx.post(f"{host.url}/chat/completions", headers={"Authorization": "Bearer sk-test-deepseek"},
                              json={"model": "deepseek-v4-flash", "stream": True, "messages": []}).content
        assert body == fixture_bytes("deepseek/chat-stream-thinking.sse")

    def test_insufficient_balance_is_402(self):
        with FakeDeepSeek(balance=False) as host:
            response = httpx.post(f"{host.url}/chat/completions", headers={"Authorization": "Bearer sk-test-deepseek"},
                                  json={"model": "deepseek-v4-flash", "messages": []})
        assert response.status_code == 402


class TestLlamaServer:
    def test_a_plain_server_lists_its_model_and_answers_any_name_with_it(self):
        from tests.fakes.llama_server import FakeLlamaServer

        with FakeLlamaServer() as host:
            assert httpx.get(f"{host.url}/v1/models").json() == json_fixture("llama-server/03-a-v1-models.http")
            answer = httpx.post(f"{host.url}/v1/chat/completions",
                                json=json.loads(fixture_bytes("llama-server/requests/chat_unknown_model.json")))
            assert answer.status_code == 200 and answer.json()["model"] == "qwen3-8b"  # as fixture 15
            props = httpx.get(f"{host.url}/props", params={"model": "anything"}).json()
            assert props == json_fixture("llama-server/02-a-props.http")  # ?model= is ignored

    def test_a_router_answers_props_with_its_placeholder_unless_a_model_is_named(self):
        from tests.fakes.fixtures import recorded_answer
        from tests.fakes.llama_server import FakeLlamaServerRouter

        with FakeLlamaServerRouter([FakeModel("tiny-alpha", loaded=True), FakeModel("tiny-beta")]) as host:
            session = "llama-server-router/session.http"
            assert httpx.get(f"{host.url}/props").json() == recorded_answer(session, "GET /props")
            props = httpx.get(f"{host.url}/props", params={"model": "tiny-alpha"}).json()
            assert props["default_generation_settings"]["n_ctx"] == 2048 and props["model_alias"] == "tiny-alpha"
            listed = httpx.get(f"{host.url}/v1/models").json()["data"]
            assert [entry["status"]["value"] for entry in listed] == ["loaded", "unloaded"]
            assert listed[0]["meta"]["n_ctx"] == 2048 and "meta" not in listed[1]  # as the recorded router
