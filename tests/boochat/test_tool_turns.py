"""An answer's tool calls and results, as the chat keeps them: what the model sees in later turns
(also after a compaction), exports in BooChat's JSON and Markdown, imports back; and which models are
offered tools at all."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from boochat.models import ChatSession, Compaction, Message
from providers.capabilities import tool_support
from providers.models import ModelOverride, Provider, ProviderKind
from tests.boochat.test_chat import chat_requests, new_session, send
from tests.factories import add_message, make_provider

pytestmark = pytest.mark.django_db

ROUNDS = [
    {"text": "Let me look.", "reasoning": "A search will tell.", "calls": [
        {"id": "call_1", "function": "web__web_search", "arguments": '{"query": "tides"}', "result": "The Moon pulls <b>water</b>.",
         "is_error": False, "duration_ms": 120, "approval": "run", "state": "done"},
        {"id": "call_2", "function": "web__read_page", "arguments": '{"url": "http://10.0.0.1/"}',
         "result": "Refused: a private address.", "is_error": True, "duration_ms": 3, "approval": "always", "state": "done"}]},
    {"text": "", "reasoning": "", "calls": [
        {"id": "call_3", "function": "web__web_search", "arguments": "{}", "result": "The user denied this call.",
         "is_error": True, "duration_ms": 0, "approval": "deny", "state": "done"}]},
]


@pytest.fixture
def chat(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="Tides")
    question = add_message(session=session, role="user", content="How do tides work?")
    add_message(session=session, parent=question, role="assistant", content="The Moon, mostly.", tool_rounds=ROUNDS,
                model_id="sam-desktop/qwen3-8b", provider="sam-desktop", wire_model="qwen3-8b")
    return session


EXPECTED_REPLAY = [
    {"role": "user", "content": "How do tides work?"},
    {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "web__web_search", "arguments": '{"query": "tides"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "web__read_page", "arguments": '{"url": "http://10.0.0.1/"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "The Moon pulls <b>water</b>."},
    {"role": "tool", "tool_call_id": "call_2", "content": "Refused: a private address."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_3", "type": "function", "function": {"name": "web__web_search", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_3", "content": "The user denied this call."},
    {"role": "assistant", "content": "The Moon, mostly."},
]


def test_the_model_sees_earlier_calls_and_results_in_openai_shape(user_client, hosts, chat):
    send(user_client, chat, "And near the poles?")
    body = [b for b in chat_requests(hosts["sam-desktop"]) if b.get("stream")][0]
    assert body["messages"][:-1] == EXPECTED_REPLAY
    assert body["messages"][-1] == {"role": "user", "content": "And near the poles?"}


def test_deepseek_gets_each_rounds_reasoning_back(user_client, hosts, chat):
    ChatSession.objects.filter(pk=chat.pk).update(model_id="deepseek/deepseek-v4-flash")
    send(user_client, ChatSession.objects.get(pk=chat.pk), "More?")
    (body,) = hosts["deepseek"].chat_bodies()
    assert body["messages"][1]["reasoning_content"] == "A search will tell."
    assert "reasoning_content" not in body["messages"][4]  # a round without reasoning


def test_after_a_compaction_the_kept_answer_still_carries_its_calls(user_client, hosts, chat):
    answer = chat.messages.get(role="assistant")
    Compaction.objects.create(session=chat, through_message=answer.parent, summary="They asked about tides.",
                              model_id="sam-desktop/qwen3-8b")
    send(user_client, chat, "And near the poles?")
    body = [b for b in chat_requests(hosts["sam-desktop"]) if b.get("stream")][0]
    assert body["messages"][0]["content"].endswith("They asked about tides.")
    assert body["messages"][1:-1] == EXPECTED_REPLAY[1:]


def test_a_compaction_summarizes_the_calls_too(user_client, hosts, chat, settings):
    """The chat outgrows a context of 150 tokens: the summary's transcript has the calls and results."""
    settings.BOOCHAT_SUMMARY_MODEL = "sam-desktop/qwen3-30b"
    ModelOverride.objects.create(provider=Provider.objects.get(slug="sam-desktop"), model="qwen3-8b", context_size=150)
    thanks = add_message(session=chat, parent=chat.messages.get(role="assistant"), role="user", content="Thanks")
    add_message(session=chat, parent=thanks, role="assistant", content="You're welcome.")
    send(user_client, chat, "And near the poles?")
    (summary_request,) = [b for b in chat_requests(hosts["sam-desktop"]) if not b.get("stream")][:1]
    transcript = summary_request["messages"][-1]["content"]
    assert 'ASSISTANT called web__web_search({"query": "tides"}): The Moon pulls <b>water</b>.' in transcript
    assert "ASSISTANT called web__read_page" in transcript and "ASSISTANT: The Moon, mostly." in transcript


