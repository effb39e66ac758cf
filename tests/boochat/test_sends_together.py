"""A burst of streamed chat sends is admitted in batches (boochat.db_threads.Batched, boochat.handler):
a constant number of queries per batch, each send answered as if it came alone."""

import asyncio
import threading
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from boochat import db_threads
from boochat.asgi import django_application
from boochat.chat import new_turns
from boochat.models import ChatSession, Message
from providers.routing import RoutingError
from tests.boochat.test_streaming import STREAM, wait_for_state
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap

# -- the batching itself ---------------------------------------------------------------------------


def _run(make_coroutine):
    """asyncio.run() in a thread of its own (Playwright's tests leave a loop running in this one)."""
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(asyncio.run(make_coroutine())))
    thread.start()
    thread.join(10)
    return outcome[0]


def _burst(batched, items, hold_first=None):
    """Submit `items` at once, the first alone while `hold_first` (a threading.Event) is unset."""
    async def run():
        first = asyncio.ensure_future(batched.submit(items[0]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batched.submit(item)) for item in items[1:]]
        await asyncio.sleep(0.05)
        if hold_first is not None:
            hold_first.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    return _run(run)


def test_what_arrives_while_a_batch_runs_is_the_next_batch():
    calls, release = [], threading.Event()

    def work(items):
        calls.append(items)
        release.wait(5)
        return [item * 10 for item in items]

    assert _burst(db_threads.Batched(work), [1, 2, 3, 4], release) == [10, 20, 30, 40]
    assert calls == [[1], [2, 3, 4]]


def test_a_batch_is_at_most_limit_long():
    calls, release = [], threading.Event()

    def work(items):
        calls.append(items)
        release.wait(5)
        return items

    assert _burst(db_threads.Batched(work, limit=2), [1, 2, 3, 4, 5], release) == [1, 2, 3, 4, 5]
    assert calls == [[1], [2, 3], [4, 5]]


def test_a_failed_batch_fails_its_own_requests_only():
    def work(items):
        if 3 in items:
            raise RuntimeError("broken batch")
        return items

    release = threading.Event()

    def held(items):
        release.wait(5)
        return work(items)

    results = _burst(db_threads.Batched(held, limit=2), [1, 2, 3, 4, 5], release)
    assert results[0] == 1 and results[3:] == [4, 5]
    assert all(isinstance(r, RuntimeError) for r in results[1:3])  # [2, 3] failed together; [4, 5] went on


def test_the_result_of_a_request_that_went_away_is_handed_over():
    orphans, release = [], threading.Event()

    def work(items):
        release.wait(5)
        return [f"turn {item}" for item in items]

    batched = db_threads.Batched(work, orphaned=orphans.extend)

    async def run():
        waiting = asyncio.ensure_future(batched.submit(1))
        kept = asyncio.ensure_future(batched.submit(2))
        await asyncio.sleep(0.05)
        waiting.cancel()
        release.set()
        result = await kept
        for _ in range(100):  # handed over after the others have their results
            if orphans:
                break
            await asyncio.sleep(0.01)
        return result

    assert _run(run) == "turn 2"
    assert orphans == ["turn 1"]


def test_a_failed_clean_up_fails_no_other_request(caplog):
    release = threading.Event()

    def work(items):
        release.wait(5)
        return items

    def broken(orphans):
        raise RuntimeError("the database went away")

    batched = db_threads.Batched(work, orphaned=broken)

    async def run():
        leaving = asyncio.ensure_future(batched.submit(1))
        await asyncio.sleep(0.05)
        staying = asyncio.ensure_future(batched.submit(2))  # waits for the batch after the clean-up
        await asyncio.sleep(0.05)
        leaving.cancel()
        release.set()
        return await asyncio.wait_for(staying, 5)

    assert _run(run) == 2
    assert "Could not clean up after 1 abandoned requests" in caplog.text


# -- new turns, many at once -------------------------------------------------------------------------


@pytest.fixture
def host():
    with FakeLlamaSwap() as fake:
        make_provider(slug="sam-desktop", base_url=fake.url, is_default=True)
        yield fake


