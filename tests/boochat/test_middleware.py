"""Django's session, authentication, messages and common middleware under ASGI (boochat.middleware):
their hooks run in the event loop, and they still save sessions and messages."""

import asyncio

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.common import CommonMiddleware
from django.urls import reverse

from boochat.models import Message
from tests.boochat.test_chat import new_session, user_of
from tests.factories import add_message

pytestmark = pytest.mark.django_db(transaction=True)  # the async views' threads see the rows

IN_THE_LOOP = {
    SessionMiddleware.process_request, SessionMiddleware.process_response, CommonMiddleware.process_request,
    CommonMiddleware.process_response, AuthenticationMiddleware.process_request, MessageMiddleware.process_request,
    MessageMiddleware.process_response,
}


@pytest.fixture
def to_threads(monkeypatch):
    """The functions sent to a thread by sync_to_async, in order."""
    sent = []
    call = SyncToAsync.__call__

    def noting(self, *args, **kwargs):
        sent.append(getattr(self.func, "__func__", self.func))
        return call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", noting)
    return sent


def test_a_send_under_asgi_sends_no_hook_of_these_middleware_to_a_thread(user_client, async_client, hosts, to_threads):
    hosts["sam-desktop"].reply = ["Hello", " there."]
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    async_client.force_login(user_of(user_client))
    to_threads.clear()

    async def send():
        response = await async_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"},
                                           headers={"X-BooChat-Stream": "1"})
        return response, b"".join([chunk async for chunk in response.streaming_content])

    response, body = asyncio.run(send())
    assert response.status_code == 200 and b"event: end" in body
    assert session.messages.get(role=Message.Role.ASSISTANT).content == "Hello there."
    assert IN_THE_LOOP.isdisjoint(to_threads)
    assert to_threads  # the login check and the view's own database work still go to a thread


def test_a_login_under_asgi_saves_the_session(async_client, django_user_model):
    django_user_model.objects.create_user("bob", password="pw-for-tests-only")

    async def log_in_and_look():
        login = await async_client.post(reverse("login"), {"username": "bob", "password": "pw-for-tests-only"})
        return login, await async_client.get(reverse("chat_index"))

    login, page = asyncio.run(log_in_and_look())
    assert login.status_code == 302 and "sessionid" in login.cookies
    assert page.status_code == 200 and page.context["user"].username == "bob"


def test_a_message_under_asgi_is_shown_on_the_next_page(user_client, async_client):
    session = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    question = add_message(session=session, role="user", content="Why are there tides?")
    async_client.force_login(user_of(user_client))

    async def delete_and_look():
        deleted = await async_client.post(reverse("chat_delete_turn", args=[question.pk]))
        return deleted, await async_client.get(session.get_absolute_url())

    deleted, page = asyncio.run(delete_and_look())
    assert deleted.status_code == 302 and "messages" in deleted.cookies
    assert "Deleted the question and its answers." in page.content.decode()
