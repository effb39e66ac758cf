"""Every way a host fails, on every path: a clear error naming the provider, never a 500 from
BooChat, never a wait past the provider's timeout, nothing stored lost, other providers unaffected."""

import json
import re
import time

import pytest
from django.urls import reverse

from boochat.gateway.keys import create_key
from boochat.models import ChatSession, MessageState
from providers.models import Provider
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel
from tests.fakes.server import Response

pytestmark = pytest.mark.django_db

LISTING_FAULTS = ["500", "502", "503", "429", "404", "invalid-json", "huge-models", "hang", "refuse"]
INFERENCE_FAULTS = ["500", "502", "503", "429", "404", "404-text", "invalid-json", "truncated-sse",
                    "non-json-sse", "hang", "refuse", "drop"]


@pytest.fixture
def healthy():
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        make_provider(slug="healthy", name="Healthy box", base_url=host.url, is_default=True)
        yield host


@pytest.fixture
def broken(request):
    """A provider named "Broken box" whose host has the requested fault."""
    fault, paths = request.param
    host = FakeLlamaSwap([FakeModel("qwen3-8b"), FakeModel("tiny")]).start()
    make_provider(slug="broken", name="Broken box", base_url=host.url, models_timeout=0.5, read_timeout=1.0, connect_timeout=0.5)
    if fault == "refuse":
        host.stop()
    elif fault == "hang":
        host.hang = True
    elif fault == "drop":
        host.drop_after = 4
    else:
        host.fault, host.fault_paths = fault, paths
    yield host
    host.stop()


def listing(fault):
    return pytest.param((fault, {"/v1/models", "/running"}), id=fault)


