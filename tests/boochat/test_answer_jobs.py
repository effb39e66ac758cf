"""Answers that outlive the request: followed by SSE with event ids, resumed with Last-Event-ID from
any client, with nothing lost and nothing repeated; across processes through Redis Streams, or the
saved text without Redis."""

import asyncio
import json
import random
import re
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.urls import reverse

from boochat.chat import broker, jobs
from boochat.models import ChatSession, Message, MessageState
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap

STREAM = {"X-BooChat-Stream": "1"}
EVENT = re.compile(rb"(?:^|\n\n)id: (\d+)\ndata: ([^\n]*)")
ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)
CONTENT = re.compile(rb'"content":"([^"]*)"')


async def read_while_saved(pieces, answer_pk, **saved):
    """All a follower of the saved text yields, the answer's row updated to `saved` (its end) once the
    first piece has come."""
    read = []
    async for piece in pieces:
        read.append(piece)
        if len(read) == 1:
            await asyncio.to_thread(lambda: Message.objects.filter(pk=answer_pk).update(
                **saved, state=MessageState.COMPLETE))
    return b"".join(read)


def assemble(body):
    """(text, ids, end) of a followed answer's SSE body."""
    ids, text = [], []
    for n, data in EVENT.findall(body):
        ids.append(int(n))
        if data.startswith(b"{"):
            chunk = json.loads(data)
            text += [c.get("delta", {}).get("content") or "" for c in chunk.get("choices", [])]
    end = re.search(rb"event: end\ndata: (.*)\n\n$", body)
    return "".join(text), ids, json.loads(end.group(1)) if end else None


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.fixture
def followed_chat(asgi_server, session_cookie):
    """(session, clients(n), host) for a long answer on a fake llama-swap."""
    user, cookies = session_cookie()
    opened = []

    def clients(host, n=2):
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        made = []
        for _ in range(n):
            client = httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10)
            client.get(session.get_absolute_url())
            client.headers.update({**STREAM, "X-CSRFToken": client.cookies["csrftoken"]})
            opened.append(client)
            made.append(client)
        return session, made

    yield clients
    for client in opened:
        client.close()


