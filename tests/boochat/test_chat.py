"""Chat through the plain-form door (no script): the same turn, relay and saving as the stream."""

import pytest
from django.urls import reverse

from boochat.chat.titles import clean_title
from boochat.models import ChatSession, Compaction, MessageState
from providers.context import context_size_for
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import CAPTURED_PIECES, FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db


def user_of(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def new_session(client, model_id, **fields):
    return ChatSession.objects.create(user=user_of(client), model_id=model_id, **fields)


def send(client, session, text="Hello, who are you?"):
    return client.post(reverse("chat_send", args=[session.pk]), {"content": text})


def chat_requests(host):
    return [r.json() for r in host.requests_to("/v1/chat/completions")]


def no_inference(hosts):
    """No host received a completion request (model lists for the page are fine)."""
    return all(not any(r.method == "POST" for r in host.requests) for host in hosts.values())


def long_session(client):
    """Six long turns with embedding/qwen3-8b, whose context is set to 1,024 tokens: too many for it."""
    from providers.models import ModelOverride, Provider

    session = new_session(client, "embedding/qwen3-8b", title="long")
    ModelOverride.objects.create(provider=Provider.objects.get(slug="embedding"), model="qwen3-8b", context_size=1024)
    for i in range(6):
        add_message(session=session, role="user", content=f"question {i} " + "words " * 80)
        add_message(session=session, role="assistant", content=f"answer {i} " + "text " * 80)
    return session


def answers(session):
    return list(session.messages.filter(role="assistant"))


def test_a_message_is_answered_saved_and_titled(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    response = send(user_client, session)

    assert response.status_code == 302 and response["Location"] == session.get_absolute_url()
    (answer,) = answers(session)
    assert answer.state == MessageState.COMPLETE
    assert answer.content == "".join(CAPTURED_PIECES)
    assert (answer.provider, answer.wire_model, answer.model_id) == ("sam-desktop", "qwen3-8b", "sam-desktop/qwen3-8b")
    assert answer.usage["completion_tokens"] == 18
    assert answer.tokens_per_second == pytest.approx(3451.08, rel=1e-3)
    assert answer.finish_reason == "stop"
    stream, title = chat_requests(hosts["sam-desktop"])
    assert stream["model"] == "qwen3-8b" and stream["stream"] is True
    assert stream["messages"] == [{"role": "user", "content": "Hello, who are you?"}]
    assert title["stream"] is False  # the title, from the session's model (no task model configured)
    session.refresh_from_db()
    assert session.title == clean_title("".join(CAPTURED_PIECES))

    page = user_client.get(session.get_absolute_url())
    assert page.status_code == 200
    assert page.template_name == "chat.html"
    html = page.content.decode()
    assert "3451.1 tok/s" in html and "qwen3-8b · sam-desktop" in html
    assert page.context_data["usage"]["used"] == 40 and page.context_data["usage"]["exact"]


def test_the_local_deepseek_distill_is_answered_by_its_own_host(user_client, hosts):
    session = new_session(user_client, "embedding/deepseek-r1-qwen3-8b")
    send(user_client, session)
    assert [r["model"] for r in chat_requests(hosts["embedding"])][0] == "deepseek-r1-qwen3-8b"
    assert hosts["deepseek"].requests == []
    assert answers(session)[0].provider == "embedding"


def test_deepseek_reasoning_is_kept_apart_and_its_key_used(user_client, hosts):
    session = new_session(user_client, "deepseek/deepseek-v4-flash")
    send(user_client, session)
    (answer,) = answers(session)
    assert (answer.content, answer.reasoning, answer.state) == ("Hello!", "The user greets.", MessageState.COMPLETE)
    assert all(r.headers["authorization"] == "Bearer sk-test-deepseek" for r in hosts["deepseek"].requests)


def test_a_bare_id_stored_by_an_old_version_still_works(user_client, hosts):
    session = new_session(user_client, "qwen3-8b")
    send(user_client, session)
    assert answers(session)[0].model_id == "sam-desktop/qwen3-8b"


def test_an_unknown_provider_fails_clearly_and_calls_no_host(user_client, hosts):
    session = new_session(user_client, "nowhere/qwen3-8b")
    response = send(user_client, session)
    assert response.status_code == 302
    page = user_client.get(session.get_absolute_url()).content.decode()
    assert "unknown provider &#x27;nowhere&#x27;" in page
    (answer,) = answers(session)
    assert answer.state == MessageState.FAILED and "unknown provider" in answer.error
    assert session.messages.filter(role="user").count() == 1  # the question is kept
    assert no_inference(hosts)


def test_a_busy_host_is_reported_as_busy(user_client, hosts):
    hosts["sam-desktop"].busy = True
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert response.json()["error"] == "Sam's desktop (sam-desktop) is busy (too many requests); try again in 7 s."


def test_an_error_event_mid_stream_fails_the_answer_and_keeps_what_arrived(user_client, hosts):
    hosts["sam-desktop"].error_after = 4
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="kept")
    send(user_client, session)
    (answer,) = answers(session)
    assert answer.state == MessageState.FAILED
    assert answer.error == "Sam's desktop (sam-desktop): slot crashed"
    assert answer.content == "".join(CAPTURED_PIECES[:3])


def test_a_host_dropping_mid_stream_leaves_an_interrupted_partial_answer(user_client, hosts):
    hosts["sam-desktop"].drop_after = 5
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="kept")
    send(user_client, session)
    (answer,) = answers(session)
    assert answer.state == MessageState.INTERRUPTED
    assert "Lost the connection to Sam's desktop (sam-desktop) mid-answer" in answer.error
    assert answer.content == "".join(CAPTURED_PIECES[:4])


