"""Continue: the same host goes on from an answer's saved text (stopped, or cut by the length limit),
and what it writes is added to that answer."""

import asyncio

import pytest
from django.urls import reverse

from boochat.models import Message
from providers.models import ProviderKind
from tests.boochat.test_chat import chat_requests, new_session, user_of
from tests.factories import add_message, make_provider

pytestmark = pytest.mark.django_db
STREAM = {"X-BooChat-Stream": "1"}


def cut_answer(session, **fields):
    add_message(session=session, role="user", content="Why are there tides?")
    return add_message(session=session, role="assistant", content="Tides come from the Moon's",
                       model_id=session.model_id, provider=session.model_id.partition("/")[0], **fields)


def streamed(user_client, async_client, answer):
    """Continue through the page's door (X-BooChat-Stream), the stream read to its end."""
    async_client.force_login(user_of(user_client))

    async def go():
        response = await async_client.post(reverse("chat_continue", args=[answer.pk]), headers=STREAM)
        if not response.streaming:
            return response, response.content
        return response, b"".join([chunk async for chunk in response.streaming_content])

    return asyncio.run(go())


def go_on(client, answer, headers=None):
    return client.post(reverse("chat_continue", args=[answer.pk]), headers=headers or {})


def test_a_stopped_answer_is_continued_by_its_host_and_saved_as_one_answer(user_client, hosts):
    hosts["sam-desktop"].reply = [" pull", " on the oceans."]
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    answer = cut_answer(session, state="interrupted", error="Stopped before the answer was complete.")
    page = user_client.get(session.get_absolute_url()).content.decode()
    assert f'action="{reverse("chat_continue", args=[answer.pk])}"' in page and 'aria-label="Continue"' in page

    response = go_on(user_client, answer)
    assert response.status_code == 302
    sent = chat_requests(hosts["sam-desktop"])[-1]["messages"]
    assert sent[-2:] == [{"role": "user", "content": "Why are there tides?"},
                         {"role": "assistant", "content": "Tides come from the Moon's"}]
    answer.refresh_from_db()
    assert (answer.content, answer.state, answer.error) == ("Tides come from the Moon's pull on the oceans.", "complete", "")
    assert session.messages.count() == 2  # the same answer, no new row


@pytest.mark.django_db(transaction=True)  # the async view's threads see the rows
def test_an_answer_cut_by_the_length_limit_is_continued_while_streaming(user_client, async_client, hosts):
    hosts["sam-desktop"].reply = [" gravity."]
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    answer = cut_answer(session, state="complete", finish_reason="length")
    response, body = streamed(user_client, async_client, answer)
    assert response.status_code == 200 and response["X-BooChat-Message"] == str(answer.pk)
    assert b" gravity." in body and b"Tides come from" not in body  # only what follows is streamed
    answer.refresh_from_db()
    assert answer.content == "Tides come from the Moon's gravity." and answer.finish_reason == "stop"


@pytest.mark.django_db(transaction=True)
def test_deepseek_continues_through_prefix_completion(user_client, async_client, deepseek_host, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", deepseek_host.api_key)
    make_provider(slug="deepseek", kind=ProviderKind.DEEPSEEK, base_url=deepseek_host.url, api_key_env="DEEPSEEK_API_KEY",
                  is_default=True)
    session = new_session(user_client, "deepseek/deepseek-v4-flash", title="t")
    answer = cut_answer(session, state="interrupted")
    response, _ = streamed(user_client, async_client, answer)
    assert response.status_code == 200
    request = next(r for r in deepseek_host.requests if r.method == "POST")
    assert request.path == "/beta/chat/completions"
    assert request.json()["messages"][-1] == {"role": "assistant", "content": "Tides come from the Moon's", "prefix": True}
    answer.refresh_from_db()
    assert answer.content.startswith("Tides come from the Moon's") and len(answer.content) > len("Tides come from the Moon's")
    assert answer.state == "complete"


@pytest.mark.parametrize(("fields", "why"), [
    ({"state": "complete", "finish_reason": "stop"}, "Only an answer that was stopped"),
    ({"state": "interrupted", "content": ""}, "Only an answer that was stopped"),
])
def test_an_answer_that_is_whole_or_empty_is_not_continued(user_client, hosts, fields, why):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    add_message(session=session, role="user", content="Q")
    answer = add_message(session=session, role="assistant", model_id=session.model_id, **{"content": "A", **fields})
    assert 'aria-label="Continue"' not in user_client.get(session.get_absolute_url()).content.decode()
    response = go_on(user_client, answer, STREAM)
    assert response.status_code == 409 and why in response.json()["error"]
    assert chat_requests(hosts["sam-desktop"]) == []
    assert Message.objects.get(pk=answer.pk).state == fields["state"]


def test_an_answer_with_questions_after_it_is_not_continued(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    answer = cut_answer(session, state="interrupted")
    add_message(session=session, role="user", content="Next question")
    response = go_on(user_client, answer, STREAM)
    assert response.status_code == 409 and "Only the last answer of a branch" in response.json()["error"]
    assert chat_requests(hosts["sam-desktop"]) == []


def test_another_users_answer_is_not_found(user_client, hosts, django_user_model):
    from boochat.models import ChatSession

    theirs = ChatSession.objects.create(user=django_user_model.objects.create_user("mallory"), model_id="sam-desktop/qwen3-8b")
    answer = cut_answer(theirs, state="interrupted")
    assert go_on(user_client, answer).status_code == 404


def test_an_answer_stopped_long_ago_is_not_taken_for_a_dead_stream_while_it_continues(user_client, hosts, settings):
    from datetime import timedelta

    from django.utils import timezone

    from boochat.autosave import interrupt_stale_answers
    from boochat.chat.turns import begin_continue

    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    answer = cut_answer(session, state="interrupted")
    Message.objects.filter(pk=answer.pk).update(updated_at=timezone.now() - timedelta(days=2))
    answer.refresh_from_db()
    begin_continue(session, answer)  # saved as streaming again, the host not asked yet
    assert interrupt_stale_answers(Message, session=session) == 0
    assert Message.objects.get(pk=answer.pk).state == "streaming"
