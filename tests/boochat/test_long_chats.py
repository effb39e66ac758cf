"""A long chat's page shows the latest turns of its branch and links to the earlier ones; the
context shown, compaction and what the model sees still follow the whole branch."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from boochat.models import Attachment, Compaction, Message, MessageState
from providers.routing import registry
from tests.boochat.test_chat import chat_requests, new_session, send

pytestmark = pytest.mark.django_db

PAGE = 20


@pytest.fixture(autouse=True)
def page_turns(settings):
    settings.BOOCHAT_CHAT_PAGE_TURNS = PAGE


def long_chat(client, turns, *, usage=True):
    """A chat of `turns` questions and answers, one after the other on one branch."""
    session = new_session(client, "sam-desktop/qwen3-8b", title="long")
    parent = None
    for turn in range(turns):
        parent = Message.objects.create(session=session, parent=parent, role="user", content=f"question {turn}")
        parent = Message.objects.create(session=session, parent=parent, role="assistant", content=f"answer {turn}",
                                        state=MessageState.COMPLETE, model_id="sam-desktop/qwen3-8b",
                                        usage={"total_tokens": 10 * turn + 10} if usage else None)
    return session


def questions(response):
    return [m.content for m in response.context_data["history"] if m.role == "user"]


def earlier_link(response):
    return response.context_data["earlier_url"]


def test_a_long_chat_shows_its_latest_turns_and_a_link_to_the_earlier_ones(user_client, hosts):
    session = long_chat(user_client, 1500)  # 3,000 messages
    response = user_client.get(session.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert questions(response) == [f"question {turn}" for turn in range(1480, 1500)]
    assert html.count('<article id="message-') == 2 * PAGE
    first_shown = session.messages.get(content="question 1480")
    assert earlier_link(response) == f"{session.get_absolute_url()}?before={first_shown.pk}"
    assert f'<a href="{earlier_link(response)}" hx-get="{earlier_link(response)}"' in html
    assert ">Show earlier turns</a>" in html and "Show later turns" not in html
    assert response.context_data["usage"]["used"] == 15_000  # the host's count for the whole branch

    # Without htmx the link opens the page of the turns before, which links on to the ones after.
    earlier = user_client.get(earlier_link(response))
    assert earlier.status_code == 200 and earlier.templates[0].name == "chat.html"
    assert questions(earlier) == [f"question {turn}" for turn in range(1460, 1480)]
    assert "Show earlier turns" in earlier.content.decode() and "Show later turns" in earlier.content.decode()
    assert earlier.context_data["usage"]["used"] == 15_000

    # With htmx: only those turns and the link to the ones before them, to put in the link's place.
    fragment = user_client.get(earlier_link(response), headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.template_name == "chat.html#earlier"
    assert questions(fragment) == [f"question {turn}" for turn in range(1460, 1480)]
    assert "<h1" not in fragment.content.decode() and 'id="composer"' not in fragment.content.decode()
    assert "Show earlier turns" in fragment.content.decode() and "Show later turns" not in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"] and "HX-Request" in response["Vary"]

    # The first page of the branch has no link to earlier turns.
    second = session.messages.get(content="question 20")
    start = user_client.get(f"{session.get_absolute_url()}?before={second.pk}", headers={"HX-Request": "true"})
    assert questions(start) == [f"question {turn}" for turn in range(20)]
    assert earlier_link(start) == "" and "Show earlier turns" not in start.content.decode()


def test_the_page_costs_the_same_queries_for_a_long_chat(user_client, hosts, settings, django_assert_max_num_queries):
    settings.BOOCHAT_CATALOG_TTL = 3600  # no refresh of the model lists in between, however slow the machine
    short, long = long_chat(user_client, 3), long_chat(user_client, 2000)
    before = long.messages.get(content="question 1000")
    user_client.get(short.get_absolute_url())  # the model lists and context size, read once
    # Each page reads the provider rows afresh (they are kept for a second), so that all count the same.
    registry.forget()
    with CaptureQueriesContext(connection) as queries:
        assert user_client.get(short.get_absolute_url()).status_code == 200
    for url in (long.get_absolute_url(), f"{long.get_absolute_url()}?before={before.pk}"):
        registry.forget()
        with django_assert_max_num_queries(len(queries)):
            assert user_client.get(url).status_code == 200


def test_the_context_shown_and_what_the_model_sees_follow_the_whole_branch(user_client, hosts, settings):
    session = long_chat(user_client, 300, usage=False)
    estimated = user_client.get(session.get_absolute_url()).context_data["usage"]
    settings.BOOCHAT_CHAT_PAGE_TURNS = 1000
    assert user_client.get(session.get_absolute_url()).context_data["usage"] == estimated
    assert not estimated["exact"] and estimated["used"] > 300 * 4

    settings.BOOCHAT_CHAT_PAGE_TURNS = PAGE
    through = session.messages.get(content="answer 290")
    Compaction.objects.create(session=session, through_message=through, summary="earlier", model_id="sam-desktop/qwen3-8b")
    response = user_client.get(session.get_absolute_url())
    assert response.context_data["compacted_through"] == through.pk
    assert response.content.decode().count('class="compaction-note"') == 1
    older = user_client.get(f"{session.get_absolute_url()}?before={session.messages.get(content='question 280').pk}")
    assert older.context_data["compacted_through"] == through.pk  # the branch's, though not on this page
    assert older.content.decode().count(" compacted\"") == 2 * PAGE

    send(user_client, session, "and now?")
    (request,) = chat_requests(hosts["sam-desktop"])
    assert [m["content"] for m in request["messages"]] == [
        "Summary of the earlier conversation:\nearlier",
        *(text for turn in range(291, 300) for text in (f"question {turn}", f"answer {turn}")), "and now?"]


def test_a_search_hit_far_up_a_long_chat_opens_the_turns_around_it(user_client, hosts):
    session = long_chat(user_client, 200)
    hit = session.messages.get(content="answer 37")
    response = user_client.get(f"{session.get_absolute_url()}?at={hit.pk}")
    assert hit in response.context_data["history"]
    assert "Show earlier turns" in response.content.decode() and "Show later turns" in response.content.decode()


def test_a_bad_or_stale_page_link_is_answered_clearly(user_client, hosts):
    session = long_chat(user_client, 30)
    bad = user_client.get(f"{session.get_absolute_url()}?before=abc")
    assert bad.status_code == 400 and b"before" in bad.content
    elsewhere = user_client.get(f"{session.get_absolute_url()}?before=999999999")  # not on the branch shown
    assert elsewhere.status_code == 200
    assert questions(elsewhere)[-1] == "question 29"


def test_the_estimated_context_counts_the_files_of_the_questions(user_client, hosts):
    session = long_chat(user_client, 30, usage=False)
    before = user_client.get(session.get_absolute_url()).context_data["usage"]["used"]
    question = session.messages.get(content="question 3")  # far above the page shown
    Attachment.objects.create(message=question, kind=Attachment.Kind.TEXT, name="notes.txt", media_type="text/plain",
                              size=3000, text="x" * 3000)
    after = user_client.get(session.get_absolute_url()).context_data["usage"]["used"]
    assert after - before >= 1000  # 3,000 characters at 3 a token