def test_empty_and_oversized_messages_are_refused(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    stream = {"X-BooChat-Stream": "1"}
    url = reverse("chat_send", args=[session.pk])
    assert user_client.post(url, {"content": "  "}, headers=stream).json() == {"error": "The message is empty."}
    response = user_client.post(url, {"content": "x" * 200_001}, headers=stream)
    assert response.status_code == 413
    assert not session.messages.exists()


def test_sessions_are_private(user_client, client, django_user_model, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    client.force_login(django_user_model.objects.create_user("mallory"))
    assert client.get(session.get_absolute_url()).status_code == 404
    assert client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}).status_code == 404
    assert no_inference(hosts)


def test_changing_the_model_stores_a_composite_id(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    user_client.post(reverse("chat_set_model", args=[session.pk]), {"model_id": "qwen3-30b"})
    session.refresh_from_db()
    assert session.model_id == "sam-desktop/qwen3-30b"
    response = user_client.post(reverse("chat_set_model", args=[session.pk]), {"model_id": "nowhere/x"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    session.refresh_from_db()
    assert session.model_id == "sam-desktop/qwen3-30b"


def test_new_chat_uses_the_default_model_setting(user_client, hosts):
    from settings_app.models import UserSettings

    UserSettings.objects.create(user=user_of(user_client), default_model="embedding/qwen3-8b")
    assert user_client.get(reverse("chat_new")).context_data["selected"] == "embedding/qwen3-8b"
    response = user_client.post(reverse("chat_new"), {"content": "hi"})  # no model posted
    session = ChatSession.objects.get()
    assert response["Location"] == session.get_absolute_url()
    assert session.model_id == "embedding/qwen3-8b"


def test_answers_are_rendered_as_sanitized_markdown(user_client, hosts):
    hosts["sam-desktop"].reply = ["**bold** ", "<script>alert(1)</script>", " <img src=x onerror=alert(1)>"]
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    send(user_client, session)
    html = user_client.get(session.get_absolute_url()).content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html.split('id="messages"')[1]


class TestContextAndCompaction:
    def test_same_model_name_on_two_hosts_never_shares_a_context_entry(self, hosts):
        for host in (hosts["sam-desktop"], hosts["embedding"]):
            host.find("qwen3-8b").loaded = True
        assert context_size_for("sam-desktop/qwen3-8b").tokens == 2048
        assert context_size_for("embedding/qwen3-8b").tokens == 1024
        assert len(hosts["sam-desktop"].requests_to("/upstream/qwen3-8b/props")) == 1
        assert len(hosts["embedding"].requests_to("/upstream/qwen3-8b/props")) == 1
        assert context_size_for("sam-desktop/qwen3-8b").source == "props"  # cached, not fetched again
        assert len(hosts["sam-desktop"].requests_to("/upstream/qwen3-8b/props")) == 1

    def test_props_are_never_requested_for_an_unloaded_model(self, hosts):
        size = context_size_for("sam-desktop/qwen3-8b")
        assert (size.tokens, size.source) == (4096, "default")
        assert not any("/upstream/" in r.path for r in hosts["sam-desktop"].requests)
        assert hosts["sam-desktop"].find("qwen3-8b").loaded is False

    def test_listing_and_override_come_first(self, hosts):
        assert (context_size_for("sam-desktop/qwen3-30b").tokens, context_size_for("sam-desktop/qwen3-30b").source) == (32768, "listing")
        from providers.models import ModelOverride, Provider

        override = ModelOverride.objects.create(provider=Provider.objects.get(slug="sam-desktop"), model="qwen3-30b",
                                                context_size=8000)
        assert context_size_for("sam-desktop/qwen3-30b").source == "override"
        assert context_size_for("deepseek/deepseek-chat").tokens == 131072
        # Overrides are part of the routing snapshot: admin edits apply at once, in every form.
        override.context_size = 9000
        override.save()
        assert context_size_for("sam-desktop/qwen3-30b").tokens == 9000
        ModelOverride.objects.filter(pk=override.pk).update(context_size=7000)
        assert context_size_for("sam-desktop/qwen3-30b").tokens == 7000
        override.delete()
        assert context_size_for("sam-desktop/qwen3-30b").source == "listing"

    def test_an_override_is_read_without_a_query(self, hosts, django_assert_num_queries):
        from providers.models import ModelOverride, Provider

        ModelOverride.objects.create(provider=Provider.objects.get(slug="sam-desktop"), model="qwen3-30b", context_size=8000)
        context_size_for("sam-desktop/qwen3-30b")
        with django_assert_num_queries(0):
            assert context_size_for("sam-desktop/qwen3-30b").tokens == 8000

    def test_a_long_session_is_compacted_before_sending(self, user_client, hosts):
        session = long_session(user_client)
        send(user_client, session, "and now?")

        assert answers(session)[-1].error == ""
        compaction = Compaction.objects.get(session=session)
        *summaries, chat = chat_requests(hosts["embedding"])
        # The summarizer may need a second, shorter try: the host counts tokens, we only estimate.
        assert summaries and all(r["stream"] is False for r in summaries)
        assert "USER: question" in summaries[0]["messages"][1]["content"]
        assert chat["messages"][0] == {"role": "system", "content": f"Summary of the earlier conversation:\n{compaction.summary}"}
        assert chat["messages"][-1] == {"role": "user", "content": "and now?"}
        assert answers(session)[-1].state == MessageState.COMPLETE
        assert session.messages.count() == 14  # nothing deleted: the originals stay viewable
        html = user_client.get(session.get_absolute_url()).content.decode()
        assert "question 0" in html and "compacted" in html

    def test_over_context_from_the_host_compacts_and_retries_once(self, user_client, hosts):
        session = new_session(user_client, "embedding/qwen3-8b", title="long")
        for i in range(3):
            add_message(session=session, role="user", content=f"q{i} " + "a" * 500)
            add_message(session=session, role="assistant", content=f"a{i} " + "b" * 500)
        send(user_client, session, "next question")

        first, *summaries, retry = chat_requests(hosts["embedding"])
        assert first["stream"] and retry["stream"]
        assert summaries and not any(r["stream"] for r in summaries)
        assert len(retry["messages"]) < len(first["messages"])
        assert retry["messages"][0]["content"].startswith("Summary of the earlier conversation:")
        assert answers(session)[-1].state == MessageState.COMPLETE
        learned = context_size_for("embedding/qwen3-8b")
        assert (learned.tokens, learned.source) == (1024, "learned")
        # the other host's qwen3-8b learned nothing
        assert context_size_for("sam-desktop/qwen3-8b").tokens != 1024

    def test_summaries_go_to_the_configured_summary_model(self, user_client, hosts, settings):
        settings.BOOCHAT_SUMMARY_MODEL = "sam-desktop/qwen3-30b"
        session = new_session(user_client, "embedding/qwen3-8b", title="long")
        for i in range(3):
            add_message(session=session, role="user", content=f"q{i} " + "a" * 500)
            add_message(session=session, role="assistant", content=f"a{i} " + "b" * 500)
        send(user_client, session, "next question")
        summaries = chat_requests(hosts["sam-desktop"])
        assert summaries and all(r["model"] == "qwen3-30b" and r["stream"] is False for r in summaries)
        assert Compaction.objects.get().model_id == "sam-desktop/qwen3-30b"


class TestTitles:
    def test_the_task_model_is_used_when_it_needs_no_swap(self, user_client, hosts, settings):
        settings.BOOCHAT_TASK_MODEL = "embedding/nomic-embed"
        hosts["embedding"].find("nomic-embed").loaded = True
        session = new_session(user_client, "sam-desktop/qwen3-8b")
        send(user_client, session)
        assert [r["model"] for r in chat_requests(hosts["embedding"])] == ["nomic-embed"]
        assert [r["stream"] for r in chat_requests(hosts["sam-desktop"])] == [True]

    def test_an_unloaded_task_model_does_not_unload_the_session_model(self, user_client, hosts, settings):
        settings.BOOCHAT_TASK_MODEL = "sam-desktop/qwen3-8b"  # same llama-swap host, not loaded
        session = new_session(user_client, "sam-desktop/qwen3-30b")  # loaded
        send(user_client, session)
        models = [r["model"] for r in chat_requests(hosts["sam-desktop"])]
        assert models == ["qwen3-30b", "qwen3-30b"]  # the answer, then the title: no swap

    def test_a_down_task_provider_falls_back_to_the_session_model(self, user_client, hosts, settings):
        make_provider(slug="gone", base_url="http://127.0.0.1:9")
        settings.BOOCHAT_TASK_MODEL = "gone/tiny"
        session = new_session(user_client, "embedding/qwen3-8b")
        send(user_client, session)
        assert [r["stream"] for r in chat_requests(hosts["embedding"])] == [True, False]
        session.refresh_from_db()
        assert session.title

    def test_a_failing_title_model_falls_back_to_the_question(self, user_client, hosts, settings):
        session = new_session(user_client, "sam-desktop/qwen3-8b")
        hosts["sam-desktop"].reply = []
        send(user_client, session, "How do llamas swap models quickly")
        session.refresh_from_db()
        assert session.title == "How do llamas swap models quickly"

    def test_the_title_endpoint_titles_once(self, user_client, hosts):
        session = new_session(user_client, "sam-desktop/qwen3-8b")
        add_message(session=session, role="user", content="hi")
        response = user_client.post(reverse("chat_title", args=[session.pk]))
        assert response.status_code == 200
        assert response.template_name == "chat.html#session_title"
        session.refresh_from_db()
        assert session.title and session.title in response.content.decode()
        user_client.post(reverse("chat_title", args=[session.pk]))
        assert len(chat_requests(hosts["sam-desktop"])) == 1


class TestProviderQuirks:
    def test_deepseek_gets_reasoning_back_only_on_tool_call_turns(self, user_client, hosts):
        session = new_session(user_client, "deepseek/deepseek-v4-flash", title="t")
        add_message(session=session, role="user", content="weather?")
        add_message(session=session, role="assistant", content="", reasoning="need a tool",
                               tool_calls=[{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}])
        add_message(session=session, role="user", content="thanks")
        add_message(session=session, role="assistant", content="ok", reasoning="plain thought")
        send(user_client, session, "bye")
        (body,) = hosts["deepseek"].chat_bodies()
        tool_turn, plain_turn = body["messages"][1], body["messages"][3]
        assert tool_turn["reasoning_content"] == "need a tool" and tool_turn["tool_calls"][0]["id"] == "c1"
        assert "reasoning_content" not in plain_turn

    def test_llama_swap_never_gets_reasoning_back(self, user_client, hosts):
        session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
        add_message(session=session, role="user", content="weather?")
        add_message(session=session, role="assistant", content="", reasoning="need a tool",
                               tool_calls=[{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}])
        send(user_client, session, "bye")
        body = chat_requests(hosts["sam-desktop"])[0]
        assert "reasoning_content" not in body["messages"][1]

    def test_llama_swap_always_gets_a_json_content_type(self, user_client, hosts):
        send(user_client, new_session(user_client, "sam-desktop/qwen3-8b", title="t"))
        assert all(r.headers["content-type"] == "application/json" for r in hosts["sam-desktop"].requests_to("/v1/chat/completions"))


@pytest.mark.parametrize("model_id, host", [
    ("sam-desktop/qwen3-30b", "sam-desktop"), ("embedding/qwen3-8b", "embedding"), ("deepseek/deepseek-v4-flash", "deepseek"),
])
def test_smoke_each_configured_host_answers_through_the_ui(user_client, hosts, model_id, host):
    user_client.post(reverse("chat_new"), {"model_id": model_id, "content": "Hello, who are you?"})
    session = ChatSession.objects.get()
    assert answers(session)[0].state == MessageState.COMPLETE
    assert hosts[host].requests_to("/v1/chat/completions") or hosts[host].requests_to("/chat/completions")
    assert all(h.requests_to("/v1/chat/completions") == [] for name, h in hosts.items() if name not in (host, "deepseek"))


def test_llama_swap_loading_messages_are_not_stored(user_client, sam_desktop):
    with FakeLlamaSwap([FakeModel("qwen3-30b")], send_loading_state=True) as host:
        make_provider(slug="swap", base_url=host.url, is_default=True)
        session = new_session(user_client, "swap/qwen3-30b", title="t")
        send(user_client, session)
    (answer,) = answers(session)
    assert answer.reasoning == "" and "loading" not in answer.content
    assert answer.state == MessageState.COMPLETE


@pytest.mark.parametrize("raw, title", [
    ('"Llamas and swaps."', "Llamas and swaps"),
    ("**Here is** `code`\nsecond line", "Here is code"),
    ("\n\n# Heading!", "Heading"),
    ("x" * 100, "x" * 80),
])
def test_clean_title(raw, title):
    assert clean_title(raw) == title
