"""The streamed chat send's short path through Django (boochat.handler), behind a real ASGI server:
it must answer exactly as Django's full chain does, and hand every refusal to that chain."""

import logging

import httpx
import pytest
from django.urls import reverse

from boochat import chat_views
from boochat.asgi import django_application
from boochat.handler import ShortPath
from boochat.models import ChatSession, Message
from tests.boochat.test_streaming import STREAM, wait_for_state
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def host():
    with FakeLlamaSwap() as fake:
        make_provider(slug="sam-desktop", base_url=fake.url, is_default=True)
        yield fake


@pytest.fixture
def admitted(monkeypatch):
    """What the short path decided, request by request: the session it admitted, or None."""
    seen = []
    begin = django_application.sends.work

    def spy(sends):
        begun = begin(sends)
        seen.extend(b[0] if b is not None else None for b in begun)
        return begun

    monkeypatch.setattr(django_application.sends, "work", spy)
    return seen


@pytest.fixture
def alice(asgi_server, session_cookie):
    """A logged-in client with the CSRF token the page gives, and one chat session of hers."""
    user, cookies = session_cookie()
    session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
    with httpx.Client(base_url=asgi_server.url, cookies=cookies, timeout=10) as client:
        client.get(session.get_absolute_url())
        client.headers.update({**STREAM, "X-CSRFToken": client.cookies["csrftoken"]})
        yield client, session, reverse("chat_send", args=[session.pk])


def _send(client, url, **kwargs):
    with client.stream("POST", url, data={"content": "Hello"}, **kwargs) as response:
        response.read()
    return response


_VARYING = {"date", "x-boochat-message"}


def test_a_streamed_send_answers_as_djangos_full_chain_does(alice, host, admitted, monkeypatch):
    client, session, url = alice
    short = _send(client, url)
    monkeypatch.setattr(django_application, "short_path", None)
    full = _send(client, url)

    assert [type(s) for s in admitted] == [ChatSession]  # the first took the short path, the second did not
    assert short.status_code == full.status_code == 200
    assert short.content == full.content
    assert {k: v for k, v in short.headers.items() if k not in _VARYING} == \
           {k: v for k, v in full.headers.items() if k not in _VARYING}
    assert short.headers["x-frame-options"] == "DENY" and short.headers["vary"] == "Cookie"
    first, second = (wait_for_state(int(r.headers["x-boochat-message"])) for r in (short, full))
    assert first.state == second.state == "complete" and first.content == second.content
    assert [m.role for m in session.messages.all()] == ["user", "assistant"] * 2


def test_refusals_are_djangos_and_write_nothing(alice, host, admitted, asgi_server, session_cookie):
    client, session, url = alice
    _, bob_cookies = session_cookie("bob")

    with httpx.Client(base_url=asgi_server.url) as stranger:
        stranger.get(reverse("login"))
        anonymous = stranger.post(url, data={"content": "hi"}, headers={**STREAM, "X-CSRFToken": stranger.cookies["csrftoken"]})
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith(reverse("login"))
    no_token = client.post(url, data={"content": "hi"}, headers={"X-CSRFToken": ""})
    assert no_token.status_code == 403
    with httpx.Client(base_url=asgi_server.url, cookies=bob_cookies) as bob:
        bob.get(reverse("chat_index"))
        not_hers = bob.post(url, data={"content": "hi"}, headers={**STREAM, "X-CSRFToken": bob.cookies["csrftoken"]})
    assert not_hers.status_code == 404
    bad_host = client.post(url, data={"content": "hi"}, headers={"Host": "evil.example"})
    assert bad_host.status_code == 400

    assert admitted == [None, None, None, None]
    assert Message.objects.count() == 0
    assert host.requests_to("/v1/chat/completions") == []


def test_a_refusal_is_logged_once_as_django_logs_it(alice, host, admitted, caplog):
    client, _, url = alice
    with caplog.at_level(logging.WARNING):
        assert client.post(url, data={"content": "hi"}, headers={"X-CSRFToken": "wrong"}).status_code == 403
    assert admitted == [None]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("django.")] == [
        f"Forbidden (CSRF token from the 'X-Csrftoken' HTTP header has incorrect length.): {url}"]


def test_bad_input_after_admission_is_the_views_own_answer(alice, host, admitted):
    client, _, url = alice
    response = client.post(url, data={"content": "   "})
    assert response.status_code == 400 and response.json() == {"error": "The message is empty."}
    assert response.headers["x-frame-options"] == "DENY"
    assert len(admitted) == 1 and admitted[0] is not None
    assert Message.objects.count() == 0


