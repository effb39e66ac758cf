"""The tool catalog against real MCP servers built with the SDK (tests/fakes/mcp_server.py)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group

from tests.factories import make_tool_server
from tests.fakes.mcp_server import FakeMcpServer
from tools import catalog
from tools.catalog import call_tool, function_name_for, servers_for

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def mcp_server():
    with FakeMcpServer() as server:
        yield server


@pytest.fixture(scope="module")
def sse_server():
    with FakeMcpServer("sse") as server:
        yield server


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


def listed(user):
    """The servers after their lists were fetched (the first look starts the background refresh)."""
    async_to_sync(servers_for)(user)
    catalog.wait_for_background_refreshes(30)
    return {s.slug: s for s in async_to_sync(servers_for)(user)}


def test_a_server_is_listed_in_the_background_then_served_from_the_cache(mcp_server, alice):
    make_tool_server(mcp_server.url, slug="lab", name="Lab tools")
    first = async_to_sync(servers_for)(alice)
    assert [(s.slug, s.up, s.error, s.tools, s.checked_at) for s in first] == [("lab", False, "not listed yet", (), None)]

    server = listed(alice)["lab"]
    assert server.up and server.error == "" and server.name == "Lab tools"
    assert [t.name for t in server.tools] == ["echo", "add", "slow", "fail", "huge"]
    add = server.tools[1]
    assert add.function_name == "lab__add" and add.needs_approval and add.server == "lab"
    assert add.input_schema["properties"].keys() == {"a", "b"} and add.description == "Add two integers."


def test_calls_answer_as_text_with_errors_as_results(mcp_server, alice):
    make_tool_server(mcp_server.url, slug="lab")
    listed(alice)
    result = async_to_sync(call_tool)(alice, "lab__add", {"a": 2, "b": 40})
    assert (result.text, result.is_error, result.truncated) == ("42", False, False)
    assert result.duration_ms >= 0

    failed = async_to_sync(call_tool)(alice, "lab__fail", {"reason": "disk full"})
    assert failed.is_error and "fail" in failed.text

    unknown = async_to_sync(call_tool)(alice, "lab__nope", {})
    assert unknown.is_error and "nope" in unknown.text
    no_server = async_to_sync(call_tool)(alice, "elsewhere__add", {"a": 1, "b": 2})
    assert no_server.is_error and "elsewhere__add" in no_server.text


def test_a_huge_result_is_cut(mcp_server, alice, settings):
    settings.BOOCHAT_TOOL_RESULT_MAX_CHARS = 1000
    make_tool_server(mcp_server.url, slug="lab")
    result = async_to_sync(call_tool)(alice, "lab__huge", {"size": 250_000})
    assert result.truncated and not result.is_error
    assert result.text.startswith("0123456789" * 100 + "\n[… cut: the result had 250,000 characters, 1,000 are kept]")


def test_a_call_past_its_timeout_is_an_error_result(mcp_server, alice):
    make_tool_server(mcp_server.url, slug="lab")
    result = async_to_sync(call_tool)(alice, "lab__slow", {"seconds": 30}, timeout=0.5)
    assert result.is_error and result.text == "Lab: no answer within 0.5 s"


def test_cancelling_a_call_propagates(mcp_server, alice):
    make_tool_server(mcp_server.url, slug="lab")

    async def stop_during_call():
        task = asyncio.ensure_future(call_tool(alice, "lab__slow", {"seconds": 30}))
        while not any(name == "slow" for name, _ in mcp_server.calls):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    mcp_server.calls.clear()
    async_to_sync(stop_during_call)()


def test_the_older_sse_transport(sse_server, alice):
    make_tool_server(sse_server.url, slug="old", transport="sse")
    assert [t.name for t in listed(alice)["old"].tools] == ["echo", "add", "slow", "fail", "huge"]
    assert async_to_sync(call_tool)(alice, "old__echo", {"text": "hé"}).text == "hé"


def test_the_bearer_secret_and_headers_are_sent(mcp_server, alice, monkeypatch):
    make_tool_server(mcp_server.url, slug="lab", bearer_secret="s3cret", headers={"X-Team": "lab"})
    mcp_server.headers_seen.clear()
    async_to_sync(call_tool)(alice, "lab__echo", {"text": "x"})
    assert {h.get("authorization") for h in mcp_server.headers_seen} == {"Bearer s3cret"}
    assert {h.get("x-team") for h in mcp_server.headers_seen} == {"lab"}

    monkeypatch.setenv("LAB_MCP_TOKEN", "from-env")
    make_tool_server(mcp_server.url, slug="lab2", api_key_env="LAB_MCP_TOKEN")
    mcp_server.headers_seen.clear()
    async_to_sync(call_tool)(alice, "lab2__echo", {"text": "x"})
    assert {h.get("authorization") for h in mcp_server.headers_seen} == {"Bearer from-env"}


def test_users_reach_only_the_servers_their_groups_allow(mcp_server, alice, django_user_model):
    staff = Group.objects.create(name="staff-tools")
    make_tool_server(mcp_server.url, slug="open")
    make_tool_server(mcp_server.url, slug="closed", groups=[staff])
    make_tool_server(mcp_server.url, slug="off", enabled=False)
    bob = django_user_model.objects.create_user("bob")
    bob.groups.add(staff)

    assert set(listed(alice)) == {"open"}
    assert set(listed(bob)) == {"open", "closed"}

    mcp_server.calls.clear()
    refused = async_to_sync(call_tool)(alice, "closed__echo", {"text": "let me in"})
    assert refused.is_error and "closed__echo" in refused.text
    assert async_to_sync(call_tool)(alice, "off__echo", {"text": "x"}).is_error
    assert mcp_server.calls == []  # refused here: the server never saw them
    assert async_to_sync(call_tool)(bob, "closed__echo", {"text": "hello"}).text == "hello"
    assert mcp_server.calls == [("echo", {"text": "hello"})]


def test_function_names_are_valid_openai_names():
    assert function_name_for("lab", "echo") == "lab__echo"
    assert function_name_for("lab", "files.read/v2") == "lab__files_read_v2"
    long_a = function_name_for("lab", "a" * 80 + "x")
    long_b = function_name_for("lab", "a" * 80 + "y")
    assert len(long_a) == len(long_b) == 64 and long_a != long_b
    assert all(ch.isalnum() or ch in "_-" for ch in long_a)


def test_a_tool_with_a_long_or_odd_name_is_called_by_its_function_name(alice):
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("odd names")
    odd = "files.read/" + "x" * 70

    @server.tool(name=odd)
    def read() -> str:
        return "read it"

    with FakeMcpServer(server=server) as fake:
        make_tool_server(fake.url, slug="odd")
        tool = listed(alice)["odd"].tools[0]
        assert tool.name == odd and len(tool.function_name) == 64
        assert async_to_sync(call_tool)(alice, tool.function_name, {}).text == "read it"


def test_web_search_is_a_built_in_server_for_every_user_when_searxng_is_set(alice, settings):
    from tests.fakes.searxng import FakeSearXNG

    settings.BOOCHAT_SEARXNG_URL = ""
    assert "web" not in listed(alice)
    with FakeSearXNG() as searxng:
        settings.BOOCHAT_SEARXNG_URL = searxng.url
        web = listed(alice)["web"]
        assert (web.name, web.up, web.needs_approval) == ("Web search", True, True)
        assert {t.function_name for t in web.tools} == {"web__web_search", "web__read_page"}
        assert all(t.needs_approval for t in web.tools)
        found = async_to_sync(call_tool)(alice, "web__web_search", {"query": "kettles"})
        assert not found.is_error and "https://example.org/page-1" in found.text
        assert searxng.queries()[0]["q"] == ["kettles"]


def test_a_server_that_is_down_is_listed_down_and_its_calls_are_error_results(alice):
    from tests.fakes.server import FakeHost

    with FakeHost() as closed:
        url = f"{closed.url}/mcp"  # nothing listens there once the fake has stopped
    make_tool_server(url, slug="gone", name="Gone")
    gone = listed(alice)["gone"]
    assert (gone.up, gone.error, gone.tools) == (False, "connection refused or host unreachable", ())
    assert gone.checked_at is not None and gone.refreshed_at is None
    result = async_to_sync(call_tool)(alice, "gone__echo", {"text": "x"})
    assert result.is_error and result.text == "Gone: connection refused or host unreachable"


def test_a_secret_variable_that_is_not_set_is_said_and_nothing_is_sent(mcp_server, alice, monkeypatch):
    monkeypatch.delenv("LAB_MCP_TOKEN", raising=False)
    make_tool_server(mcp_server.url, slug="lab", api_key_env="LAB_MCP_TOKEN")
    mcp_server.headers_seen.clear()
    assert listed(alice)["lab"].error == "its bearer secret variable LAB_MCP_TOKEN is not set"
    result = async_to_sync(call_tool)(alice, "lab__echo", {"text": "x"})
    assert result.is_error and result.text == "Lab: its bearer secret variable LAB_MCP_TOKEN is not set"
    assert mcp_server.headers_seen == []
