"""Edit and resend, regenerate on any host, delete a turn: a chat is a tree, the page shows one branch,
and what the model sees, the context shown and compaction follow that branch."""

import json

import pytest
from django.urls import reverse

from boochat.models import ChatSession, Compaction, Message, MessageState
from tests.boochat.test_chat import answers, chat_requests, long_session, new_session, send
from tests.factories import add_message

pytestmark = pytest.mark.django_db


def edit(client, message, text):
    return client.post(reverse("chat_edit", args=[message.pk]), {"content": text})


def regenerate(client, answer, model_id=""):
    return client.post(reverse("chat_regenerate", args=[answer.pk]), {"model_id": model_id} if model_id else {})


def show(client, session, message):
    return client.post(reverse("chat_branch", args=[session.pk]), {"message": message.pk})


def page(client, session):
    response = client.get(session.get_absolute_url())
    assert response.status_code == 200
    return response


def shown(client, session):
    """What the page shows: (role, content) of each message of the branch."""
    return [(m.role, m.content[:20]) for m in page(client, session).context_data["history"]]


def test_an_edited_question_starts_a_branch_and_the_earlier_one_stays(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    send(user_client, session, "first question")
    send(user_client, session, "second question")
    second = session.messages.get(content="second question")

    response = edit(user_client, second, "second, reworded")
    assert response.status_code == 302
    # The host saw the branch the edit makes: the first turn, then the edited question; not the original.
    *_, request = chat_requests(hosts["sam-desktop"])
    assert [m["content"] for m in request["messages"]][::2] == ["first question", "second, reworded"]
    assert session.messages.count() == 6  # nothing deleted
    html = page(user_client, session).content.decode()
    assert "second, reworded" in html and "second question" not in html
    assert '<span class="branch-position">2/2</span>' in html

    assert show(user_client, session, second).status_code == 302
    assert [content for _, content in shown(user_client, session)][::2] == ["first question", "second question"]
    assert '<span class="branch-position">1/2</span>' in page(user_client, session).content.decode()

    # The next question follows the branch shown: the host sees the original second question.
    send(user_client, session, "third")
    *_, request = chat_requests(hosts["sam-desktop"])
    assert [m["content"] for m in request["messages"]][::2] == ["first question", "second question", "third"]


def test_an_answer_regenerated_on_another_host_is_kept_beside_the_first(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    send(user_client, session, "which host are you?")
    (first,) = answers(session)

    assert regenerate(user_client, first, "embedding/qwen3-8b").status_code == 302
    (request,) = chat_requests(hosts["embedding"])  # the other host answered, with the same question
    assert request["model"] == "qwen3-8b"
    assert request["messages"] == [{"role": "user", "content": "which host are you?"}]
    first_again, second = answers(session)
    assert (first_again.provider, second.provider) == ("sam-desktop", "embedding")
    assert second.parent_id == first.parent_id and second.state == MessageState.COMPLETE
    session.refresh_from_db()
    assert session.model_id == "sam-desktop/qwen3-8b"  # the chat's own model is unchanged

    html = page(user_client, session).content.decode()
    assert "qwen3-8b · embedding" in html and '<span class="branch-position">2/2</span>' in html
    show(user_client, session, first)
    assert "qwen3-8b · sam-desktop" in page(user_client, session).content.decode()

    # Regenerate with no model chosen: the same model again.
    regenerate(user_client, first)
    assert len(chat_requests(hosts["sam-desktop"])) == 2
    assert '<span class="branch-position">3/3</span>' in page(user_client, session).content.decode()


def test_the_regenerate_form_offers_every_host(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    send(user_client, session, "hi")
    (answer,) = answers(session)
    response = user_client.get(reverse("chat_regenerate", args=[answer.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="embedding/qwen3-8b"' in html and 'value="deepseek/deepseek-v4-flash"' in html
    assert 'value="sam-desktop/qwen3-8b" selected' in html
    partial = user_client.get(reverse("chat_regenerate", args=[answer.pk]), headers={"HX-Request": "true"})
    assert "<h1>" not in partial.content.decode() and "turn-form" in partial.content.decode()


def test_deleting_a_turn_keeps_the_turns_after_it(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    for text in ("one", "two", "three"):
        send(user_client, session, text)
    two = session.messages.get(content="two")
    response = user_client.post(reverse("chat_delete_turn", args=[two.replies.get().pk]))  # from its answer
    assert response.status_code == 302
    assert not session.messages.filter(content="two").exists()
    assert session.messages.count() == 4
    assert [c for role, c in shown(user_client, session) if role == "user"] == ["one", "three"]

    send(user_client, session, "four")
    *_, request = chat_requests(hosts["sam-desktop"])
    assert [m["content"] for m in request["messages"]][::2] == ["one", "three", "four"]


def test_the_context_shown_and_compaction_follow_the_branch(user_client, hosts):
    session = long_session(user_client)
    send(user_client, session, "and now?")
    assert Compaction.objects.filter(session=session).count() == 1

    # An edit of the first question makes a branch with none of the long history: no summary in it.
    first = session.messages.order_by("id").first()
    hosts["embedding"].requests.clear()
    edit(user_client, first, "short start")
    (request,) = chat_requests(hosts["embedding"])
    assert request["messages"] == [{"role": "user", "content": "short start"}]
    assert page(user_client, session).context_data["compacted_through"] == 0
    show(user_client, session, first)  # back on the long branch: its summary applies again
    assert page(user_client, session).context_data["compacted_through"] == Compaction.objects.get().through_message_id


def test_a_search_hit_on_an_earlier_branch_opens_that_branch(user_client, hosts):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    send(user_client, session, "original wording")
    original = session.messages.get(content="original wording")
    edit(user_client, original, "new wording")
    response = user_client.get(session.get_absolute_url() + f"?at={original.pk}")
    assert [c for role, c in ((m.role, m.content) for m in response.context_data["history"]) if role == "user"] == [
        "original wording"]
    send(user_client, session, "follow-up")  # and the chat goes on from there
    assert session.messages.get(content="follow-up").parent.parent == original


def test_bad_branch_edit_and_regenerate_requests_change_nothing(user_client, hosts, django_user_model):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    send(user_client, session, "hi")
    question, answer = session.messages.order_by("id")
    other = ChatSession.objects.create(user=django_user_model.objects.create_user("bob"), model_id="sam-desktop/qwen3-8b")
    strangers = add_message(session=other, role="user", content="bob's")
    before = Message.objects.count()

    assert show(user_client, session, strangers).status_code == 400
    assert user_client.post(reverse("chat_branch", args=[session.pk]), {"message": "x"}).status_code == 400
    assert edit(user_client, strangers, "mine now").status_code == 404
    assert edit(user_client, answer, "an answer is not a question").status_code == 404
    stream = {"headers": {"X-BooChat-Stream": "1"}}
    empty = user_client.post(reverse("chat_edit", args=[question.pk]), {"content": "  "}, **stream)
    assert empty.status_code == 400 and json.loads(empty.content) == {"error": "The message is empty."}
    unknown = user_client.post(reverse("chat_regenerate", args=[answer.pk]), {"model_id": "nowhere/x"}, **stream)
    assert unknown.status_code == 400 and "nowhere" in json.loads(unknown.content)["error"]
    assert user_client.post(reverse("chat_regenerate", args=[question.pk])).status_code == 404
    assert user_client.post(reverse("chat_delete_turn", args=[strangers.pk])).status_code == 404
    assert Message.objects.count() == before
    assert len(chat_requests(hosts["sam-desktop"])) == 1



def branched_chat(client):
    """"two" asked again reworded, then answered a second time after "three" followed its first answer."""
    session = new_session(client, "sam-desktop/qwen3-8b", title="t")
    send(client, session, "one")
    send(client, session, "two")
    two = session.messages.get(content="two")
    (first_answer,) = two.replies.all()
    edit(client, two, "two, reworded")
    show(client, session, first_answer)
    send(client, session, "three")  # follows the first answer to "two"
    regenerate(client, first_answer)  # a second, newer answer to "two", with nothing after it yet
    return session, two, two.replies.latest("pk")


def shown_questions(client, session):
    return [content for role, content in shown(client, session) if role == "user"]


def test_choosing_a_question_shows_its_newest_answer(user_client, hosts):
    session, two, newer_answer = branched_chat(user_client)
    show(user_client, session, session.messages.get(content="two, reworded"))
    show(user_client, session, two)  # ‹ › on the question: its newest answer, not the first and what follows it
    assert shown_questions(user_client, session) == ["one", "two"]
    assert page(user_client, session).context_data["history"][-1] == newer_answer


def test_deleting_the_turn_shown_shows_the_newest_branch_below_the_turn_before(user_client, hosts):
    session, two, newer_answer = branched_chat(user_client)
    show(user_client, session, newer_answer)
    assert user_client.post(reverse("chat_delete_turn", args=[newer_answer.pk])).status_code == 302
    # "three" followed the deleted turn and now follows "one", where it is the newest branch.
    assert shown_questions(user_client, session) == ["one", "three"]
