"""An answer written by one instance (gunicorn + uvicorn, as production runs) is followed and stopped
from another: through Redis Streams with REDIS_URL, through the saved text without it."""

import json
import os
import re
import signal
import time
from contextlib import closing, contextmanager

import pytest
from django.conf import settings

from boochat.models import ChatSession, Message, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap
from tests.production.test_gunicorn_stack import logged_in, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
WORDS = [f"w{i} " for i in range(300)]
EVENT = re.compile(rb"(?:^|\n\n)id: (\d+)\ndata: ([^\n]*)")


def sent_past_the_autosave(writer, session):
    """Send a question to `writer`'s instance and read its answer until the autosave holds some of it:
    the address to follow it."""
    with writer.stream("POST", f"/chat/{session.pk}/send", data={"content": "talk"},
                       headers={"X-BooChat-Stream": "1"}) as response:
        body = b""
        for chunk in response.iter_raw():
            body += chunk
            if body.count(b"word") >= 150:  # past the autosave's first seconds
                break
        return response.headers["x-boochat-follow"]


@contextmanager
def following(reader, url):
    """The answer followed from `reader`'s instance once it shows words (without Redis: once the
    autosave has some): the rest of its bytes."""
    with reader.stream("GET", url) as watching:
        seen = watching.iter_raw()
        first_words = next(seen)
        while b"word" not in first_words:
            first_words += next(seen)
        yield seen


def assert_interrupted_by_the_death(rest):
    """The reader's end, and the saved answer, say the writing instance died mid-answer."""
    end = json.loads(re.search(rb"event: end\ndata: (.*)\n\n$", rest).group(1))
    assert end["state"] == MessageState.INTERRUPTED and "stopped while this answer was streaming" in end["error"]
    answer = Message.objects.get(role="assistant")
    assert answer.state == MessageState.INTERRUPTED and answer.content.startswith("word word")


def text_and_ids(body):
    ids, text = [], []
    for n, data in EVENT.findall(body):
        ids.append(int(n))
        if data.startswith(b"{"):
            text += [c.get("delta", {}).get("content") or "" for c in json.loads(data).get("choices", [])]
    return "".join(text), ids


def test_a_reader_on_another_instance_resumes_the_answer_and_its_stop_stops_the_host(app_process, django_user_model):
    with FakeLlamaSwap(reply=WORDS, stream_delay=0.01) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        first, second = app_process()[0], app_process()[0]
        user = django_user_model.objects.create_user("alice")
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        writer, reader = logged_in(first, user), logged_in(second, user)
        with closing(writer), closing(reader):
            with writer.stream("POST", f"/chat/{session.pk}/send", data={"content": "count"},
                               headers={"X-BooChat-Stream": "1"}) as response:
                follow_url = response.headers["x-boochat-follow"]
                body = b""
                for chunk in response.iter_raw():
                    body += chunk
                    if len(EVENT.findall(body)) >= 20:
                        break
            body = body[:body.rindex(b"\n\n") + 2]
            text, ids = text_and_ids(body)
            rest = reader.get(follow_url, headers={"Last-Event-ID": str(ids[-1])}).content
            assert rest.endswith(b'event: end\ndata: {"state":"complete","error":""}\n\n')
            answer = Message.objects.get(role="assistant")
            assert answer.content == "".join(WORDS)
            if settings.REDIS_URL:  # the events themselves, from Redis: nothing lost, nothing repeated
                more, more_ids = text_and_ids(rest)
                assert ids + more_ids == list(range(1, more_ids[-1] + 1)) and text + more == answer.content
            else:  # the saved text, whole
                snapshots = re.findall(rb"event: snapshot\ndata: (.*)\n", rest)
                assert json.loads(snapshots[-1])["content"] == answer.content

            # A long answer written by the first instance, stopped from the second.
            host.reply = WORDS * 20
            with writer.stream("POST", f"/chat/{session.pk}/send", data={"content": "more"},
                               headers={"X-BooChat-Stream": "1"}) as response:
                chunks = response.iter_raw()
                body = next(chunks)
                while len(EVENT.findall(body)) < 20:
                    body += next(chunks)
                assert reader.post(f"/chat/{session.pk}/stop", headers={"X-BooChat-Stream": "1"}).status_code == 204
                assert host.wait_for_disconnect(5.0), "Stop from the other instance did not stop the host"
                body += b"".join(chunks)
            assert b'event: end\ndata: {"state":"interrupted"' in body
    stopped = Message.objects.filter(role="assistant").order_by("pk").last()
    wait_until(lambda: stopped.refresh_from_db() or stopped.state != MessageState.STREAMING, what="the stop's save")
    assert stopped.state == MessageState.INTERRUPTED and 0 < len(stopped.content) < len(WORDS * 20)


def test_readers_elsewhere_see_the_end_and_why_when_the_writing_instance_is_killed(app_process, django_user_model):
    with FakeLlamaSwap(reply=["word "] * 2000, stream_delay=0.02) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        (first, killed), (second, _) = app_process(), app_process()
        user = django_user_model.objects.create_user("alice")
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        writer, reader = logged_in(first, user), logged_in(second, user)
        with closing(writer), closing(reader):
            with following(reader, sent_past_the_autosave(writer, session)) as seen:
                os.killpg(killed.pid, signal.SIGKILL)  # nothing of it can save
                app_process()  # the next start marks what the killed instance was writing
                rest = b"".join(seen)
    assert_interrupted_by_the_death(rest)


@pytest.mark.skipif(not settings.REDIS_URL, reason="the answer's heartbeat lives in Redis: set REDIS_URL")
def test_a_reader_on_another_machine_sees_the_end_soon_when_the_writing_instance_is_killed(
        app_process, django_user_model, tmp_path):
    with FakeLlamaSwap(reply=["word "] * 2000, stream_delay=0.02) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        # Data folders of their own, as on two machines: neither sees the other's list of answers.
        first, killed = app_process(BOOCHAT_DATA_DIR=str(tmp_path / "machine-a"))
        second, _ = app_process(BOOCHAT_DATA_DIR=str(tmp_path / "machine-b"))
        user = django_user_model.objects.create_user("alice")
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="t")
        writer, reader = logged_in(first, user), logged_in(second, user)
        with closing(writer), closing(reader):
            with following(reader, sent_past_the_autosave(writer, session)) as seen:
                os.killpg(killed.pid, signal.SIGKILL)  # nothing of it can save or say it died
                rest, given_up = b"", time.monotonic() + 30  # without a heartbeat: the host's read timeout, minutes
                for chunk in seen:
                    rest += chunk
                    if time.monotonic() > given_up:
                        pytest.fail("the reader was not told the answer ended within 30 s of its instance's death")
    assert_interrupted_by_the_death(rest)
