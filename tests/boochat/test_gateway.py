"""The OpenAI-compatible gateway, through the official openai SDK against the app served by uvicorn."""

import json
import time

import httpx
import openai
import pytest
from django.test import Client

from boochat.gateway.keys import create_key, hash_key
from boochat.models import GatewayKey
from tests.factories import make_provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key():
    return create_key(name="tests")[1]


@pytest.fixture
def sdk(asgi_server, key):
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=10) as client:
        yield client


def inference_requests(hosts):
    return {name: [r for r in host.requests if r.method == "POST"] for name, host in hosts.items()}


def test_list_models_gives_composite_ids_owned_by_their_provider(sdk, hosts):
    models = {m.id: m for m in sdk.models.list()}
    assert {"sam-desktop/qwen3-8b", "embedding/qwen3-8b", "sam-desktop/box2/gpt-oss-20b",
            "deepseek/deepseek-v4-flash"} <= set(models)
    assert models["embedding/qwen3-8b"].owned_by == "embedding"
    assert models["sam-desktop/qwen3-30b"].model_extra["context_length"] == 32768


def test_retrieve_accepts_the_sdks_percent_encoded_slash(sdk, hosts, asgi_server, key):
    model = sdk.models.retrieve("sam-desktop/box2/gpt-oss-20b")
    assert model.id == "sam-desktop/box2/gpt-oss-20b" and model.owned_by == "sam-desktop"
    auth = {"Authorization": f"Bearer {key}"}
    encoded = httpx.get(f"{asgi_server.url}/v1/models/sam-desktop%2Fqwen3-8b", headers=auth)
    literal = httpx.get(f"{asgi_server.url}/v1/models/sam-desktop/qwen3-8b", headers=auth)
    assert encoded.json() == literal.json() and encoded.json()["id"] == "sam-desktop/qwen3-8b"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("sam-desktop/no-such-model")


def test_chat_non_stream(sdk, hosts):
    answer = sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    (request,) = inference_requests(hosts)["sam-desktop"]
    assert request.json() == {"model": "qwen3-30b", "messages": [{"role": "user", "content": "hi"}]}


def test_the_host_gets_its_own_id_and_the_client_sees_the_one_it_sent(sdk, hosts):
    answer = sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=[{"role": "user", "content": "hi"}])
    chunks = list(sdk.chat.completions.create(model="sam-desktop/qwen3-30b", stream=True,
                                              messages=[{"role": "user", "content": "hi"}]))
    assert [r.json()["model"] for r in inference_requests(hosts)["sam-desktop"]] == ["qwen3-30b", "qwen3-30b"]
    assert answer.model == "sam-desktop/qwen3-30b"
    assert chunks and {chunk.model for chunk in chunks} == {"sam-desktop/qwen3-30b"}


def test_chat_stream_relays_the_hosts_bytes(sdk, hosts):
    stream = sdk.chat.completions.create(
        model="embedding/qwen3-8b", messages=[{"role": "user", "content": "hi"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(hosts["embedding"].reply)
    assert chunks[-1].usage.total_tokens == 40
    (request,) = inference_requests(hosts)["embedding"]
    assert request.json()["stream_options"] == {"include_usage": True}


def test_tool_call_round_trip(sdk, hosts):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=messages, tools=tools, tool_choice="auto")
    call = first.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Oslo"})
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 °C"}]
    second = sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=messages, tools=tools)
    assert second.choices[0].message.content == "Tool result: sunny, 21 °C"
    forwarded = [r.json() for r in inference_requests(hosts)["sam-desktop"]]
    assert forwarded[0]["tools"] == tools and forwarded[0]["tool_choice"] == "auto"
    assert forwarded[1]["messages"][1]["tool_calls"][0]["id"] == call.id


def test_streamed_tool_calls_pass_through(sdk, hosts):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=[{"role": "user", "content": "?"}],
                                              tools=tools, stream=True))
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0][0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_unknown_extra_fields_pass_through_untouched(sdk, hosts):
    sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=[{"role": "user", "content": "hi"}],
                                extra_body={"cache_prompt": True, "samplers": ["top_k"], "id_slot": 2})
    (request,) = inference_requests(hosts)["sam-desktop"]
    assert request.json()["cache_prompt"] is True and request.json()["id_slot"] == 2


