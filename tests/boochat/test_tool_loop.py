"""The tool loop of a chat answer, through the test client: the model's calls run on a real MCP
server (tests/fakes/mcp_server.py), their results go back to the model, and everything is saved in
the answer; only the tools the chat turned on, of servers the user's groups may use, are offered."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group
from django.urls import reverse

from boochat.models import ChatSession, Message, MessageState, ToolDecision
from tests.boochat.test_chat import chat_requests, new_session, send, user_of
from tests.factories import make_tool_server
from tests.fakes.mcp_server import FakeMcpServer
from tools import catalog

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def mcp_server():
    with FakeMcpServer() as server:
        yield server


def listed(user):
    async_to_sync(catalog.servers_for)(user)
    catalog.wait_for_background_refreshes(30)


def streamed(host):
    return [b for b in chat_requests(host) if b.get("stream")]


@pytest.fixture
def chat(user_client, hosts, mcp_server):
    make_tool_server(mcp_server.url, slug="lab", approval="never")
    listed(user_of(user_client))
    return new_session(user_client, "sam-desktop/qwen3-30b", title="t", tools=["lab"])


def test_the_models_calls_run_and_their_results_go_back(user_client, hosts, mcp_server, chat):
    host = hosts["sam-desktop"]
    host.tool_rounds = [[("lab__add", {"a": 2, "b": 40}), ("lab__echo", {"text": "<b>hi</b>"})]]
    send(user_client, chat, "What is 2 + 40?")
    first, second = streamed(host)
    assert [t["function"]["name"] for t in first["tools"]] == ["lab__echo", "lab__add", "lab__slow", "lab__fail", "lab__huge"]
    assert first["tools"][1]["function"]["parameters"]["properties"].keys() == {"a", "b"}
    assert second["messages"][-3]["tool_calls"][0]["function"] == {"name": "lab__add", "arguments": '{"a": 2, "b": 40}'}
    assert second["messages"][-2:] == [{"role": "tool", "tool_call_id": "call_fake_1", "content": "42"},
                                      {"role": "tool", "tool_call_id": "call_fake_2", "content": "<b>hi</b>"}]
    assert mcp_server.calls[-2:] == [("add", {"a": 2, "b": 40}), ("echo", {"text": "<b>hi</b>"})]
    answer = chat.messages.get(role="assistant")
    assert (answer.state, answer.content, answer.tool_calls) == (MessageState.COMPLETE, "Tool result: <b>hi</b>", None)
    (round_,) = answer.tool_rounds
    assert [(c["function"], c["result"], c["is_error"], c["approval"], c["state"]) for c in round_["calls"]] == [
        ("lab__add", "42", False, "auto", "done"), ("lab__echo", "<b>hi</b>", False, "auto", "done")]
    assert all(isinstance(c["duration_ms"], int) for c in round_["calls"])
    page = user_client.get(chat.get_absolute_url()).content.decode()
    assert "lab__add" in page and "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page


def test_a_tool_error_is_the_models_to_read(user_client, hosts, chat):
    hosts["sam-desktop"].tool_rounds = [[("lab__fail", {"reason": "disk full"}), ("lab__add", {"a": "x"})]]
    send(user_client, chat, "Try")
    calls = chat.messages.get(role="assistant").tool_rounds[0]["calls"]
    assert all(c["is_error"] for c in calls) and "Error executing tool fail" in calls[0]["result"]
    assert streamed(hosts["sam-desktop"])[1]["messages"][-2]["content"] == calls[0]["result"]


def test_arguments_that_are_not_json_are_not_called(user_client, hosts, mcp_server, chat):
    hosts["sam-desktop"].tool_rounds = [[("lab__echo", "not json")]]  # json.dumps of a string: not an object
    send(user_client, chat, "Try")
    (call,) = chat.messages.get(role="assistant").tool_rounds[0]["calls"]
    assert call["is_error"] and "must be a JSON object" in call["result"] and not mcp_server.calls[-1:] == [("echo", {})]


def test_the_step_cap_ends_the_answer_with_a_notice(user_client, hosts, settings, chat):
    settings.BOOCHAT_TOOL_MAX_STEPS = 2
    hosts["sam-desktop"].tool_rounds = [[("lab__add", {"a": i, "b": 1})] for i in range(5)]
    send(user_client, chat, "Count")
    answer = chat.messages.get(role="assistant")
    assert len(streamed(hosts["sam-desktop"])) == 3
    assert answer.state == MessageState.INTERRUPTED and "limit of 2 rounds of tool calls" in answer.error
    assert [c["result"] for r in answer.tool_rounds for c in r["calls"]][:2] == ["1", "2"]
    assert answer.tool_rounds[2]["calls"][0]["result"].startswith("Not run: the answer reached BooChat's limit")
    assert "limit of 2 rounds" in user_client.get(chat.get_absolute_url()).content.decode()


def test_a_model_that_calls_no_tools_is_offered_none(user_client, hosts, chat):
    hosts["sam-desktop"].models[0].template_caps = {"supports_tools": False}
    send(user_client, chat, "hi")
    assert "tools" not in streamed(hosts["sam-desktop"])[0]


def test_a_server_the_users_groups_may_not_use_is_not_offered(user_client, hosts, mcp_server, django_user_model):
    make_tool_server(mcp_server.url, slug="ops", approval="never", groups=[Group.objects.create(name="ops")])
    make_tool_server(mcp_server.url, slug="lab", approval="never")
    listed(user_of(user_client))
    chat = new_session(user_client, "sam-desktop/qwen3-30b", title="t", tools=["ops", "lab__echo"])
    hosts["sam-desktop"].tool_rounds = [[("ops__add", {"a": 1, "b": 1})]]
    send(user_client, chat, "hi")
    first = streamed(hosts["sam-desktop"])[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["lab__echo"]
    (call,) = chat.messages.get(role="assistant").tool_rounds[0]["calls"]
    assert call["is_error"] and "no tool 'ops__add' in this chat" in call["result"]
