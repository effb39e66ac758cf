"""The streaming proxy behind a real ASGI server (uvicorn), read by a real HTTP client."""

import contextlib
import logging
import re
import time
import weakref

import httpx
import pytest
from django.urls import reverse

from boochat.models import ArenaAnswer, ArenaRun, ChatSession, Message, MessageState
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import CAPTURED_PIECES, FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = {"X-BooChat-Stream": "1"}


@pytest.fixture
def chat(asgi_server, session_cookie):
    """Returns (session, httpx client, send url) for a session on `host` / `model`."""
    user, cookies = session_cookie()
    clients = []

    def start(host, model="qwen3-8b", slug="sam-desktop"):
        make_provider(slug=slug, base_url=host.url, is_default=True)
        session = ChatSession.objects.create(user=user, model_id=f"{slug}/{model}", title="t")
        client = httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10)
        token = client.get(session.get_absolute_url()).cookies.get("csrftoken") or client.cookies.get("csrftoken")
        client.headers.update({**STREAM, "X-CSRFToken": token})
        clients.append(client)
        return session, client, reverse("chat_send", args=[session.pk])

    yield start
    for client in clients:
        client.close()


def wait_for_state(message_pk, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = Message.objects.get(pk=message_pk)
        if message.state != MessageState.STREAMING:
            return message
        time.sleep(0.05)
    return Message.objects.get(pk=message_pk)


def host_events(body: bytes) -> bytes:
    """The host's events in a followed answer: without BooChat's `id:` lines and its end event."""
    assert re.search(rb'event: end\ndata: \{"state":"[a-z]+","error":".*"\}\n\n$', body), body[-200:]
    events = body[:body.rindex(b"event: end\n")]
    return re.sub(rb"^id: \d+\n", b"", events, flags=re.MULTILINE)


def test_the_stream_is_relayed_byte_for_byte(chat):
    with FakeLlamaSwap() as host:
        session, client, url = chat(host)
        with client.stream("POST", url, data={"content": "Hello, who are you?"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            body = b"".join(response.iter_raw())
        expected = b"".join(host.stream_events("qwen3-8b", include_usage=True))
    assert host_events(body) == expected
    assert [int(n) for n in re.findall(rb"^id: (\d+)$", body, flags=re.MULTILINE)] == list(range(1, len(re.findall(b"\n\n", expected)) + 1))
    answer = wait_for_state(int(response.headers["x-boochat-message"]))
    assert answer.state == MessageState.COMPLETE
    assert answer.provider == "sam-desktop"


def test_tokens_arrive_before_the_stream_ends(chat):
    with FakeLlamaSwap(reply=["one ", "two ", "three"], stream_delay=0.3) as host:
        _, client, url = chat(host)
        started = time.monotonic()
        with client.stream("POST", url, data={"content": "count"}) as response:
            chunks = response.iter_raw()
            first = next(c for c in chunks if b'"content":"one ' in c)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
            done_at = time.monotonic() - started
    assert first and b"[DONE]" in rest
    assert first_at < done_at - 0.5  # the first words were not held back until the end


def test_a_host_dropping_mid_stream_ends_the_relay_with_an_error_event(chat):
    with FakeLlamaSwap() as host:
        host.drop_after = 5
        _, client, url = chat(host)
        with client.stream("POST", url, data={"content": "hi"}) as response:
            body = b"".join(response.iter_raw())
    assert b'"type":"upstream_disconnected"' in body
    answer = wait_for_state(int(response.headers["x-boochat-message"]))
    assert answer.state == MessageState.INTERRUPTED
    assert answer.content == "".join(CAPTURED_PIECES[:4])


def test_leaving_mid_answer_lets_the_host_finish_and_saves_the_whole_answer(chat):
    with FakeLlamaSwap(reply=["word "] * 100, stream_delay=0.01) as host:
        _, client, url = chat(host)
        with client.stream("POST", url, data={"content": "talk a lot"}) as response:
            message_pk = int(response.headers["x-boochat-message"])
            received = b""
            for chunk in response.iter_raw():
                received += chunk
                if received.count(b"word") >= 5:
                    break
        answer = wait_for_state(message_pk, timeout=10)
    assert not host.disconnects, "the host was stopped when the browser left"
    assert answer.state == MessageState.COMPLETE and answer.error == ""
    assert answer.content == "word " * 100


def test_loading_state_is_relayed_but_not_stored(chat):
    with FakeLlamaSwap([FakeModel("qwen3-30b")], send_loading_state=True) as host:
        _, client, url = chat(host, model="qwen3-30b")
        with client.stream("POST", url, data={"content": "hi"}) as response:
            body = b"".join(response.iter_raw())
    assert b"llama-swap loading model: qwen3-30b" in body
    answer = wait_for_state(int(response.headers["x-boochat-message"]))
    assert answer.reasoning == "" and answer.state == MessageState.COMPLETE


def test_host_errors_before_the_stream_are_json_with_the_provider_named(chat):
    with FakeLlamaSwap() as host:
        _, client, url = chat(host, model="not-served")
        response = client.post(url, data={"content": "hi"})
    assert response.status_code == 404
    assert response.json()["error"].startswith("sam-desktop (sam-desktop) does not serve 'not-served'")


def test_answers_being_streamed_hold_no_database_connection(chat, monkeypatch):
    # Each request has its own thread and connection; a stream lasts minutes. Holding a connection
    # all along made 200 concurrent chats on PostgreSQL fail (it allows ~100 connections), and on
    # SQLite each connection keeps its own page cache.
    from django.db.backends.base.base import BaseDatabaseWrapper

    wrappers = weakref.WeakSet()
    real_connect = BaseDatabaseWrapper.connect

    def connect(self):
        wrappers.add(self)
        return real_connect(self)

    monkeypatch.setattr(BaseDatabaseWrapper, "connect", connect)

    def open_connections():
        return sum(1 for w in list(wrappers) if w.connection is not None)

    with FakeLlamaSwap(reply=["word "] * 20, stream_delay=0.1) as host:
        session, client, _ = chat(host)
        streams = []
        with contextlib.ExitStack() as stack:
            for _ in range(5):
                other = ChatSession.objects.create(user=session.user, model_id=session.model_id, title="t")
                url = reverse("chat_send", args=[other.pk])
                response = stack.enter_context(client.stream("POST", url, data={"content": "hi"}))
                chunks = response.iter_raw()
                assert b"data: " in next(chunks)
                streams.append((response, chunks))
            time.sleep(0.3)  # past the relay's start, mid-answer for all five
            assert open_connections() <= 1  # at most this test's own
            bodies = [b"".join(chunks) for _, chunks in streams]
    assert all(b"[DONE]" in body for body in bodies)
    assert all(wait_for_state(int(r.headers["x-boochat-message"])).state == MessageState.COMPLETE for r, _ in streams)


@contextlib.contextmanager
def database_write_locked():
    """Another connection holds the database's write lock (as a long write elsewhere does) until the
    block ends: writes to answers wait meanwhile, reads go on."""
    from django.db import connections

    locker = connections.create_connection("default")
    try:
        with locker.cursor() as cursor:
            if locker.vendor == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            else:
                cursor.execute("BEGIN")
                cursor.execute(f"LOCK TABLE {Message._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
            try:
                yield
            finally:
                cursor.execute("ROLLBACK")
    finally:
        locker.close()


def test_a_locked_database_never_holds_up_the_stream(chat):
    # What arrived is saved every second by its own thread (boochat.partials), and the answer when
    # it ends: while the database is locked those saves wait, and the words still flow.
    words, delay = 225, 0.02  # 4.5 s of answer
    with FakeLlamaSwap(reply=["word "] * words, stream_delay=delay) as host:
        _, client, url = chat(host)
        with client.stream("POST", url, data={"content": "talk"}, timeout=3) as response:
            answer_pk = int(response.headers["x-boochat-message"])
            chunks = response.iter_raw()
            received, first_at = next(chunks), time.monotonic()
            while not Message.objects.get(pk=answer_pk).content and time.monotonic() < first_at + 3:
                time.sleep(0.02)
            assert Message.objects.get(pk=answer_pk).content.startswith("word ")  # a batch saved what had arrived
            with database_write_locked():  # the next batches (one a second) wait on the lock
                for chunk in chunks:  # a stream held up by the lock would time out here
                    received += chunk
                    if b"data: [DONE]" in received:
                        break
                done_at = time.monotonic()
                assert Message.objects.get(pk=answer_pk).state == MessageState.STREAMING  # not saved yet...
            received += b"".join(chunks)  # ...the response ends once the answer is saved
    assert done_at - first_at < words * delay + 1.0  # the words came on time, the lock notwithstanding
    assert b"data: [DONE]\n\n" in received and received.endswith(b"\n\n")
    answer = wait_for_state(answer_pk)
    assert answer.state == MessageState.COMPLETE and answer.content == "word " * words


def test_a_batch_of_partial_answers_is_one_statement_and_never_overwrites_a_finished_answer(django_user_model):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from boochat.autosave import PartialAnswers

    user = django_user_model.objects.create_user("batch")
    session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
    streaming = Message.objects.bulk_create(
        Message(session=session, role="assistant", state=MessageState.STREAMING) for _ in range(3))
    finished = add_message(session=session, role="assistant", state=MessageState.STREAMING)
    partials = PartialAnswers(every=None)
    for n, answer in enumerate([*streaming, finished]):
        partials.note(answer, f"partial {n}", "thinking")
    partials.note(streaming[0], "partial 0, later", "thinking more")
    finished.content, finished.state = "the whole answer", MessageState.COMPLETE  # its final save came first
    finished.save()

    with CaptureQueriesContext(connection) as queries:
        assert partials.write() == 4
    assert [q["sql"].split(" SET ")[0] for q in queries if "UPDATE" in q["sql"]] == ['UPDATE "boochat_message"']
    assert [(m.content, m.reasoning) for m in Message.objects.filter(pk__in=[m.pk for m in streaming]).order_by("pk")] == [
        ("partial 0, later", "thinking more"), ("partial 1", "thinking"), ("partial 2", "thinking")]
    finished.refresh_from_db()
    assert (finished.content, finished.state) == ("the whole answer", MessageState.COMPLETE)
    assert partials.write() == 0  # written once


def test_a_chat_deleted_while_its_answer_streams_gets_the_whole_stream_and_no_row_again(chat, caplog):
    caplog.set_level(logging.INFO, logger="boochat")
    with FakeLlamaSwap(reply=["one ", "two ", "three"], stream_delay=0.2) as host:
        session, client, url = chat(host)
        with client.stream("POST", url, data={"content": "count"}) as response:
            chunks = response.iter_raw()
            first = next(chunks)
            ChatSession.objects.filter(pk=session.pk).delete()
            body = first + b"".join(chunks)  # a response cut short raises here
    assert host_events(body).endswith(b"data: [DONE]\n\n")
    answer = int(response.headers["x-boochat-message"])
    assert not Message.objects.exists()  # not inserted again: the session it belonged to is gone
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name != "httpx"] == [
        f"Message {answer} was deleted while it streamed; its answer is not saved"]


def test_an_arena_run_deleted_while_an_answer_streams_gets_the_whole_stream(asgi_server, session_cookie, caplog):
    caplog.set_level(logging.INFO, logger="boochat")
    user, cookies = session_cookie()
    with FakeLlamaSwap(reply=["one ", "two ", "three"], stream_delay=0.2) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        run = ArenaRun.objects.create(user=user, prompt="count", analyzer_model_id="sam-desktop/qwen3-8b")
        answer = ArenaAnswer.objects.create(run=run, position=0, model_id="sam-desktop/qwen3-8b")
        with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
            token = client.get(run.get_absolute_url()).cookies.get("csrftoken") or client.cookies.get("csrftoken")
            with client.stream("POST", reverse("arena_answer_stream", args=[answer.pk]),
                               headers={**STREAM, "X-CSRFToken": token}) as response:
                chunks = response.iter_raw()
                first = next(chunks)
                run.delete()
                body = first + b"".join(chunks)
    assert response.status_code == 200 and body.endswith(b"data: [DONE]\n\n")
    assert not ArenaAnswer.objects.exists()
    assert f"ArenaAnswer {answer.pk} was deleted while it streamed; its answer is not saved" in caplog.messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
