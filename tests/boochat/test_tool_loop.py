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


def test_deepseek_calls_tools_and_gets_its_reasoning_back(user_client, hosts, chat):
    ChatSession.objects.filter(pk=chat.pk).update(model_id="deepseek/deepseek-v4-flash")
    hosts["deepseek"].tool_rounds = [[("lab__add", {"a": 2, "b": 40})]]
    send(user_client, ChatSession.objects.get(pk=chat.pk), "2 + 40?")
    first, second = hosts["deepseek"].chat_bodies()
    assert [t["function"]["name"] for t in first["tools"]][:2] == ["lab__echo", "lab__add"]
    assert second["messages"][-2] == {"role": "assistant", "content": None, "reasoning_content": "A tool can tell.",
                                      "tool_calls": [{"id": "call_00_ds", "type": "function", "function": {
                                          "name": "lab__add", "arguments": '{"a": 2, "b": 40}'}}]}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_00_ds", "content": "42"}
    answer = chat.messages.get(role="assistant")
    assert (answer.state, answer.tool_rounds[0]["reasoning"]) == (MessageState.COMPLETE, "A tool can tell.")


def test_the_usage_record_counts_every_round(user_client, hosts, chat):
    from boochat.models import UsageRecord
    from boochat.usage.recording import recorder

    hosts["sam-desktop"].tool_rounds = [[("lab__add", {"a": 2, "b": 40})]]
    send(user_client, chat, "2 + 40?")
    recorder.flush()
    (record,) = UsageRecord.objects.filter(source="chat")
    assert (record.prompt_tokens, record.completion_tokens) == (2 * 22, 2 * 18)  # the captured usage, once a request


def test_a_tool_the_chat_always_runs_is_not_asked_about_again(user_client, hosts, mcp_server, chat):
    from tools.models import ToolServer

    ToolServer.objects.filter(slug="lab").update(approval="ask")
    catalog.refresh_now(catalog.connections_for(user_of(user_client)))
    ChatSession.objects.filter(pk=chat.pk).update(tools_always=["lab__add"])
    hosts["sam-desktop"].tool_rounds = [[("lab__add", {"a": 2, "b": 40})]]
    send(user_client, chat, "2 + 40?")  # a plain post waits for the whole answer: it would wait for a decision
    (call,) = chat.messages.get(role="assistant").tool_rounds[0]["calls"]
    assert (call["result"], call["approval"]) == ("42", "auto") and not ToolDecision.objects.exists()


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


def small_context(hosts, n_ctx):
    """qwen3-30b holds only `n_ctx` tokens: its host refuses more, and BooChat knows the size."""
    from providers.models import ModelOverride, Provider

    hosts["sam-desktop"].models[0].n_ctx = n_ctx
    ModelOverride.objects.create(provider=Provider.objects.get(slug="sam-desktop"), model="qwen3-30b", context_size=n_ctx)


def test_a_result_too_large_for_the_context_is_shortened_for_the_model_only(user_client, hosts, chat):
    small_context(hosts, 6000)
    hosts["sam-desktop"].tool_rounds = [[("lab__huge", {"size": 6000}), ("lab__huge", {"size": 3000})]]
    send(user_client, chat, "Read both")
    answer = chat.messages.get(role="assistant")
    assert (answer.state, answer.error) == (MessageState.COMPLETE, "")
    asked = streamed(hosts["sam-desktop"])[-1]["messages"]
    older, newer = asked[-2]["content"], asked[-1]["content"]
    assert older.startswith("0123456789") and older.endswith(" of 6000 characters]")
    assert "\n[result shortened to fit the context: " in older and len(older) < 6000
    kept = int(older.rsplit(": ", 1)[1].split(" ")[0])
    assert 0 < kept and older == ("0123456789" * 600)[:kept] + f"\n[result shortened to fit the context: {kept} of 6000 characters]"
    assert newer == "0123456789" * 300  # the oldest result is cut first
    assert [len(c["result"]) for c in answer.tool_rounds[0]["calls"]] == [6000, 3000]  # saved whole
    page = user_client.get(chat.get_absolute_url()).content.decode()
    assert "0123456789" * 600 in page and "result shortened" not in page


