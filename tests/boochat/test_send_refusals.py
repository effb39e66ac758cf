"""A send or a new chat that cannot go says why and keeps nothing: a file whose name is too long for
Django's form parser (JSON on the streamed send), a model on a disabled provider."""

import pytest
from django.urls import reverse

from boochat.models import Attachment, ChatSession, Message
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(user_client, django_user_model):
    make_provider(slug="sam-desktop", is_default=True)
    return ChatSession.objects.create(user=django_user_model.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")


def multipart(file_name):
    """A send's form as a browser posts it; Django's test client would cut the name to 255 characters."""
    body = ('--edge\r\nContent-Disposition: form-data; name="content"\r\n\r\nWhat is in this?\r\n'
            f'--edge\r\nContent-Disposition: form-data; name="attachments"; filename="{file_name}"\r\n'
            'Content-Type: text/plain\r\n\r\nhello\r\n--edge--\r\n')
    return body.encode()


def test_a_4kb_file_name_on_a_streamed_send_is_a_json_400_that_says_so(user_client, chat):
    response = user_client.generic("POST", reverse("chat_send", args=[chat.pk]), multipart("a" * 4096 + ".txt"),
                                   content_type="multipart/form-data; boundary=edge", headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["error"] == ("The upload could not be read: the part headers of one of its files (its name "
                                        "and type) are longer than the 1 KB Django reads. Give the file a shorter name.")
    assert not Message.objects.exists() and not Attachment.objects.exists()


def test_a_4kb_file_name_on_a_plain_form_send_says_so_too(user_client, chat):
    response = user_client.generic("POST", reverse("chat_send", args=[chat.pk]), multipart("a" * 4096 + ".txt"),
                                   content_type="multipart/form-data; boundary=edge")
    assert response.status_code == 400 and "Give the file a shorter name." in response.content.decode()
    assert not Message.objects.exists()


def test_a_chat_on_a_disabled_providers_model_is_refused_with_the_reason(user_client):
    make_provider(slug="sam-desktop", is_default=True)
    make_provider(slug="old-box", name="Old box", enabled=False)
    page = user_client.get(reverse("chat_new"), {"model": "old-box/qwen3-8b"}, follow=True)
    assert page.redirect_chain[-1][0] == reverse("chat_index")
    assert ("Cannot start a chat: old-box/qwen3-8b is on provider &#x27;old-box&#x27; (Old box), which is disabled"
            in page.content.decode())
    sent = user_client.post(reverse("chat_new"), {"model_id": "old-box/qwen3-8b", "content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert sent.status_code == 400 and "which is disabled" in sent.json()["error"]
    assert not ChatSession.objects.exists()


def test_a_chat_cannot_be_moved_to_a_disabled_providers_model(user_client, chat):
    make_provider(slug="old-box", name="Old box", enabled=False)
    response = user_client.post(reverse("chat_set_model", args=[chat.pk]), {"model_id": "old-box/qwen3-8b"},
                                headers={"HX-Request": "true"})
    assert response.status_code == 400 and "which is disabled" in response.content.decode()
    chat.refresh_from_db()
    assert chat.model_id == "sam-desktop/qwen3-8b"
