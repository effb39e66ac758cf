"""Answers behind nginx, as production runs them: two instances of two uvicorn workers each
(gunicorn, `make serve`) on one PostgreSQL database and one Redis, and one nginx in front of both
with docs/deploy/nginx.conf (round robin, no sticky sessions). Readers land on either instance and
resume where they left, Stop reaches the host whichever instance gets it, and a reader whose
instance is killed reconnects and sees the answer's end."""

import json
import re
import time
from contextlib import ExitStack, closing
from types import SimpleNamespace

import httpx
import pytest
from django.conf import settings

from boochat.models import ChatSession, Message, MessageState
from providers.models import Provider
from tests.conftest import start_app_process, stop_app_process, wait_for_app_process
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap
from tests.production.test_answers_across_instances import EVENT, text_and_ids
from tests.production.test_behind_nginx import start_nginx, stop_nginx
from tests.production.test_gunicorn_stack import logged_in, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL or "postgresql" not in settings.DATABASES["default"]["ENGINE"],
                       reason="instances share answers through PostgreSQL and Redis: set DATABASE_URL=postgres://... "
                              "and REDIS_URL"),
]
WORDS = [f"w{i} " for i in range(300)]
END = re.compile(rb'event: end\ndata: (\{.*\})\n\n$')
# Each worker sweeps the answers of dead processes every BOOCHAT_STALE_STREAM_GRACE seconds (at most
# a minute): a second here, so that a killed instance's answer is marked within the test's patience.
INSTANCE_ENV = {"BOOCHAT_STALE_STREAM_GRACE": "1"}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, collected_static, tmp_path_factory):
    """The fake host, the two instances and nginx, started once for the module."""
    directory = tmp_path_factory.mktemp("behind-nginx")
    instances, proxy = [], None

    def start():
        return start_app_process(directory, collected_static, workers=2, wait=False, **INSTANCE_ENV)

    with FakeLlamaSwap(reply=WORDS, stream_delay=0.01) as host:
        with django_db_blocker.unblock():  # known before the instances read the providers
            make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        try:
            instances += [start(), start()]
            for instance in instances:  # started side by side
                wait_for_app_process(instance)
            proxy = start_nginx(directory, *(instance.url for instance in instances))
            yield SimpleNamespace(host=host, instances=instances, url=proxy.url)
        finally:
            if proxy is not None:
                stop_nginx(proxy)
            for instance in instances:
                stop_app_process(instance)


@pytest.fixture
def host(stack):
    """The stack's host, a provider again (each test's rows go at its end), with nothing recorded."""
    if not Provider.objects.filter(slug="sam-desktop").exists():
        make_provider(slug="sam-desktop", base_url=stack.host.url, is_default=True)
    stack.host.reply, stack.host.stream_delay, stack.host.hold_after = WORDS, 0.01, None
    stack.host.released.clear()
    stack.host.requests.clear()
    stack.host.disconnects.clear()
    return stack.host


@pytest.fixture
def chat(stack, host, django_user_model):
    """A browser logged in through nginx, and its chats."""
    user = django_user_model.objects.create_user("alice")
    with closing(logged_in(stack.url, user)) as browser:
        yield SimpleNamespace(browser=browser, new=lambda: ChatSession.objects.create(
            user=user, model_id="sam-desktop/qwen3-8b", title="t"))


def served(instance, request_line):
    """How many times the instance's access log shows the request (method and path)."""
    return instance.log_path.read_text().count(f'"{request_line} HTTP/1.1"')


class Reader:
    """A reader's SSE read as far as asked; `events`: the complete events read so far."""

    def __init__(self, response):
        self.chunks, self.body = response.iter_raw(), b""

    @property
    def events(self):
        return self.body[:self.body.rfind(b"\n\n") + 2]

    def last_id(self):
        found = EVENT.findall(self.events[-4096:])  # the last event is short
        return int(found[-1][0]) if found else 0

    def read(self, upto=None):
        """Read on until the event numbered `upto` arrived (None: to the end); the reader. A stream
        that only keeps itself alive for half a minute fails the test instead of hanging it."""
        deadline = time.monotonic() + 30
        for chunk in self.chunks:
            self.body += chunk
            if upto is not None and self.last_id() >= upto:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the stream did not end within 30 s (its last event: {self.last_id() or 'none'})")
        return self


def saved(answer):
    """The answer's row once its job has saved it."""
    wait_until(lambda: answer.refresh_from_db() or answer.state != MessageState.STREAMING, what="the answer's save")
    return answer


def assembled(*bodies):
    """The text and event ids read by a reader that resumed after each body with its last id."""
    text, ids = "", []
    for body in bodies:
        more_text, more_ids = text_and_ids(body)
        text, ids = text + more_text, ids + more_ids
    return text, ids


