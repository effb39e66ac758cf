"""A chat's system prompt and parameters reach its host; what the user did not set is not sent."""

import pytest
from django.urls import reverse

from boochat.models import ChatSession
from tests.boochat.test_chat import chat_requests, new_session, send


def the_turn(host):
    """The chat turn's request (the title's, which follows, is not streamed)."""
    (body,) = [b for b in chat_requests(host) if b.get("stream")]
    return body

pytestmark = pytest.mark.django_db


def test_unset_sends_the_request_as_before(user_client, hosts):
    chat = new_session(user_client, "sam-desktop/qwen3-8b")
    send(user_client, chat, "hi")
    body = the_turn(hosts["sam-desktop"])
    assert set(body) == {"model", "messages", "stream", "stream_options"}
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_the_system_prompt_and_set_parameters_reach_the_host(user_client, hosts):
    chat = new_session(user_client, "sam-desktop/qwen3-8b")
    response = user_client.post(reverse("chat_settings", args=[chat.pk]), {
        "system_prompt": "  Answer in French.  ", "temperature": "0.2", "top_p": "", "max_tokens": "256",
        "reasoning_effort": "low"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.template_name == "chat.html#chat_settings"
    assert "Saved" in response.content.decode()
    chat.refresh_from_db()
    assert chat.system_prompt == "Answer in French."
    assert chat.parameters == {"temperature": 0.2, "max_tokens": 256, "reasoning_effort": "low"}  # top_p: not set

    send(user_client, chat, "hi")
    body = the_turn(hosts["sam-desktop"])
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert body["messages"][-1] == {"role": "user", "content": "hi"}
    assert (body["temperature"], body["max_tokens"], body["reasoning_effort"]) == (0.2, 256, "low")
    assert "top_p" not in body
    assert "Answer in French." in user_client.get(chat.get_absolute_url()).content.decode()  # shown in the panel


@pytest.mark.parametrize("field, value, error", [("temperature", "5", "less than or equal to 2"),
                                                 ("max_tokens", "0", "greater than or equal to 1"),
                                                 ("top_p", "lots", "Enter a number"),
                                                 ("reasoning_effort", "extreme", "Select a valid choice")])
def test_a_parameter_out_of_range_is_refused_and_changes_nothing(user_client, field, value, error):
    chat = new_session(user_client, "sam-desktop/qwen3-8b")
    response = user_client.post(reverse("chat_settings", args=[chat.pk]), {field: value, "system_prompt": "x"},
                                headers={"HX-Request": "true"})
    assert response.status_code == 200 and error in response.content.decode()
    page = user_client.post(reverse("chat_settings", args=[chat.pk]), {field: value}, follow=True)
    assert "Prompt and parameters not saved" in page.content.decode() and error in page.content.decode()
    chat.refresh_from_db()
    assert (chat.system_prompt, chat.parameters) == ("", {})


def test_another_users_chat_settings_are_out_of_reach(user_client, django_user_model):
    other = ChatSession.objects.create(user=django_user_model.objects.create_user("bob"), model_id="x/y")
    assert user_client.post(reverse("chat_settings", args=[other.pk]), {"system_prompt": "pwn"}).status_code == 404