@pytest.mark.django_db(transaction=True)
def test_a_reader_resumes_after_its_last_event_with_nothing_lost_or_repeated(followed_chat):
    words = [f"w{i} " for i in range(300)]
    with FakeLlamaSwap(reply=words, stream_delay=0.005) as host:
        session, (sender, reloaded) = followed_chat(host)
        with sender.stream("POST", reverse("chat_send", args=[session.pk]), data={"content": "count"}) as response:
            follow_url = response.headers["x-boochat-follow"]
            first = b""
            for chunk in response.iter_raw():
                first += chunk
                if len(EVENT.findall(first)) >= 20:
                    break
        first = first[:first.rindex(b"\n\n") + 2]  # the events read whole before the connection dropped
        text, ids, _ = assemble(first)
        rest = reloaded.get(follow_url, headers={"Last-Event-ID": str(ids[-1])}).content
        more, more_ids, end = assemble(rest)
    answer = Message.objects.get(role="assistant")
    assert end == {"state": "complete", "error": ""}
    assert ids + more_ids == list(range(1, more_ids[-1] + 1))
    assert text + more == "".join(words) == answer.content
    assert len(host.requests_to("/v1/chat/completions")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_reader_sees_the_same_answer_live(followed_chat):
    words = [f"w{i} " for i in range(200)]
    with FakeLlamaSwap(reply=words, stream_delay=0.01) as host:
        session, (sender, phone) = followed_chat(host)
        with sender.stream("POST", reverse("chat_send", args=[session.pk]), data={"content": "count"}) as response:
            chunks = response.iter_raw()
            body = next(chunks)
            with phone.stream("GET", response.headers["x-boochat-follow"]) as watching:
                seen = b"".join(watching.iter_raw())
                assert Message.objects.get(role="assistant").state == MessageState.COMPLETE
            body += b"".join(chunks)
    assert assemble(seen)[0] == assemble(body)[0] == "".join(words)
    assert assemble(seen)[2] == {"state": "complete", "error": ""}


@pytest.mark.django_db
def test_following_needs_a_numbered_place_and_ones_own_answer(user_client, django_user_model):
    session = ChatSession.objects.create(user=django_user_model.objects.get(username="alice"), model_id="a/b", title="t")
    answer = add_message(session=session, role="assistant", content="done", state=MessageState.COMPLETE)
    url = reverse("chat_answer_stream", args=[answer.pk])
    response = user_client.get(url, headers={"Last-Event-ID": "12abc"})
    assert response.status_code == 400 and b"Last-Event-ID" in response.content
    other = django_user_model.objects.create_user("bob")
    theirs = add_message(session=ChatSession.objects.create(user=other, model_id="a/b", title="t"), role="assistant")
    assert user_client.get(reverse("chat_answer_stream", args=[theirs.pk])).status_code == 404
    body = async_to_sync(collect)(user_client.get(url).streaming_content)
    assert body.endswith(b'event: end\ndata: {"state":"complete","error":""}\n\n')
    assert json.loads(re.search(rb"event: snapshot\ndata: (.*)\n", body).group(1))["content"] == "done"


@pytest.mark.django_db
def test_the_chat_list_marks_chats_with_an_answer_in_progress(user_client, django_user_model):
    alice = django_user_model.objects.get(username="alice")
    writing = ChatSession.objects.create(user=alice, model_id="a/b", title="Writing now")
    done = ChatSession.objects.create(user=alice, model_id="a/b", title="All done")
    add_message(session=writing, role="assistant", state=MessageState.STREAMING)
    add_message(session=done, role="assistant", state=MessageState.COMPLETE)
    page = user_client.get(reverse("chat_index")).content.decode()
    assert re.search(r">Writing now</a>\s*<span class=\"answering\"[^>]*>\(writing…\)</span>", page)
    assert not re.search(r">All done</a>\s*<span class=\"answering\"", page)


async def collect(stream):
    return b"".join([piece async for piece in stream])


def host_event(i):
    return b'data: {"choices":[{"index":0,"delta":{"content":"c%d "}}]}' % i


async def reconnecting_reader(open_stream, rng, chunks):
    """Read from the start, drop the connection at a random event, resume after the last one read."""
    cut = rng.randint(1, chunks)
    pieces, last = [], 0
    stream = open_stream(0)
    async for piece in stream:
        pieces.append(piece)
        ids = ID.findall(piece)
        if ids and int(ids[-1]) >= cut:
            last = int(ids[-1])
            break
    await stream.aclose()
    body = b"".join(pieces)
    rest = [body[:body.index(b"\n\n", body.rindex(b"id: %d\n" % last)) + 2] if last else b""]
    async for piece in open_stream(last):
        rest.append(piece)
    return b"".join(rest)


def check_readers(bodies, chunks):
    expected_ids = list(range(1, chunks + 1))
    expected = [b"c%d " % i for i in range(chunks)]
    for body in bodies:
        assert [int(n) for n in ID.findall(body)] == expected_ids, "an event lost or repeated"
        assert CONTENT.findall(body) == expected
        assert body.endswith(b'event: end\ndata: {"state":"complete","error":""}\n\n')


def test_a_thousand_reconnects_at_random_points_lose_and_repeat_nothing():
    chunks, readers = 2000, 1000

    async def run():
        job = jobs.Job(answer_pk=1)
        rng = random.Random(29)

        async def produce():
            for i in range(chunks):
                job.publish(host_event(i))
                if i % 20 == 0:  # the readers run between bursts, and drop out at random events of them
                    await asyncio.sleep(0)
            job.finish(MessageState.COMPLETE, "")

        reading = [asyncio.create_task(reconnecting_reader(lambda after: jobs.follow_job(job, after), rng, chunks))
                   for _ in range(readers)]
        await produce()
        return await asyncio.gather(*reading)

    check_readers(asyncio.run(run()), chunks)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (REDIS_URL): runs there in CI")
def test_reconnects_through_redis_streams_lose_and_repeat_nothing(django_user_model):
    chunks, readers = 2000, 200
    user = django_user_model.objects.create_user("redis")
    answer = add_message(session=ChatSession.objects.create(user=user, model_id="a/b", title="t"), role="assistant",
                         state=MessageState.STREAMING)

    async def run():
        await broker.redis_client().delete(broker.stream_key(answer.pk))
        feed = broker.RedisFeed(answer.pk)
        await feed.flushing  # the stream exists before its first reader comes
        rng = random.Random(29)
        reading = [asyncio.create_task(reconnecting_reader(lambda after: jobs.follow(answer.pk, after), rng, chunks))
                   for _ in range(readers)]
        for i in range(chunks):
            feed.add(i + 1, host_event(i))
            if i % 20 == 0:
                await asyncio.sleep(0.001)
        await feed.finish(chunks + 1, MessageState.COMPLETE, "")
        bodies = await asyncio.gather(*reading)
        ttl = await broker.redis_client().ttl(broker.stream_key(answer.pk))
        await broker.redis_client().aclose()
        return bodies, ttl

    bodies, ttl = asyncio.run(run())
    check_readers(bodies, chunks)
    assert 0 < ttl <= broker.ENDED_TTL_SECONDS  # the stream goes some minutes after the end


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_answer_is_saved_and_readers_follow_the_saved_text(followed_chat, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    settings.BOOCHAT_CACHE_TIMEOUT = 1
    words = [f"w{i} " for i in range(50)]
    with FakeLlamaSwap(reply=words, stream_delay=0.01) as host:
        session, (sender,) = followed_chat(host, n=1)
        body = sender.post(reverse("chat_send", args=[session.pk]), data={"content": "count"}).content
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.COMPLETE and answer.content == "".join(words) == assemble(body)[0]

    # A reader in a process that does not run the job: Redis fails, the saved text is followed.
    other = add_message(session=session, role="assistant", content="so far", state=MessageState.STREAMING)

    seen = asyncio.run(read_while_saved(jobs.follow(other.pk), other.pk, content="so far, and the rest"))
    snapshots = [json.loads(d)["content"] for d in re.findall(rb"event: snapshot\ndata: (.*)\n", seen)]
    assert snapshots[0] == "so far" and snapshots[-1] == "so far, and the rest"
    assert seen.endswith(b'event: end\ndata: {"state":"complete","error":""}\n\n')