def test_readers_on_either_instance_resume_the_answer_with_nothing_lost_or_repeated(stack, host, chat):
    host.hold_after = 20  # the host's first 20 events; the rest once readers on both instances have them
    session = chat.new()
    with chat.browser.stream("POST", f"/chat/{session.pk}/send", data={"content": "count"},
                             headers={"X-BooChat-Stream": "1"}) as response:
        follow_url = response.headers["x-boochat-follow"]
        sent = Reader(response).read(20).events  # all the host wrote before it holds: nothing waits in nginx
    # Two readers, one after the other: round robin gives them one instance each.
    with chat.browser.stream("GET", follow_url, headers={"Last-Event-ID": "7"}) as one, \
            chat.browser.stream("GET", follow_url, headers={"Last-Event-ID": "13"}) as other:
        assert all(served(instance, f"GET {follow_url}") == 1 for instance in stack.instances)
        first, second = Reader(one).read(20), Reader(other).read(20)  # while the host still holds
        assert text_and_ids(first.events)[1] == list(range(8, 21))  # Last-Event-ID came through nginx
        assert text_and_ids(second.events)[1] == list(range(14, 21))
        host.released.set()
        first.read()  # to the end
        second_reads = [second.read(60).events]  # then its network drops
    while not END.search(second_reads[-1]):  # it reconnects through nginx each time, from its last event
        last = text_and_ids(second_reads[-1])[1][-1]
        with chat.browser.stream("GET", follow_url, headers={"Last-Event-ID": str(last)}) as again:
            second_reads.append(Reader(again).read(last + 60).events)

    answer = Message.objects.get(session=session, role="assistant")
    assert answer.state == MessageState.COMPLETE and answer.content == "".join(WORDS)
    total = first.last_id()
    for reader in ([sent[:sent.index(b"\nid: 8\n") + 1], first.events],
                   [sent[:sent.index(b"\nid: 14\n") + 1], *second_reads]):
        text, ids = assembled(*reader)
        assert ids == list(range(1, total + 1)) and text == answer.content
        assert END.search(reader[-1]).group(1) == b'{"state":"complete","error":""}'
    assert len(second_reads) >= 3  # several reconnects, taking turns at the instances
    assert sum(served(instance, f"GET {follow_url}") for instance in stack.instances) == len(second_reads) + 1
    assert len(host.requests_to("/v1/chat/completions")) == 1  # one generation, whatever the readers


def test_stop_through_nginx_stops_the_host_whichever_instance_gets_it(stack, host, chat):
    host.reply = WORDS * 20
    stops = {}  # whether the Stop reached the instance writing the answer -> that answer
    for reader_first in (False, True, False, True):  # a reader's request makes round robin send the Stop elsewhere
        if len(stops) == 2:
            break
        session = chat.new()
        with ExitStack() as streams:
            response = streams.enter_context(chat.browser.stream(
                "POST", f"/chat/{session.pk}/send", data={"content": "talk"}, headers={"X-BooChat-Stream": "1"}))
            readers = [Reader(response).read(10)]
            if reader_first:
                follow = chat.browser.stream("GET", response.headers["x-boochat-follow"])
                readers.append(Reader(streams.enter_context(follow)))
            stop = chat.browser.post(f"/chat/{session.pk}/stop", headers={"X-BooChat-Stream": "1"})
            assert stop.status_code == 204
            assert host.wait_for_disconnect(5.0), "Stop through nginx did not stop the host"
            for reader in readers:
                assert json.loads(END.search(reader.read().events).group(1))["state"] == MessageState.INTERRUPTED
        writer, = [i for i in stack.instances if served(i, f"POST /chat/{session.pk}/send")]
        stopper, = [i for i in stack.instances if served(i, f"POST /chat/{session.pk}/stop")]
        stops[stopper is writer] = answer = saved(Message.objects.get(session=session, role="assistant"))
        assert answer.state == MessageState.INTERRUPTED and 0 < len(answer.content) < len("".join(host.reply))
        host.disconnects.clear()
    assert set(stops) == {True, False}  # from the writing instance, and from the other


def test_a_reader_reconnects_through_nginx_when_the_answers_instance_is_killed(stack, host, chat):
    """Last in the module: the stack keeps one instance down after it."""
    host.reply = ["word "] * 2000
    session = chat.new()
    with chat.browser.stream("POST", f"/chat/{session.pk}/send", data={"content": "talk"},
                             headers={"X-BooChat-Stream": "1"}) as response:
        follow_url = response.headers["x-boochat-follow"]
        sender = Reader(response).read(50)
        answer = Message.objects.get(session=session, role="assistant")
        wait_until(lambda: answer.refresh_from_db() or answer.content, what="the autosave")  # what a kill leaves
        writer, = [i for i in stack.instances if served(i, f"POST /chat/{session.pk}/send")]
        stop_app_process(writer)  # SIGKILL to its master and workers: nothing of it can save
        with pytest.raises(httpx.RemoteProtocolError):  # nginx cuts the stream short
            sender.read()
    last = sender.last_id()
    with chat.browser.stream("GET", follow_url, headers={"Last-Event-ID": str(last)}) as again:
        rest = Reader(again).read().events  # from the instance left, nginx passing the dead one by

    survivor, = [i for i in stack.instances if i is not writer]
    assert served(survivor, f"GET {follow_url}") == 1
    end = json.loads(END.search(rest).group(1))
    assert end["state"] == MessageState.INTERRUPTED and "stopped while this answer was streaming" in end["error"]
    text, ids = assembled(sender.events, rest)
    assert ids == list(range(1, len(ids) + 1)) and "".join(host.reply).startswith(text)  # no gap, no repeat
    answer.refresh_from_db()
    assert answer.state == MessageState.INTERRUPTED and answer.content.startswith("word word")
