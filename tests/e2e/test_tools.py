"""Tools in the chat, in Chromium: the model's calls wait for approval (Run, Always for this chat,
Deny), show as collapsible blocks with their results as text, and Stop, a reload, a server that went
down, a tool's error and the step cap all behave as the user expects. The tools are a real MCP server
built with the SDK (tests/fakes/mcp_server.py)."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider, make_tool_server
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel
from tests.fakes.mcp_server import FakeMcpServer
from tools import catalog

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 20000  # ms: the machine may be busy; nothing here waits that long when all is well


@pytest.fixture(scope="module")
def mcp_server():
    with FakeMcpServer() as server:
        yield server


@pytest.fixture
def host():
    with FakeLlamaSwap([FakeModel("qwen3-30b", n_ctx=32768, loaded=True)]) as fake:
        yield fake


def open_chat(page, base_url, host, server_url, *, approval="ask", slug="lab"):
    """A chat on a model that calls tools, with the tool server `slug` on, its tools listed."""
    make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
    make_tool_server(server_url, slug=slug, approval=approval)
    user = User.objects.get(username="alice")
    catalog.servers_now(user)
    catalog.wait_for_background_refreshes(30)
    session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-30b", title="Tools", tools=[slug])
    page.goto(f"{base_url}{session.get_absolute_url()}")
    return session


def ask(page, text="What is 2 + 40?"):
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def answer_of(page):
    return page.locator("article.message.assistant").last


def saved_answer():
    return Message.objects.get(role="assistant")


def test_approve_once_then_always_for_this_chat(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url)
    host.tool_rounds = [[("lab__add", {"a": 2, "b": 40})], [("lab__add", {"a": 42, "b": 1})], [("lab__add", {"a": 43, "b": 1})]]
    ask(page)
    block = answer_of(page).locator(".tool-call").first
    expect(block).to_contain_text("waits for your approval", timeout=WAIT)
    expect(block.locator(".tool-arguments")).to_have_text('{"a": 2, "b": 40}', timeout=WAIT)
    block.get_by_role("button", name="Run", exact=True).click()
    expect(block.locator(".tool-result")).to_have_text("42", timeout=WAIT)
    second = answer_of(page).locator(".tool-call").nth(1)
    expect(second).to_contain_text("waits for your approval", timeout=WAIT)
    second.get_by_role("button", name="Always for this chat").click()
    expect(answer_of(page).locator(".markdown").last).to_have_text("Tool result: 44", timeout=WAIT)
    calls = answer_of(page).locator(".tool-call")
    expect(calls).to_have_count(3, timeout=WAIT)
    expect(calls.nth(2)).to_contain_text("done", timeout=WAIT)  # the third ran without asking
    expect(calls.nth(2)).to_contain_text(" ms", timeout=WAIT)
    assert [c["approval"] for r in saved_answer().tool_rounds for c in r["calls"]] == ["run", "always", "auto"]
    assert ChatSession.objects.get().tools_always == ["lab__add"]


def test_deny_tells_the_model_and_runs_nothing(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url)
    host.tool_rounds = [[("lab__echo", {"text": "secret"})]]
    before = len(mcp_server.calls)
    ask(page)
    answer_of(page).get_by_role("button", name="Deny").click()
    expect(answer_of(page).locator(".markdown").last).to_have_text("Tool result: The user denied this call.", timeout=WAIT)
    expect(answer_of(page).locator(".tool-call")).to_contain_text("denied", timeout=WAIT)
    assert len(mcp_server.calls) == before


def test_the_call_block_collapses_and_shows_results_as_text(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url, approval="never")
    evil = '<img src=x onerror="document.title=\'pwned\'"><b>bold</b>'
    host.tool_rounds = [[("lab__echo", {"text": evil})]]
    ask(page)
    expect(answer_of(page).locator(".markdown").last).to_contain_text("Tool result:", timeout=WAIT)
    block = answer_of(page).locator("details.tool-call")
    expect(block).not_to_have_attribute("open", "")
    expect(block.locator(".tool-result")).not_to_be_visible()
    block.locator("summary").click()
    expect(block.locator(".tool-result")).to_have_text(evil, timeout=WAIT)
    expect(block.locator("img, b")).to_have_count(0, timeout=WAIT)
    assert page.title() != "pwned"


def test_stop_during_a_slow_tool_stops_the_call_and_the_answer(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url, approval="never")
    host.tool_rounds = [[("lab__slow", {"seconds": 60})]]
    ask(page)
    expect(answer_of(page).locator(".tool-call")).to_contain_text("running…", timeout=WAIT)
    page.get_by_role("button", name="Stop").click()
    expect(answer_of(page).locator(".state-label.stopped")).to_have_text("Stopped", timeout=WAIT)  # the saved answer
    expect(answer_of(page).locator(".tool-call")).to_contain_text("error", timeout=WAIT)
    answer = saved_answer()
    assert answer.state == MessageState.INTERRUPTED
    assert answer.tool_rounds[0]["calls"][0]["result"] == "Stopped before the answer was complete."
    assert len([r for r in host.requests_to("/v1/chat/completions")]) == 1  # the model was not asked again


def test_a_reload_while_a_call_waits_for_approval_shows_it_again(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url)
    host.tool_rounds = [[("lab__add", {"a": 1, "b": 2})]]
    ask(page)
    expect(answer_of(page).get_by_role("button", name="Run", exact=True)).to_be_visible(timeout=WAIT)
    page.reload()
    run = answer_of(page).get_by_role("button", name="Run", exact=True)
    expect(run).to_be_visible(timeout=WAIT)
    run.click()
    expect(answer_of(page).locator(".markdown").last).to_have_text("Tool result: 3", timeout=WAIT)
    assert saved_answer().state == MessageState.COMPLETE


def test_a_server_that_went_down_and_a_tool_error_show_as_errors(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    with FakeMcpServer() as doomed:
        open_chat(page, asgi_server.url, host, doomed.url, approval="never", slug="doomed")
    ChatSession.objects.update(tools=["doomed"])
    host.tool_rounds = [[("doomed__echo", {"text": "hi"})]]
    ask(page)
    block = answer_of(page).locator(".tool-call")
    expect(answer_of(page).locator(".markdown").last).to_contain_text("Tool result: Doomed:", timeout=WAIT)
    expect(block).to_contain_text("error", timeout=WAIT)
    block.locator("summary").click()
    expect(block.locator(".tool-result")).to_contain_text("Doomed:", timeout=WAIT)
    assert saved_answer().tool_rounds[0]["calls"][0]["is_error"]


def test_a_failing_tool_is_an_error_for_the_model_to_read(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url, approval="never")
    host.tool_rounds = [[("lab__fail", {"reason": "disk full"})]]
    ask(page)
    expect(answer_of(page).locator(".markdown").last).to_contain_text("Tool result: Error executing tool fail", timeout=WAIT)
    expect(answer_of(page).locator(".tool-call.tool-error")).to_contain_text("error", timeout=WAIT)


def test_the_step_cap_ends_the_answer_with_a_notice(asgi_page, asgi_server, host, mcp_server, settings):
    settings.BOOCHAT_TOOL_MAX_STEPS = 2
    page = asgi_page
    open_chat(page, asgi_server.url, host, mcp_server.url, approval="never")
    host.tool_rounds = [[("lab__add", {"a": i, "b": 1})] for i in range(4)]
    ask(page)
    expect(answer_of(page).locator(".message-error")).to_contain_text("limit of 2 rounds of tool calls", timeout=WAIT)
    expect(answer_of(page).locator(".tool-call")).to_have_count(3, timeout=WAIT)
    expect(answer_of(page).locator(".tool-call").nth(2)).to_contain_text("error", timeout=WAIT)


def test_the_tools_control_turns_a_single_tool_on_for_the_chat(asgi_page, asgi_server, host, mcp_server):
    page = asgi_page
    session = open_chat(page, asgi_server.url, host, mcp_server.url)
    page.get_by_role("button", name="Tools (1 on)").click()
    page.get_by_label("Lab").uncheck()
    expect(page.get_by_role("button", name="Tools", exact=True)).to_be_visible(timeout=WAIT)  # the menu stays open
    page.get_by_label("echo").check()
    expect(page.get_by_role("button", name="Tools (1 on)")).to_be_visible(timeout=WAIT)
    session.refresh_from_db()
    assert session.tools == ["lab__echo"]
    host.tool_rounds = []
    ask(page, "hi")
    expect(answer_of(page).locator(".markdown")).to_be_visible(timeout=WAIT)
    sent = [r.json() for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["lab__echo"]