def inference(fault):
    return pytest.param((fault, {"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}), id=fault)


# Faults where the host answers 200: the gateway relays what it sent (a JSON body or an event stream).
GATEWAY_RELAYS = {"invalid-json", "truncated-sse", "non-json-sse"}


def relayed_by_the_host(host):
    """The bytes `host` sent for the last chat completion it received (up to where it broke off, for
    a stream it drops)."""
    request = host.requests_to("/v1/chat/completions")[-1]
    reply = host.faulty(request) if host.fault else host.inference(request)
    if isinstance(reply, Response):
        return reply.body
    chunks = list(reply.chunks)
    return b"".join(chunks if reply.drop_after is None else chunks[:reply.drop_after])


def without_usage_event(sent):
    """`sent` without its usage-only event (`"choices":[]` with `usage`), kept whole otherwise."""
    events = re.split(rb"(?<=\n\n)", sent)
    return b"".join(e for e in events if not (e.startswith(b'data: {"choices":[],') and b'"usage"' in e))


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.parametrize("broken", [listing(f) for f in LISTING_FAULTS], indirect=True)
class TestModelLists:
    def test_the_picker_marks_the_host_down_and_keeps_the_others(self, user_client, healthy, broken):
        response, seconds = timed(lambda: user_client.get(reverse("picker")))
        assert response.status_code == 200
        picker = response.context_data["picker"]
        states = {g.provider.slug: g.provider for g in picker.groups}
        assert states["healthy"].state == "up" and [r.model.id for g in picker.groups if g.provider.slug == "healthy" for r in g.rows] == ["healthy/qwen3-8b"]
        if broken.fault == "huge-models":
            assert "more than 4 MB" in states["broken"].last_error
        assert states["broken"].state == "down" and states["broken"].last_error
        assert seconds < 0.5 + 2.5  # the broken host's models_timeout, plus slack; never its read timeout

    def test_api_models_says_why(self, user_client, healthy, broken):
        payload = user_client.get(reverse("api_models")).json()
        by_slug = {p["slug"]: p for p in payload["providers"]}
        assert by_slug["broken"]["state"] == "down" and by_slug["broken"]["last_error"]
        assert by_slug["healthy"]["state"] == "up"
        assert [m["id"] for m in payload["models"]] == ["healthy/qwen3-8b"]

    def test_the_gateway_lists_the_healthy_host(self, gateway, healthy, broken):
        _, key = create_key(name="t")
        response = gateway.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        assert [m["id"] for m in response.json()["data"]] == ["healthy/qwen3-8b"]


@pytest.mark.parametrize("broken", [inference(f) for f in INFERENCE_FAULTS], indirect=True)
class TestAnswers:
    def test_chat_saves_a_failed_or_partial_answer_that_names_the_host(self, user_client, healthy, broken):
        session = ChatSession.objects.create(user=user_of(user_client), model_id="broken/qwen3-8b", title="t")
        add_message(session=session, role="user", content="earlier question")
        response, seconds = timed(lambda: user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}))
        assert response.status_code == 302
        answer = session.messages.filter(role="assistant").get()
        if broken.fault == "non-json-sse":  # odd lines are skipped; the rest of the answer is whole
            assert answer.state == MessageState.COMPLETE and answer.content == "".join(broken.reply)
        else:
            assert answer.state in (MessageState.FAILED, MessageState.INTERRUPTED)
            assert "Broken box (broken)" in answer.error
        assert list(session.messages.filter(role="user").values_list("content", flat=True)) == ["earlier question", "hi"]
        assert seconds < 1.0 + 2.5  # bounded by the provider's read/connect timeouts
        # ...and the other host is unaffected
        other = ChatSession.objects.create(user=session.user, model_id="healthy/qwen3-8b", title="t")
        user_client.post(reverse("chat_send", args=[other.pk]), {"content": "hi"})
        assert other.messages.get(role="assistant").state == MessageState.COMPLETE

    @pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
    def test_the_gateway_answers_in_the_openai_envelope(self, gateway, healthy, broken, stream):
        _, key = create_key(name="t")
        body = {"model": "broken/qwen3-8b", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        response, seconds = timed(lambda: gateway.post("/v1/chat/completions", json=body,
                                                       headers={"Authorization": f"Bearer {key}"}))
        assert seconds < 1.0 + 2.5
        if broken.fault in GATEWAY_RELAYS or broken.drop_after is not None:
            # The host said 200: what it sent is passed on as it is, bytes and end alike.
            assert response.status_code == 200
            # ...but for `model`, which names the model as the client did, not as the host calls it, and
            # the usage event BooChat asked the host for (to record it), which this client did not ask for
            sent = relayed_by_the_host(broken).replace(b'"model":"qwen3-8b"', b'"model":"broken/qwen3-8b"')
            if stream:
                sent = without_usage_event(sent)
            if broken.drop_after is not None and stream:  # cut mid-answer: the gateway says so at the end
                assert response.content.startswith(sent)
                event = response.content[len(sent):]
                assert event.startswith(b"data: ") and event.endswith(b"\n\n") and event.count(b"data: ") == 1
                error = json.loads(event[len(b"data: "):])["error"]
                assert error["code"] == "upstream_disconnected" and error["type"] == "upstream_error"
                assert "'broken'" in error["message"]
                assert b"[DONE]" not in response.content  # no end where the host sent none
            else:
                # as sent: invalid JSON stays invalid, a truncated stream stays truncated (no [DONE] added),
                # odd lines stay; a non-streamed answer is whole (the drop fault cuts only streams)
                assert response.content == sent
            return
        assert response.status_code != 500 or broken.fault == "500"  # a host's own 500 keeps its status
        assert 400 <= response.status_code < 600
        error = response.json()["error"]
        assert {"message", "type", "param", "code"} <= set(error)
        assert error["message"].startswith("Broken box (broken)")

    def test_a_broken_task_model_falls_back_for_titles(self, user_client, healthy, broken, settings):
        settings.BOOCHAT_TASK_MODEL = "broken/tiny"
        session = ChatSession.objects.create(user=user_of(user_client), model_id="healthy/qwen3-8b")
        user_client.post(reverse("chat_send", args=[session.pk]), {"content": "How do llamas swap models"})
        session.refresh_from_db()
        assert session.title
        assert session.messages.get(role="assistant").state == MessageState.COMPLETE

    def test_a_broken_summary_model_falls_back_to_the_session_model(self, user_client, healthy, broken, settings):
        settings.BOOCHAT_SUMMARY_MODEL = "broken/tiny"
        session = ChatSession.objects.create(user=user_of(user_client), model_id="healthy/qwen3-8b", title="t")
        for i in range(4):
            add_message(session=session, role="user", content=f"q{i} " + "a" * 600)
            add_message(session=session, role="assistant", content=f"a{i} " + "b" * 600)
        user_client.post(reverse("chat_send", args=[session.pk]), {"content": "next"})
        answer = session.messages.filter(role="assistant").last()
        assert answer.state == MessageState.COMPLETE, answer.error
        # ("drop" breaks only streams: the summary, not streamed, still comes from the broken host)
        expected = "broken/tiny" if broken.drop_after is not None else "healthy/qwen3-8b"
        assert session.compactions.get().model_id == expected
        assert session.messages.count() == 10


@pytest.mark.parametrize("broken", [inference(f) for f in ["500", "502", "503", "429", "404", "404-text", "hang", "refuse"]],
                         indirect=True)
def test_failures_before_the_stream_are_json_errors_naming_the_host(user_client, healthy, broken):
    session = ChatSession.objects.create(user=user_of(user_client), model_id="broken/qwen3-8b", title="t")
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code in (400, 402, 404, 502, 503, 504)
    assert "Broken box (broken)" in response.json()["error"]
    assert session.messages.get(role="assistant").state == MessageState.FAILED


def user_of(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def test_every_provider_broken_still_renders_every_page(user_client):
    make_provider(slug="gone", name="Gone", base_url="http://127.0.0.1:9", is_default=True)
    for url in (reverse("home"), reverse("picker"), reverse("settings"), reverse("chat_index"), reverse("arena_index")):
        assert user_client.get(url).status_code == 200
    assert Provider.objects.count() == 1
