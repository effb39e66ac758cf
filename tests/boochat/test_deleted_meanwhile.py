"""Rows deleted while BooChat works on them (a chat or arena run deleted by its owner, or in admin,
while an answer streams or a title is written) are not inserted again, and the request still answers.
The streaming cases, through a real server, are in test_streaming.py."""

import pytest
from django.urls import reverse

from boochat import arena, chat
from boochat.models import ArenaRun, ChatSession, Message, MessageState, save_if_kept
from tests.boochat.test_chat import new_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(django_user_model):
    return ChatSession.objects.create(user=django_user_model.objects.create_user("alice"), model_id="sam-desktop/qwen3-8b")


def test_a_kept_row_is_saved(session):
    session.title = "Llamas"
    assert save_if_kept(session, ["title"]) is True
    session.refresh_from_db()
    assert session.title == "Llamas"


def test_a_deleted_row_is_not_inserted_again(session):
    answer = Message.objects.create(session=session, role="assistant", state=MessageState.STREAMING)
    ChatSession.objects.filter(pk=session.pk).delete()
    answer.content, answer.state = "all of it", MessageState.COMPLETE
    assert save_if_kept(answer) is False
    assert save_if_kept(session, ["title"]) is False
    assert not Message.objects.exists() and not ChatSession.objects.exists()


def test_it_writes_what_save_writes(session):
    answer = Message.objects.create(session=session, role="assistant", state=MessageState.STREAMING)
    before = answer.updated_at
    answer.content, answer.state, answer.usage = "all of it", MessageState.COMPLETE, {"total_tokens": 7}
    assert save_if_kept(answer) is True
    assert answer.updated_at > before  # auto_now, as save() sets it
    saved = Message.objects.get(pk=answer.pk)
    assert (saved.content, saved.state, saved.usage, saved.updated_at) == ("all of it", "complete", {"total_tokens": 7}, answer.updated_at)
    answer.content, answer.error = "changed", "not saved"
    assert save_if_kept(answer, ["content"]) is True
    saved.refresh_from_db()
    assert (saved.content, saved.error, saved.updated_at) == ("changed", "", answer.updated_at)


def deleting(model, pk, answer):
    """A complete_chat that deletes the row in question while the host answers."""
    async def complete_chat(route, messages, **options):
        await model.objects.filter(pk=pk).adelete()
        return {"choices": [{"message": {"role": "assistant", "content": answer}}]}

    return complete_chat


def test_a_chat_deleted_while_its_title_is_written(user_client, hosts, monkeypatch):
    session = new_session(user_client, "sam-desktop/qwen3-8b")
    Message.objects.create(session=session, role="user", content="hi")
    monkeypatch.setattr(chat, "complete_chat", deleting(ChatSession, session.pk, "Greetings"))
    response = user_client.post(reverse("chat_title", args=[session.pk]))
    assert response.status_code == 200 and "Greetings" in response.content.decode()
    assert not ChatSession.objects.exists()


def test_an_arena_run_deleted_while_it_is_analyzed(user_client, hosts, monkeypatch):
    user_client.post(reverse("arena_new"), {"prompt": "Which is faster?", "model_1": "sam-desktop/qwen3-8b",
                                            "model_2": "embedding/qwen3-8b", "analyzer": "sam-desktop/qwen3-8b"})
    run = ArenaRun.objects.get()
    monkeypatch.setattr(arena, "complete_chat", deleting(ArenaRun, run.pk, "The first."))
    response = user_client.post(reverse("arena_analyze", args=[run.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200 and "The first." in response.content.decode()
    assert not ArenaRun.objects.exists()


def test_a_chat_deleted_while_its_host_refuses_the_turn(user_client, hosts, monkeypatch):
    from boochat.proxy import UpstreamError

    session = new_session(user_client, "sam-desktop/qwen3-8b")

    async def refused(route, body):
        await ChatSession.objects.filter(pk=session.pk).adelete()
        raise UpstreamError("Sam's desktop (sam-desktop) is busy (too many requests).", status=503)

    monkeypatch.setattr(chat, "open_chat_stream", refused)
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 503
    assert response.json() == {"error": "Sam's desktop (sam-desktop) is busy (too many requests)."}
    assert not Message.objects.exists()


def test_a_chat_deleted_while_its_history_is_summarized(user_client, hosts, monkeypatch):
    from boochat.models import Compaction
    from providers.models import ModelOverride, Provider

    ModelOverride.objects.create(provider=Provider.objects.get(slug="embedding"), model="qwen3-8b", context_size=1024)
    session = new_session(user_client, "embedding/qwen3-8b")
    for i in range(6):
        Message.objects.create(session=session, role="user", content=f"question {i} " + "words " * 80)
        Message.objects.create(session=session, role="assistant", content=f"answer {i} " + "text " * 80)

    async def summarize(route, transcript):
        await ChatSession.objects.filter(pk=session.pk).adelete()
        return "They talked."

    monkeypatch.setattr(chat, "summarize", summarize)
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "and now?"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 404
    assert not Compaction.objects.exists() and not Message.objects.exists()
    assert not any(r.json()["stream"] for r in hosts["embedding"].requests_to("/v1/chat/completions"))  # no turn asked


def test_a_field_name_that_is_not_there_is_refused(session):
    with pytest.raises(ValueError, match="ChatSession has no field to save named titel"):
        save_if_kept(session, ["titel"])