@pytest.mark.django_db
def test_turns_asked_together_are_saved_as_if_asked_one_by_one(host, django_user_model):
    user = django_user_model.objects.create_user("alice")
    first, second = (ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b") for _ in range(2))
    nowhere = ChatSession.objects.create(user=user, model_id="gone/qwen3-8b")
    Message.objects.create(session=first, role="user", content="earlier")

    turns = new_turns([(first, "one"), (second, "two"), (nowhere, "lost"), (first, "three")])

    one, two, lost, three = turns
    assert [m["content"] for m in one.messages] == ["earlier", "one"]
    assert [m["content"] for m in two.messages] == ["two"]
    assert isinstance(lost, RoutingError)
    # The session's second question is asked after its first is saved (its answer still streams).
    assert [m["content"] for m in three.messages] == ["earlier", "one", "three"]
    assert list(first.messages.values_list("role", "content", "state")) == [
        ("user", "earlier", "complete"), ("user", "one", "complete"), ("assistant", "", "streaming"),
        ("user", "three", "complete"), ("assistant", "", "streaming")]
    assert list(nowhere.messages.values_list("role", "state")) == [("user", "complete"), ("assistant", "failed")]


@pytest.mark.django_db
def test_turns_asked_together_look_up_each_model_once(host, django_user_model, monkeypatch):
    from boochat import chat

    user = django_user_model.objects.create_user("alice")
    sessions = [ChatSession.objects.create(user=user, model_id=model_id)
                for model_id in ("sam-desktop/qwen3-8b", "sam-desktop/qwen3-8b", "sam-desktop/gemma-3-4b", "qwen3-8b")]
    looked_up = []
    for name in ("resolve", "context_size_for"):
        original = getattr(chat, name)
        monkeypatch.setattr(chat, name, lambda model_id, name=name, original=original: (
            looked_up.append((name, model_id)), original(model_id))[1])

    turns = new_turns([(session, "hi") for session in sessions])

    assert [turn.route.wire_model for turn in turns] == ["qwen3-8b", "qwen3-8b", "gemma-3-4b", "qwen3-8b"]
    assert sorted(looked_up) == sorted((name, model_id) for name in ("resolve", "context_size_for")
                                       for model_id in ("sam-desktop/qwen3-8b", "sam-desktop/gemma-3-4b", "qwen3-8b"))


@pytest.mark.django_db(transaction=True)
def test_a_turn_that_cannot_be_saved_fails_alone(host, django_user_model):
    user = django_user_model.objects.create_user("alice")
    kept, deleted = (ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b") for _ in range(2))
    ChatSession.objects.filter(pk=deleted.pk).delete()  # deleted after it was read: its rows cannot be saved

    saved, failed = new_turns([(kept, "hello"), (deleted, "hello")])

    assert saved.answer.pk is not None and isinstance(failed, Exception)
    assert list(kept.messages.values_list("role", flat=True)) == ["user", "assistant"]
    assert Message.objects.count() == 2


# -- through the server ------------------------------------------------------------------------------


@pytest.fixture
def held_batches(monkeypatch):
    """Holds the first batch until `release` is set; records each batch's size and query count.
    `arrived(n)` waits until n sends have reached the batching."""
    release, batches, submitted = threading.Event(), [], []
    work, submit = django_application.sends.work, django_application.sends.submit

    def spy(sends):
        if not batches:
            release.wait(10)
        with CaptureQueriesContext(connection) as queries:
            begun = work(sends)
        statements = [q["sql"].split('"')[:2] for q in queries.captured_queries if q["sql"].startswith(("SELECT", "INSERT"))]
        batches.append((len(sends), [f"{verb.split()[0]} {table}" for verb, table in statements]))
        return begun

    async def counted(item):
        submitted.append(item)
        return await submit(item)

    def arrived(count):
        deadline = time.monotonic() + 10
        while len(submitted) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    monkeypatch.setattr(django_application.sends, "work", spy)
    monkeypatch.setattr(django_application.sends, "submit", counted)
    return release, batches, arrived


def _client(asgi_server, cookies):
    client = httpx.Client(base_url=asgi_server.url, timeout=15)
    client.get(reverse("login"))  # for the CSRF cookie; before the session's, which it must not touch
    client.cookies.update(cookies)
    client.headers.update({**STREAM, "X-CSRFToken": client.cookies["csrftoken"]})
    return client


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_sends_is_admitted_together_and_each_answered_as_alone(
        host, asgi_server, session_cookie, held_batches, django_user_model):
    release, batches, arrived = held_batches
    alice, alice_cookies = session_cookie("alice")
    bob, bob_cookies = session_cookie("bob")
    carol, carol_cookies = session_cookie("carol")
    carol.set_password("changed elsewhere")  # her session no longer logs her in: Django's check says so
    carol.save()
    chats = {name: ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b")
             for name, user in (("alice", alice), ("alice 2", alice), ("bob", bob), ("carol", carol))}
    clients = {"alice": _client(asgi_server, alice_cookies), "bob": _client(asgi_server, bob_cookies),
               "carol": _client(asgi_server, carol_cookies)}
    sends = [("alice", "alice"), ("alice", "alice 2"), ("bob", "bob"), ("carol", "carol"),
             ("bob", "alice"), ("alice", "alice"), ("alice", "alice 2")]
    responses = [None] * len(sends)

    def send(i):
        who, chat = sends[i]
        content = "" if i == 6 else f"question {i}"
        responses[i] = clients[who].post(reverse("chat_send", args=[chats[chat].pk]), data={"content": content})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sends))]
    threads[0].start()
    arrived(1)
    for thread in threads[1:]:
        thread.start()
    arrived(len(sends))
    release.set()
    for thread in threads:
        thread.join(15)
    for client in clients.values():
        client.close()

    # One send alone (which also read the providers), then six together: one read each of sessions
    # (from Redis with REDIS_URL, Django's cached_db engine), users, chat sessions and histories,
    # and one insert. Between them, Django's logout of carol's stale login finds her session to
    # delete it.
    assert [size for size, _ in batches] == [1, 6]
    sessions_read = ["SELECT django_session"] if settings.SESSION_ENGINE == "boochat.sessions" else []
    assert batches[1][1] == [*sessions_read, "SELECT auth_user", "SELECT django_session", "SELECT boochat_chatsession",
                             "SELECT boochat_message", "INSERT boochat_message"]
    status = [r.status_code for r in responses]
    assert status == [200, 200, 200, 302, 404, 200, 400]
    assert responses[3].headers["location"].startswith(reverse("login"))  # carol: logged out, as Django would
    assert responses[6].json() == {"error": "The message is empty."}
    for i in (0, 1, 2, 5):
        assert wait_for_state(int(responses[i].headers["x-boochat-message"])).state == "complete"
    # Alice's two questions to one chat, in the order they were admitted, each with its answer.
    assert [(m.role, m.content if m.role == "user" else m.state) for m in chats["alice"].messages.all()] == [
        ("user", "question 0"), ("assistant", "complete"), ("user", "question 5"), ("assistant", "complete")]
    assert not chats["carol"].messages.exists() and not chats["bob"].messages.filter(content="").exists()