def test_embeddings_go_to_the_embedding_host(sdk, hosts):
    result = sdk.embeddings.create(model="embedding/nomic-embed", input=["a", "bb"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert [r.json()["model"] for r in inference_requests(hosts)["embedding"]] == ["nomic-embed"]
    assert inference_requests(hosts)["sam-desktop"] == []


def test_completions(sdk, hosts):
    result = sdk.completions.create(model="sam-desktop/qwen3-8b", prompt="Once upon a time", max_tokens=8)
    assert result.choices[0].finish_reason == "stop"
    assert inference_requests(hosts)["sam-desktop"][0].json() == {"model": "qwen3-8b", "prompt": "Once upon a time", "max_tokens": 8}


def test_same_wire_name_on_two_hosts_reaches_two_hosts(sdk, hosts):
    for model in ("sam-desktop/qwen3-8b", "embedding/qwen3-8b"):
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    requests = inference_requests(hosts)
    assert [r.json()["model"] for r in requests["sam-desktop"]] == ["qwen3-8b"]
    assert [r.json()["model"] for r in requests["embedding"]] == ["qwen3-8b"]


def test_deepseek_is_reached_with_its_key_and_the_bare_name(sdk, hosts):
    answer = sdk.chat.completions.create(model="deepseek/deepseek-v4-flash", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.model_extra["reasoning_content"] == "The user greets."
    (request,) = inference_requests(hosts)["deepseek"]
    assert request.headers["authorization"] == "Bearer sk-test-deepseek"
    assert request.json()["model"] == "deepseek-v4-flash"


def test_a_bare_id_means_the_default_provider(sdk, hosts):
    sdk.chat.completions.create(model="qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert len(inference_requests(hosts)["sam-desktop"]) == 1


def test_unknown_provider_is_400_and_reaches_no_host(sdk, hosts):
    with pytest.raises(openai.BadRequestError) as excinfo:
        sdk.chat.completions.create(model="nowhere/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    error = excinfo.value.body
    assert error["code"] == "unknown_provider" and error["param"] == "model"
    assert "unknown provider 'nowhere'" in error["message"]
    assert all(requests == [] for requests in inference_requests(hosts).values())


def test_unknown_model_on_a_known_provider_is_404(sdk, hosts):
    with pytest.raises(openai.NotFoundError) as excinfo:
        sdk.chat.completions.create(model="sam-desktop/no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "Sam's desktop (sam-desktop) does not serve 'no-such-model'" in excinfo.value.body["message"]


def test_a_down_provider_is_named_in_a_502(sdk, hosts):
    make_provider(slug="gone", name="Gone box", base_url="http://127.0.0.1:9")
    with pytest.raises(openai.APIStatusError) as excinfo:
        sdk.chat.completions.create(model="gone/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 502
    assert "Gone box (gone) is unreachable" in excinfo.value.body["message"]


def test_upstream_errors_keep_their_status(sdk, hosts):
    hosts["sam-desktop"].busy = True
    with pytest.raises(openai.RateLimitError) as excinfo:
        sdk.chat.completions.create(model="sam-desktop/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.response.headers["retry-after"] == "7"
    hosts["deepseek"].balance = False
    with pytest.raises(openai.APIStatusError) as excinfo:
        sdk.chat.completions.create(model="deepseek/deepseek-v4-flash", messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.status_code == 402
    assert excinfo.value.body["message"] == "DeepSeek (deepseek): Insufficient Balance"


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b"[1]", "must be a JSON object"),
    (b'{"messages": []}', "'model' is required"),
    (b'{"model": 7}', "'model' is required"),
    (b'{"model": "sam-desktop/../admin"}', "invalid model id"),
])
def test_bad_bodies_are_400_in_the_openai_envelope(asgi_server, key, hosts, body, message):
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", content=body,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and message in error["message"]
    assert all(requests == [] for requests in inference_requests(hosts).values())


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_missing_or_bad_keys_are_401(asgi_server, hosts, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{asgi_server.url}/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_revoked_key_stops_working_at_once(asgi_server, hosts):
    row, key = create_key(name="laptop")
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{asgi_server.url}/v1/models", headers=auth).status_code == 200
    GatewayKey.objects.filter(pk=row.pk).update(revoked_at="2026-01-01T00:00:00Z")  # as admin's Revoke does
    assert httpx.get(f"{asgi_server.url}/v1/models", headers=auth).status_code == 401


def test_an_open_gateway_needs_no_key(asgi_server, hosts, settings):
    settings.BOOCHAT_GATEWAY_OPEN = True
    assert httpx.get(f"{asgi_server.url}/v1/models").status_code == 200


def test_a_session_cookie_is_not_a_gateway_key(asgi_server, hosts, session_cookie):
    _, cookies = session_cookie()
    assert httpx.get(f"{asgi_server.url}/v1/models", cookies=cookies).status_code == 401


def test_client_disconnect_closes_the_upstream(asgi_server, key, hosts):
    hosts["sam-desktop"].reply, hosts["sam-desktop"].stream_delay = ["x "] * 400, 0.02
    body = {"model": "sam-desktop/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    with httpx.stream("POST", f"{asgi_server.url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {key}"}) as response:
        for chunk in response.iter_raw():
            if b'"x ' in chunk:
                break
    assert hosts["sam-desktop"].wait_for_disconnect(timeout=1.0)


def test_keys_are_stored_hashed_and_shown_once_in_admin(asgi_server):
    from django.contrib.auth import get_user_model

    admin = Client()
    root = get_user_model().objects.create_superuser("root", password="x")
    admin.force_login(root)
    response = admin.post("/admin/boochat/gatewaykey/add/", {"name": "opencode", "user": root.pk})
    assert response.status_code == 200
    key = response.context["key"]
    assert key.startswith("bc-") and key in response.content.decode()
    row = GatewayKey.objects.get()
    assert row.key_hash == hash_key(key) and key not in (row.key_hash, row.prefix)
    listing = admin.get("/admin/boochat/gatewaykey/").content.decode()
    assert key not in listing and row.prefix in listing
    assert key not in str(response.cookies)  # shown on the page, never carried in a cookie


def test_leaving_while_the_host_is_quiet_closes_the_upstream_at_once(asgi_server, key, hosts):
    hosts["sam-desktop"].reply, hosts["sam-desktop"].stream_delay = ["thinking ", "long "], 30
    body = {"model": "sam-desktop/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    with httpx.stream("POST", f"{asgi_server.url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {key}"}) as response:
        next(response.iter_raw())  # the first event; the host then says nothing for 30 s
    assert hosts["sam-desktop"].wait_for_disconnect(timeout=1.0)


@pytest.mark.parametrize(("method", "path", "status", "allow"), [
    ("GET", "/v1/chat/completions", 405, "POST"),
    ("POST", "/v1/models", 405, "GET"),
    ("DELETE", "/v1/embeddings", 405, "POST"),
    ("GET", "/v1/files", 404, None),
    ("GET", "/v1/models/", 404, None),
])
def test_unknown_endpoints_and_methods_are_named_in_the_envelope(asgi_server, key, hosts, method, path, status, allow):
    response = httpx.request(method, f"{asgi_server.url}{path}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == status
    assert path in response.json()["error"]["message"]
    assert response.headers.get("allow") == allow


def test_failed_requests_are_logged_as_django_logs_them(asgi_server, hosts, caplog):
    httpx.get(f"{asgi_server.url}/v1/models", headers={"Authorization": "Bearer bc-wrong"})
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Unauthorized: /v1/models" and record.status_code == 401


def test_a_new_key_works_at_once_and_use_is_recorded(asgi_server, hosts, key):
    assert httpx.get(f"{asgi_server.url}/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    row, second = create_key(name="second")  # after the first request loaded the keys
    assert httpx.get(f"{asgi_server.url}/v1/models", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    deadline = time.monotonic() + 5
    while GatewayKey.objects.get(pk=row.pk).last_used_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert GatewayKey.objects.get(pk=row.pk).last_used_at is not None


def test_admins_revoke_action_stops_a_key_at_once(asgi_server, hosts):
    from django.contrib.auth import get_user_model

    row, key = create_key(name="old laptop")
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{asgi_server.url}/v1/models", headers=auth).status_code == 200
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="x"))
    response = admin.post("/admin/boochat/gatewaykey/", {"action": "revoke", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert GatewayKey.objects.get(pk=row.pk).revoked_at is not None
    assert httpx.get(f"{asgi_server.url}/v1/models", headers=auth).status_code == 401


def test_a_request_is_passed_on_without_tools_even_where_the_chat_has_them(sdk, hosts, key):
    """Agents bring their own tools: the gateway adds none, whatever the key's user turned on in chats."""
    from boochat.models import ChatSession
    from tests.factories import make_tool_server
    from tests.fakes.mcp_server import FakeMcpServer

    with FakeMcpServer() as server:
        make_tool_server(server.url, slug="lab", approval="never")
        user = GatewayKey.objects.get(key_hash=hash_key(key)).user
        ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-30b", tools=["lab"])
        sent = {"model": "sam-desktop/qwen3-30b", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
        sdk.chat.completions.create(**sent)
        (forwarded,) = inference_requests(hosts)["sam-desktop"]
        assert forwarded.json() == {**sent, "model": "qwen3-30b"}
        assert server.calls == []