def test_an_answer_that_cannot_fit_even_shortened_fails_saying_why(user_client, hosts, chat):
    small_context(hosts, 1200)
    hosts["sam-desktop"].tool_rounds = [[("lab__huge", {"size": 1000})]]
    send(user_client, chat, "Read this: " + "words " * 275)  # fits alone, but leaves no room for the result
    answer = chat.messages.get(role="assistant")
    assert answer.state == MessageState.FAILED
    assert answer.error == ("The conversation no longer fits the context of sam-desktop/qwen3-30b (1,200 tokens), even "
                            "with this answer's tool results shortened; the model was not asked again.")
    assert answer.tool_rounds[0]["calls"][0]["result"] == "0123456789" * 100
    assert "no longer fits the context" in user_client.get(chat.get_absolute_url()).content.decode()


@pytest.mark.parametrize("limit, rounds", [(5_000, 2), (3_500, 1)])
def test_the_size_cap_counts_every_round_and_result(user_client, hosts, settings, chat, limit, rounds):
    """Each round alone is under the cap: the whole answer is not. It ends while the model writes
    (5,000), or before the model is asked again when the results pass it (3,500)."""
    settings.BOOCHAT_MAX_ANSWER_BYTES = limit
    hosts["sam-desktop"].tool_rounds = [[("lab__huge", {"size": 3000})]]
    send(user_client, chat, "Read")
    answer = chat.messages.get(role="assistant")
    assert len(streamed(hosts["sam-desktop"])) == rounds
    assert answer.state == MessageState.INTERRUPTED
    assert answer.error == (f"Truncated: the answer passed BooChat's limit of {limit:,} bytes (BOOCHAT_MAX_ANSWER_BYTES); "
                            "Sam's desktop (sam-desktop) was stopped here.")
    assert len(answer.tool_rounds[0]["calls"][0]["result"]) == 3000
    assert "Truncated: the answer passed" in user_client.get(chat.get_absolute_url()).content.decode()


def test_a_model_that_calls_no_tools_is_offered_none(user_client, hosts, chat):
    hosts["sam-desktop"].models[0].template_caps = {"supports_tools": False}
    send(user_client, chat, "hi")
    assert "tools" not in streamed(hosts["sam-desktop"])[0]


def test_an_answer_regenerated_on_a_model_that_calls_no_tools_is_offered_none(user_client, hosts, chat):
    hosts["sam-desktop"].tool_rounds = []
    send(user_client, chat, "hi")
    answer = chat.messages.get(role="assistant")
    user_client.post(reverse("chat_regenerate", args=[answer.pk]), {"model_id": "deepseek/deepseek-v4-flash"})
    user_client.post(reverse("chat_regenerate", args=[answer.pk]), {"model_id": "embedding/qwen3-8b"})
    assert "tools" in streamed(hosts["sam-desktop"])[0] and "tools" in hosts["deepseek"].chat_bodies()[0]
    assert "tools" not in streamed(hosts["embedding"])[0]  # not loaded: whether it calls tools is not known


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