def test_a_failure_after_admission_is_djangos_500_and_logged(alice, host, monkeypatch, caplog):
    client, _, url = alice

    def broken(sends):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(chat_views, "begin_sends", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.post(url, data={"content": "hi"})
    assert response.status_code == 500
    assert any("Internal Server Error: " + url in r.getMessage() for r in caplog.records)


def test_a_middleware_it_cannot_run_turns_it_off(settings, caplog):
    assert ShortPath.for_settings() is not None
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.boochat.test_short_path.PlainMiddleware"]
    with caplog.at_level(logging.WARNING, logger="boochat.handler"):
        assert ShortPath.for_settings() is None
    assert "PlainMiddleware is not a MiddlewareMixin" in caplog.text


class PlainMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


def test_a_session_cycled_on_the_way_is_saved_and_sent(alice, host, admitted, settings):
    # After a SECRET_KEY rotation Django's login check cycles the session key: the response must
    # carry the new cookie, and the new session must be saved (the one hook that writes).
    client, _, url = alice
    old_cookie = client.cookies["sessionid"]
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-for-this-test-only-0123456789"
    response = _send(client, url)
    assert response.status_code == 200 and admitted[-1] is not None
    new_cookie = response.cookies["sessionid"]
    assert new_cookie != old_cookie
    from django.contrib.sessions.models import Session

    assert Session.objects.filter(session_key=new_cookie).exists()
    assert not Session.objects.filter(session_key=old_cookie).exists()


def test_a_long_session_is_compacted_on_the_short_path_too(alice, host, admitted):
    from boochat.models import Compaction
    from providers.models import ModelOverride, Provider

    client, session, url = alice
    ModelOverride.objects.create(provider=Provider.objects.get(slug="sam-desktop"), model="qwen3-8b", context_size=1024)
    for i in range(6):
        Message.objects.create(session=session, role="user", content=f"question {i} " + "words " * 80)
        Message.objects.create(session=session, role="assistant", content=f"answer {i} " + "text " * 80)
    response = _send(client, url)

    assert response.status_code == 200 and admitted[-1] is not None
    answer = wait_for_state(int(response.headers["x-boochat-message"]))
    assert answer.state == "complete"
    compaction = Compaction.objects.get(session=session)
    streamed = [r.json() for r in host.requests_to("/v1/chat/completions") if r.json()["stream"]]
    assert streamed[-1]["messages"][0]["content"] == f"Summary of the earlier conversation:\n{compaction.summary}"
    assert streamed[-1]["messages"][-1] == {"role": "user", "content": "Hello"}


def test_sends_share_one_thread_for_djangos_thread_sensitive_work(alice, host, admitted):
    # Django runs each request's signals in a thread it starts for that request (and joins from yet
    # another new thread when the request ends); streamed sends use one long-lived thread instead.
    import threading
    import time

    from django.core.signals import request_finished, request_started

    client, session, url = alice
    signal_threads = []

    def note(sender, **kwargs):
        signal_threads.append(threading.current_thread())

    def noted(count):  # request_finished comes after the response's last byte
        deadline = time.monotonic() + 5
        while len(signal_threads) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    request_started.connect(note)
    request_finished.connect(note)
    try:
        assert _send(client, url).status_code == 200
        assert _send(client, url).status_code == 200
        noted(4)
        sends = signal_threads[:]
        assert client.get(session.get_absolute_url()).status_code == 200  # any other request: Django's way
        noted(6)
        other = signal_threads[len(sends):]
    finally:
        request_started.disconnect(note)
        request_finished.disconnect(note)

    assert [type(s) for s in admitted] == [ChatSession, ChatSession]
    assert len(sends) == 4 and len(set(sends)) == 1 and sends[0].name.startswith("chat-send")
    assert len(other) == 2 and not any(t.name.startswith("chat-send") for t in other)


def test_request_signals_are_sent_once_for_each_send_taken_or_refused(alice, host, admitted):
    import threading

    from django.core.signals import request_finished, request_started

    client, _, url = alice
    sent, finished = [], threading.Event()

    def started(sender, scope, **kwargs):
        sent.append(("started", scope["path"]))

    def ended(sender, **kwargs):
        sent.append(("finished", None))
        if len(sent) == 4:
            finished.set()

    request_started.connect(started)
    request_finished.connect(ended)
    try:
        assert _send(client, url).status_code == 200
        assert client.post(url, data={"content": "hi"}, headers={"X-CSRFToken": "wrong"}).status_code == 403
        assert finished.wait(5)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(ended)
    assert [type(s) if s else s for s in admitted] == [ChatSession, None]  # the second was refused
    assert sent == [("started", url), ("finished", None)] * 2


def test_a_request_started_receiver_that_raises_fails_its_own_request_only(alice, host):
    from django.core.signals import request_started

    from boochat.handler import _request_started

    client, session, url = alice

    def fails_for_this_send(sender, scope, **kwargs):
        if scope["path"] == url:
            raise RuntimeError("a receiver failed")

    request_started.connect(fails_for_this_send)
    try:
        other = {"type": "http", "path": "/chat/"}
        outcome = _request_started([{"type": "http", "path": url}, other])
        assert [type(o) for o in outcome] == [RuntimeError, type(None)]
        response = client.post(url, data={"content": "hi"})
    finally:
        request_started.disconnect(fails_for_this_send)
    assert response.status_code == 500  # as Django's handler: the server answers it
    assert not Message.objects.exists() and host.requests_to("/v1/chat/completions") == []
    assert _send(client, url).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_too_large_for_django_gets_djangos_answer(alice, host, admitted, settings, chunked):
    client, _, url = alice
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b"content=" + b"x" * 2000
    content = (body[i:i + 300] for i in range(0, len(body), 300)) if chunked else body
    response = client.post(url, content=content, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413  # boochat.views.bad_request
    assert admitted == [] and not Message.objects.exists()
