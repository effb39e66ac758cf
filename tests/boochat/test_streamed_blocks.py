"""Readers of a streaming answer get its finished Markdown blocks rendered, once, as `block` events:
the same HTML as the saved answer's, live, on a resume, for a reader joining late, through Redis and
in the snapshots of the saved text."""

import asyncio
import json
import re

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from boochat.chat import broker, jobs
from boochat.markdown import render_markdown
from boochat.models import ChatSession, Message, MessageState
from tests.boochat import test_answer_jobs
from tests.boochat.test_answer_jobs import EVENT, ID, assemble, read_while_saved
from tests.factories import add_message
from tests.fakes.llama_swap import FakeLlamaSwap

followed_chat = test_answer_jobs.followed_chat

ANSWER = ("Here is the plan, in **three** parts.\n\n| step | cost |\n|---|--:|\n| parse | 1 |\n| render | 2 |\n\n"
          "```python\ndef total(costs):\n    return sum(costs)\n```\n\n- first\n- second\n\nThe end,\nnot yet rendered")
PIECES = [ANSWER[i:i + 3] for i in range(0, len(ANSWER), 3)]
BLOCK = re.compile(rb"(?:^|\n\n)id: (\d+)\nevent: block\ndata: ([^\n]*)")


def blocks_of(body):
    """[(id, {"html", "length"})] of the block events in an SSE body."""
    return [(int(n), json.loads(data)) for n, data in BLOCK.findall(body)]


def content_ids(body):
    return [int(n) for n, data in EVENT.findall(body) if b'"content":"' in data]


@pytest.mark.django_db(transaction=True)
def test_finished_blocks_arrive_rendered_while_the_answer_streams(followed_chat):
    with FakeLlamaSwap(reply=PIECES, stream_delay=0.005) as host:
        session, (sender,) = followed_chat(host, n=1)
        response = sender.post(reverse("chat_send", args=[session.pk]), data={"content": "plan"})
        body = response.content
    text, _, end = assemble(body)
    assert text == ANSWER == Message.objects.get(role="assistant").content and end["state"] == "complete"
    # The page swaps the saved question in at once (the answer's end then changes nothing above it).
    assert response.headers["x-boochat-question"] == reverse("chat_message", args=[Message.objects.get(role="user").pk])
    ids = [int(n) for n in ID.findall(body)]
    assert ids == list(range(1, len(ids) + 1))  # block events are numbered among the host's
    blocks = blocks_of(body)
    html = "".join(block["html"] for _, block in blocks)
    assert '<div class="table-wrap"' in html and '<span class="k">def</span>' in html and "<li>first</li>" in html
    assert blocks[0][0] < content_ids(body)[-1], "no block was shown before the answer ended"
    # The blocks are the saved answer's own rendering, up to the tail they leave as text.
    rendered = sum(block["length"] for _, block in blocks)
    assert html + render_markdown(ANSWER[rendered:]) == render_markdown(ANSWER)
    assert ANSWER[rendered:] == "The end,\nnot yet rendered"


@pytest.mark.django_db(transaction=True)
def test_a_resumed_reader_and_a_late_reader_get_the_blocks_too(followed_chat):
    with FakeLlamaSwap(reply=PIECES, stream_delay=0.01) as host:
        session, (sender, late) = followed_chat(host)
        with sender.stream("POST", reverse("chat_send", args=[session.pk]), data={"content": "plan"}) as response:
            follow_url = response.headers["x-boochat-follow"]
            first = b""
            for chunk in response.iter_raw():
                first += chunk
                if blocks_of(first):
                    break
        first = first[:first.rindex(b"\n\n") + 2]
        last_id = max(int(n) for n in ID.findall(first))
        resumed = late.get(follow_url, headers={"Last-Event-ID": str(last_id)}).content
        from_start = late.get(follow_url).content  # the answer is complete: its job's events are still kept
    everything = blocks_of(first) + blocks_of(resumed)
    assert [n for n, _ in everything] == [n for n, _ in blocks_of(from_start)]
    assert "".join(block["html"] for _, block in everything) == "".join(block["html"] for _, block in blocks_of(from_start))
    assert len(everything) >= 3 and blocks_of(resumed), "the resumed reader got no block"


@pytest.mark.django_db(transaction=True)
def test_a_continued_answer_streams_its_rest_as_text(followed_chat):
    # Its events hold only what follows the saved part (here the inside of a code block): rendered
    # alone, that would not be the saved answer's Markdown. The saved answer is swapped in at the end.
    with FakeLlamaSwap(reply=["\ny = 2\n", "```\n\n", "Done.\n\n", "More.\n"], stream_delay=0.005) as host:
        session, (sender,) = followed_chat(host, n=1)
        add_message(session=session, role="user", content="Code?")
        answer = add_message(session=session, role="assistant", content="```python\nx = 1", state=MessageState.INTERRUPTED,
                             error="Stopped before the answer was complete.", model_id=session.model_id, provider="sam-desktop")
        body = sender.post(reverse("chat_continue", args=[answer.pk])).content
    assert assemble(body)[0] == "\ny = 2\n```\n\nDone.\n\nMore.\n" and not blocks_of(body)
    answer.refresh_from_db()
    assert answer.content == "```python\nx = 1\ny = 2\n```\n\nDone.\n\nMore.\n"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL): runs there in CI")
def test_block_events_reach_other_processes_through_redis(followed_chat):
    with FakeLlamaSwap(reply=PIECES, stream_delay=0.002) as host:
        session, (sender,) = followed_chat(host, n=1)
        body = sender.post(reverse("chat_send", args=[session.pk]), data={"content": "plan"}).content
    answer = Message.objects.get(role="assistant")

    async def read():  # what a reader in another process reads: the answer's Redis Stream
        events = [item async for item in broker.read_redis(answer.pk)]
        await broker.redis_client().aclose()
        return events

    events = asyncio.run(read())
    from_redis = [(n, json.loads(event.split(b"data: ", 1)[1])) for n, event in events[:-1] if event.startswith(b"event: block")]
    assert from_redis == blocks_of(body) and from_redis


@pytest.mark.django_db(transaction=True)
def test_snapshots_of_the_saved_text_carry_its_finished_blocks(django_user_model):
    user = django_user_model.objects.create_user("saved")
    session = ChatSession.objects.create(user=user, model_id="a/b", title="t")
    answer = add_message(session=session, role="assistant", content="One.\n\n```\ncode\n```\n\nTwo\n",
                         state=MessageState.STREAMING)

    seen = asyncio.run(read_while_saved(broker.follow_saved(answer.pk), answer.pk,
                                        content="One.\n\n```\ncode\n```\n\nTwo\nthree.\n\nFour"))
    snapshots = [json.loads(d) for d in re.findall(rb"event: snapshot\ndata: (.*)\n", seen)]
    first, last = snapshots[0], snapshots[-1]
    assert first["html"] == render_markdown("One.\n\n```\ncode\n```\n\n") and first["length"] == len("One.\n\n```\ncode\n```\n\n")
    assert last["html"] == first["html"]  # the blocks shown stay until the saved answer is swapped in
    assert jobs.local_job(answer.pk) is None