class TestTheToolsControl:
    def test_it_is_offered_only_for_a_model_that_calls_tools(self, user_client, hosts, chat):
        page = user_client.get(chat.get_absolute_url())
        assert [s.slug for s in page.context_data["tool_servers"]] == ["lab"]
        assert 'id="tools-control"' in page.content.decode() and 'value="lab__echo"' in page.content.decode()
        ChatSession.objects.filter(pk=chat.pk).update(model_id="sam-desktop/qwen3-8b")  # not loaded: not known
        page = user_client.get(chat.get_absolute_url())
        assert page.context_data["tool_servers"] == [] and 'id="tools-control"' not in page.content.decode()

    def test_a_choice_is_remembered_per_chat(self, user_client, hosts, chat):
        response = user_client.post(reverse("chat_tools", args=[chat.pk]), {"tools": ["lab__echo", "lab__add"]},
                                    headers={"HX-Request": "true"})
        assert response.status_code == 200 and response.template_name == "chat.html#tools_control"
        assert "(2 on)" in response.content.decode()
        chat.refresh_from_db()
        assert chat.tools == ["lab__echo", "lab__add"]
        assert user_client.post(reverse("chat_tools", args=[chat.pk]), {}).status_code == 302
        chat.refresh_from_db()
        assert chat.tools == []

    def test_an_unknown_or_forbidden_tool_is_refused(self, user_client, hosts, mcp_server, chat):
        make_tool_server(mcp_server.url, slug="ops", groups=[Group.objects.create(name="ops")])
        response = user_client.post(reverse("chat_tools", args=[chat.pk]), {"tools": ["lab", "ops", "nope__x"]})
        assert response.status_code == 400 and response.content.decode() == "No such tool server or tool for you: ops, nope__x."
        chat.refresh_from_db()
        assert chat.tools == ["lab"]

    def test_another_users_chat_is_out_of_reach(self, user_client, hosts, django_user_model):
        other = ChatSession.objects.create(user=django_user_model.objects.create_user("bob"), model_id="x/y")
        assert user_client.post(reverse("chat_tools", args=[other.pk]), {"tools": []}).status_code == 404

    def test_a_preset_keeps_the_tools_and_a_new_chat_starts_with_them(self, user_client, hosts, chat):
        user_client.post(reverse("chat_settings", args=[chat.pk]), {"keep": "preset", "preset_name": "Research"})
        preset = user_of(user_client).presets.get(name="Research")
        assert preset.tools == ["lab"]
        page = user_client.get(reverse("chat_new"), {"model": "sam-desktop/qwen3-30b", "preset": preset.pk}).content.decode()
        assert 'name="tools" value="lab" form="composer" checked' in page  # the new chat's page offers the preset's
        user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-30b", "preset": preset.pk, "content": "Hi"})
        assert ChatSession.objects.exclude(pk=chat.pk).get().tools == ["lab"]

    def test_a_new_chats_tools_go_with_its_first_message(self, user_client, hosts, chat):
        new = {"model_id": "sam-desktop/qwen3-30b", "content": "Hi"}
        refused = user_client.post(reverse("chat_new"), {**new, "tools": ["", "nope"]}, headers={"X-BooChat-Stream": "1"})
        assert refused.status_code == 400 and "nope" in refused.content.decode()
        assert ChatSession.objects.count() == 1  # nothing saved
        user_client.post(reverse("chat_new"), {**new, "tools": ["", "lab__add"]})
        assert ChatSession.objects.exclude(pk=chat.pk).get().tools == ["lab__add"]
        user_client.post(reverse("chat_new"), {**new, "tools": [""]})  # the control shown, nothing on
        assert ChatSession.objects.exclude(pk=chat.pk).order_by("-pk").first().tools == []


class TestDecisions:
    def waiting_answer(self, chat, call_id="call_9", **fields):
        question = Message.objects.create(session=chat, role="user", content="q")
        return Message.objects.create(session=chat, parent=question, role="assistant", state=MessageState.STREAMING, **fields,
                                      tool_rounds=[{"text": "", "reasoning": "", "calls": [
                                          {"id": call_id, "function": "lab__add", "arguments": "{}", "result": "",
                                           "is_error": False, "duration_ms": None, "approval": "", "state": "waiting"}]}])

    def test_a_decision_is_saved_once_and_always_is_remembered(self, user_client, hosts, chat):
        answer = self.waiting_answer(chat)
        url = reverse("chat_tool_decision", args=[answer.pk])
        assert user_client.post(url, {"call": "call_9", "choice": "always"}, headers={"X-BooChat-Stream": "1"}).status_code == 204
        assert user_client.post(url, {"call": "call_9", "choice": "deny"}).status_code == 302  # the first one wins
        assert list(ToolDecision.objects.values_list("call_id", "choice")) == [("call_9", "always")]
        chat.refresh_from_db()
        assert chat.tools_always == ["lab__add"]

    @pytest.mark.parametrize("data, status", [({"call": "call_9", "choice": "maybe"}, 400),
                                              ({"call": "call_x", "choice": "run"}, 404)])
    def test_bad_decisions_are_refused(self, user_client, hosts, chat, data, status):
        answer = self.waiting_answer(chat)
        assert user_client.post(reverse("chat_tool_decision", args=[answer.pk]), data).status_code == status
        assert not ToolDecision.objects.exists()

    def test_another_users_answer_is_out_of_reach(self, client, hosts, chat, django_user_model):
        answer = self.waiting_answer(chat)
        client.force_login(django_user_model.objects.create_user("bob"))
        response = client.post(reverse("chat_tool_decision", args=[answer.pk]), {"call": "call_9", "choice": "run"})
        assert response.status_code == 404 and not ToolDecision.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_reader_following_the_saved_text_gets_the_rounds_too(hosts, settings, asgi_server, session_cookie):
    """Without Redis, a reader in a process that does not run the job follows the saved answer: its
    rounds come with the text, so a call waiting for approval shows there as well."""
    import re

    import httpx

    settings.REDIS_URL = ""
    user, cookies = session_cookie()
    chat = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-30b", title="t")
    # An id no earlier test's answer had: this process keeps an ended job a minute for its readers.
    answer = TestDecisions().waiting_answer(chat, pk=987_654)
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
        with client.stream("GET", reverse("chat_answer_stream", args=[answer.pk])) as response:
            first = next(response.iter_bytes())
    data = json.loads(re.search(rb"event: snapshot\ndata: (.*)\n", first).group(1))
    assert data["tool_rounds"][0]["calls"][0]["state"] == "waiting"