def test_export_and_import_keep_the_rounds(user_client, chat):
    exported = json.loads(user_client.get(reverse("chat_export_json", args=[chat.pk])).content)
    answer = next(m for m in exported["messages"] if m["role"] == "assistant")
    assert answer["tool_rounds"] == ROUNDS
    raw = json.dumps(exported).encode()
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile("c.json", raw, "application/json")})
    assert response.status_code == 302
    imported = ChatSession.objects.exclude(pk=chat.pk).get()
    assert imported.messages.get(role="assistant").tool_rounds == ROUNDS


def test_an_imported_answer_shows_its_calls_as_done(user_client, chat):
    exported = json.loads(user_client.get(reverse("chat_export_json", args=[chat.pk])).content)
    for message in exported["messages"]:
        for call in (c for r in message.get("tool_rounds", []) for c in r["calls"]):
            del call["state"]  # as another program might write it
    user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile("c.json", json.dumps(exported).encode(),
                                                                        "application/json")})
    imported = ChatSession.objects.exclude(pk=chat.pk).get()
    page = user_client.get(imported.get_absolute_url()).content.decode()
    assert '<pre class="tool-result">The Moon pulls &lt;b&gt;water&lt;/b&gt;.</pre>' in page and "120 ms" in page


def test_markdown_export_shows_each_call(user_client, chat):
    text = user_client.get(reverse("chat_export_md", args=[chat.pk])).content.decode()
    assert "<details><summary>Tool web__web_search (result)</summary>" in text
    assert "<details><summary>Tool web__read_page (error)</summary>" in text
    assert text.index("Let me look.") < text.index("The Moon pulls") < text.index("The Moon, mostly.")


def test_a_result_with_backticks_keeps_its_code_block(user_client, chat):
    answer = chat.messages.get(role="assistant")
    answer.tool_rounds = [{**ROUNDS[0], "calls": [{**ROUNDS[0]["calls"][0], "result": "```\nrm -rf\n```"}]}]
    answer.save()
    text = user_client.get(reverse("chat_export_md", args=[chat.pk])).content.decode()
    assert "````\n```\nrm -rf\n```\n````" in text


@pytest.mark.parametrize("rounds, error", [
    ("calls", "must be a list of rounds"),
    ([{"calls": [{"id": "c", "function": "f"}]}], "needs an id, a function and its arguments"),
    ([{"calls": [{"id": "c", "function": "f", "arguments": "{}", "result": "a\x00b"}]}], "NUL character"),
])
def test_a_bad_tool_round_imports_nothing(user_client, rounds, error):
    data = {"format": "boochat.chat/1", "title": "t", "model": "m", "messages": [
        {"id": 1, "parent": None, "role": "user", "content": "q"},
        {"id": 2, "parent": 1, "role": "assistant", "content": "a", "tool_rounds": rounds}]}
    response = user_client.post(reverse("chat_import"), {"file": SimpleUploadedFile(
        "c.json", json.dumps(data).encode(), "application/json")}, follow=True)
    assert error in response.content.decode() and "Message 2" in response.content.decode()
    assert not Message.objects.exists()


class TestWhichModelsCallTools:
    def test_llama_server_says_in_its_props_once_the_model_is_loaded(self, hosts):
        assert tool_support("sam-desktop/qwen3-8b").calls is None  # not loaded: asking would load it
        assert not any(r.path.endswith("/props") for r in hosts["sam-desktop"].requests)
        assert tool_support("sam-desktop/qwen3-30b").calls is True  # loaded; fixture 02: supports_tools
        hosts["sam-desktop"].models[0].template_caps = {"supports_tools": False}
        assert tool_support("sam-desktop/qwen3-30b").calls is True  # kept

    def test_a_template_without_tools_says_no(self, hosts):
        hosts["sam-desktop"].models[0].template_caps = {"supports_tools": False}
        support = tool_support("sam-desktop/qwen3-30b")
        assert (support.calls, support.source) == (False, "host")

    def test_deepseek_does_and_an_admin_override_wins(self, hosts):
        assert tool_support("deepseek/deepseek-v4-flash").calls is True
        ModelOverride.objects.create(provider=Provider.objects.get(slug="sam-desktop"), model="qwen3-8b", calls_tools=True)
        ModelOverride.objects.create(provider=Provider.objects.get(slug="deepseek"), model="deepseek-v4-flash",
                                     calls_tools=False)
        assert tool_support("sam-desktop/qwen3-8b") == tool_support("sam-desktop/qwen3-8b").__class__(True, "override")
        assert tool_support("deepseek/deepseek-v4-flash").calls is False

    def test_a_pool_answers_for_its_member(self, hosts):
        pool = make_provider(slug="lab", name="Lab pool", kind=ProviderKind.POOL, base_url="")
        ModelOverride.objects.create(provider=pool, model="fast", members=["deepseek/deepseek-v4-flash"])
        assert tool_support("lab/fast").calls is True

    def test_an_unknown_model_is_not_offered_tools(self, hosts):
        assert tool_support("nowhere/x").calls is None
