"""Rows deleted while BooChat works on them (a chat or arena run deleted by its owner, or in admin,
while an answer streams or a title is written) are not inserted again, and the request still answers.
The streaming cases, through a real server, are in test_streaming.py."""

import pytest
from django.db import connection
from django.urls import reverse

from boochat.models import ArenaRun, ChatSession, Message, MessageState
from tests.boochat.test_chat import new_session
from tests.factories import add_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(django_user_model):
    return ChatSession.objects.create(user=django_user_model.objects.create_user("alice"), model_id="sam-desktop/qwen3-8b")


def test_a_deleted_answer_is_not_inserted_again(session):
    answer = add_message(session=session, role="assistant", state=MessageState.STREAMING)
    ChatSession.objects.filter(pk=session.pk).delete()
    answer.content, answer.state = "all of it", MessageState.COMPLETE
    assert answer.update_fields("content", "state") is False
    assert not Message.objects.exists() and not ChatSession.objects.exists()


def test_update_fields_writes_those_fields_and_the_time(session):
    answer = add_message(session=session, role="assistant", state=MessageState.STREAMING)
    before = answer.updated_at
    answer.content, answer.state, answer.error = "all of it", MessageState.COMPLETE, "not written"
    assert answer.update_fields("content", "state") is True
    saved = Message.objects.get(pk=answer.pk)
    assert (saved.content, saved.state, saved.error) == ("all of it", "complete", "")
    assert saved.updated_at > before


def deleting(model, pk, *, stream=None):
    """For a fake host's `while_answering`: the row is deleted (by its owner, or in admin) while the
    host works on a chat completion (only a streamed one, or only one that is not, if `stream` says)."""
    def delete(request):
        if request.path != "/v1/chat/completions":
            return
        if stream is not None and bool(request.json().get("stream")) != stream:
            return
        try:
            model.objects.filter(pk=pk).delete()
        finally:
            connection.close()  # this thread's own connection

    return delete


# The host's thread deletes the row on its own connection: these tests commit (transaction=True).

@pytest.mark.django_db(transaction=True)
def test_a_chat_deleted_while_its_title_is_written(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    add_message(session=session, role="user", content="hi")
    hosts["sam-desktop"].reply = ["Greetings"]
    hosts["sam-desktop"].while_answering = deleting(ChatSession, session.pk)
    response = user_client.post(reverse("chat_title", args=[session.pk]))
    assert response.status_code == 200 and "Greetings" in response.content.decode()
    assert len(hosts["sam-desktop"].requests_to("/v1/chat/completions")) == 1  # the title was asked once...
    assert not ChatSession.objects.exists()  # ...and its chat, deleted meanwhile, not inserted again


@pytest.mark.django_db(transaction=True)
def test_an_arena_run_deleted_while_it_is_analyzed(user_client, hosts):
    user_client.post(reverse("arena_new"), {"prompt": "Which is faster?", "model_1": "sam-desktop/qwen3-8b",
                                            "model_2": "embedding/qwen3-8b", "analyzer": "sam-desktop/qwen3-8b"})
    run = ArenaRun.objects.get()
    hosts["sam-desktop"].reply = ["The first."]
    hosts["sam-desktop"].while_answering = deleting(ArenaRun, run.pk)
    response = user_client.post(reverse("arena_analyze", args=[run.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200 and "The first." in response.content.decode()
    assert len(hosts["sam-desktop"].requests_to("/v1/chat/completions")) == 1
    assert not ArenaRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_chat_deleted_while_its_host_refuses_the_turn(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    hosts["sam-desktop"].busy = True  # llama-swap's concurrency limit: 429
    hosts["sam-desktop"].while_answering = deleting(ChatSession, session.pk)
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 503
    assert response.json() == {"error": "Sam's desktop (sam-desktop) is busy (too many requests); try again in 7 s."}
    assert len(hosts["sam-desktop"].requests_to("/v1/chat/completions")) == 1
    assert not Message.objects.exists()  # the failed answer was not inserted again


@pytest.mark.django_db(transaction=True)
def test_a_chat_deleted_while_its_history_is_summarized(user_client, hosts):
    from boochat.models import Compaction
    from providers.models import ModelOverride, Provider

    ModelOverride.objects.create(provider=Provider.objects.get(slug="embedding"), model="qwen3-8b", context_size=1024)
    session = new_session(user_client, "embedding/qwen3-8b")
    for i in range(6):
        add_message(session=session, role="user", content=f"question {i} " + "words " * 80)
        add_message(session=session, role="assistant", content=f"answer {i} " + "text " * 80)
    hosts["embedding"].reply = ["They talked."]
    hosts["embedding"].while_answering = deleting(ChatSession, session.pk, stream=False)  # the summary
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "and now?"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 404
    streamed = [r.json()["stream"] for r in hosts["embedding"].requests_to("/v1/chat/completions")]
    assert streamed and not any(streamed)  # the summary was asked (with a shorter retry), and no turn after it
    assert not Compaction.objects.exists() and not Message.objects.exists()