@pytest.mark.django_db(transaction=True)
def test_a_decision_made_on_another_instance_reaches_the_job(app_process, hosts, mcp_server, django_user_model):
    """Two app instances on one database: the answer's job runs on the first, the user's Run reaches
    it from the second (through Redis when REDIS_URL is set, else through the database)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from django.test import Client

    make_tool_server(mcp_server.url, slug="lab")  # approval: ask
    user = django_user_model.objects.create_user("tabs")
    chat = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-30b", title="t", tools=["lab"])
    browser = Client()
    browser.force_login(user)
    clients = []
    for base in (app_process()[0], app_process()[0]):
        client = httpx.Client(base_url=base, cookies={"sessionid": browser.cookies["sessionid"].value}, timeout=30)
        client.get(chat.get_absolute_url())
        client.headers.update({"X-CSRFToken": client.cookies["csrftoken"], "X-BooChat-Stream": "1"})
        clients.append(client)
    one, two = clients
    deadline = time.monotonic() + 30  # the first instance lists the tools in the background
    while 'value="lab__add"' not in one.get(chat.get_absolute_url()).text and time.monotonic() < deadline:
        time.sleep(0.2)
    hosts["sam-desktop"].tool_rounds = [[("lab__add", {"a": 2, "b": 40})]]
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(one.post, reverse("chat_send", args=[chat.pk]), data={"content": "2 + 40?"})
        waiting = []
        while not waiting and time.monotonic() < deadline + 30:
            answer = Message.objects.filter(role="assistant").first()
            waiting = [c for r in (answer.tool_rounds if answer else []) for c in r["calls"] if c["state"] == "waiting"]
            time.sleep(0.05)
        response = two.post(reverse("chat_tool_decision", args=[answer.pk]), data={"call": waiting[0]["id"], "choice": "run"})
        assert response.status_code == 204
        body = sent.result(timeout=60).content
    assert b"Tool result: 42" in body and b'event: end\ndata: {"state":"complete","error":""}' in body
    assert Message.objects.get(role="assistant").tool_rounds[0]["calls"][0]["approval"] == "run"
    for client in clients:
        client.close()


@pytest.mark.django_db(transaction=True)
def test_without_javascript_a_call_waiting_for_approval_is_asked_on_the_page(hosts, mcp_server, asgi_server, session_cookie):
    """A plain form post does not wait on the user: it comes back to the chat, whose page has the
    call's Run / Always / Deny form; Run (a plain post too) lets the answer finish."""
    import re
    import time

    import httpx

    make_tool_server(mcp_server.url, slug="lab")  # approval: ask
    user, cookies = session_cookie()
    catalog.refresh_now(catalog.connections_for(user))
    chat = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-30b", title="t", tools=["lab"])
    hosts["sam-desktop"].tool_rounds = [[("lab__add", {"a": 2, "b": 40})]]
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
        token = client.get(chat.get_absolute_url()).cookies["csrftoken"]
        sent = client.post(reverse("chat_send", args=[chat.pk]), data={"content": "2 + 40?", "csrfmiddlewaretoken": token})
        assert sent.status_code == 302
        page = client.get(chat.get_absolute_url()).text
        assert "waits for your approval" in page
        action, call = re.search(r'<form method="post" action="([^"]+)" class="tool-approval">.*?name="call" value="([^"]+)"',
                                 page, re.S).groups()
        assert client.post(action, data={"call": call, "choice": "run", "csrfmiddlewaretoken": token}).status_code == 302
    deadline = time.monotonic() + 20
    while Message.objects.get(role="assistant").state == MessageState.STREAMING and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = Message.objects.get(role="assistant")
    assert (answer.state, answer.content) == (MessageState.COMPLETE, "Tool result: 42")