@pytest.mark.django_db(transaction=True)
def test_a_send_whose_browser_left_while_it_waited_is_marked_interrupted(
        host, asgi_server, session_cookie, held_batches):
    release, batches, arrived = held_batches
    user, cookies = session_cookie()
    session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b")
    client = _client(asgi_server, cookies)
    url = reverse("chat_send", args=[session.pk])
    first = threading.Thread(target=lambda: client.post(url, data={"content": "first"}))
    first.start()
    arrived(1)
    with httpx.Client(base_url=asgi_server.url, cookies=client.cookies, headers=client.headers, timeout=0.5) as leaving:
        with pytest.raises(httpx.ReadTimeout):
            leaving.post(url, data={"content": "second"})  # gives up, and closes its connection
    release.set()
    first.join(15)
    client.close()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not session.messages.filter(state="interrupted").exists():
        time.sleep(0.05)
    assert list(session.messages.values_list("role", "state")) == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "interrupted")]
    assert session.messages.last().error == "The browser left before the answer started."
    assert [r.json()["messages"][-1]["content"] for r in host.requests_to("/v1/chat/completions")] == ["first"]


# -- logins read together ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_logins_read_together_are_djangos_logins(django_user_model):
    from datetime import timedelta

    from django.contrib import auth
    from django.test import RequestFactory

    from boochat.sessions import SessionStore, read_together

    def logged_in(user, **session):
        store = SessionStore()
        store.update({auth.SESSION_KEY: str(user.pk), auth.BACKEND_SESSION_KEY: "boochat.sessions.ModelBackend",
                      auth.HASH_SESSION_KEY: user.get_session_auth_hash(), **session})
        store.create()
        return store.session_key

    alice = django_user_model.objects.create_user("alice")
    inactive = django_user_model.objects.create_user("bob", is_active=False)
    keys = [logged_in(alice), logged_in(alice), logged_in(inactive), "no-such-session-key", logged_in(alice)]
    expired = SessionStore(keys[-1])
    expired.set_expiry(timedelta(seconds=-60))
    expired.save()

    def requests():
        made = [RequestFactory().get("/") for _ in keys]
        for request, key in zip(made, keys, strict=True):
            request.session = SessionStore(key)
        return made

    alone = [auth.get_user(r) for r in requests()]
    together = requests()
    with CaptureQueriesContext(connection) as reads, read_together(r.session for r in together):
        with CaptureQueriesContext(connection) as checks:
            users = [auth.get_user(r) for r in together]

    assert [u.pk for u in users] == [u.pk for u in alone] == [alice.pk, alice.pk, None, None, None]
    assert users[0] is not users[1]  # each request its own user object
    assert len(reads) == 2 and len(checks) == 0


@pytest.mark.django_db
def test_sessions_logged_in_through_djangos_backend_stay_logged_in(django_user_model):
    from importlib import import_module

    from django.apps import apps
    from django.contrib import auth
    from django.contrib.sessions.models import Session
    from django.test import Client

    migration = import_module("boochat.migrations.0002_sessions_login_backend")
    user = django_user_model.objects.create_user("alice")
    client = Client()
    client.force_login(user)
    session = Session.objects.get(session_key=client.cookies["sessionid"].value)
    store = import_module(settings.SESSION_ENGINE).SessionStore(session.session_key)
    store[auth.BACKEND_SESSION_KEY] = migration.DJANGOS  # as a login before this version recorded it
    store.save()  # and with REDIS_URL, in its cached copy too
    assert client.get(reverse("chat_index")).status_code == 302  # not a configured backend: logged out

    assert migration.move_sessions(apps, migration.DJANGOS, migration.OURS) == 1  # what the migration runs
    assert client.get(reverse("chat_index")).status_code == 200
