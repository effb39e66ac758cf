"""A chat's system prompt and parameters reach its host; what the user did not set is not sent."""

import pytest
from django.urls import reverse

from boochat.models import ChatSession, Preset
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
        "system_prompt": "  Answer in French.  ", "temperature": "0.2", "top_p": "", "max_tokens": "256"},
        headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.template_name == "chat.html#chat_settings"
    assert "Saved" in response.content.decode()
    chat.refresh_from_db()
    assert chat.system_prompt == "Answer in French."
    assert chat.parameters == {"temperature": 0.2, "max_tokens": 256}  # top_p: not set

    send(user_client, chat, "hi")
    body = the_turn(hosts["sam-desktop"])
    assert body["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert body["messages"][-1] == {"role": "user", "content": "hi"}
    assert (body["temperature"], body["max_tokens"]) == (0.2, 256)
    assert "top_p" not in body
    assert "Answer in French." in user_client.get(chat.get_absolute_url()).content.decode()  # shown in the panel


@pytest.mark.parametrize("field, value, error", [("temperature", "5", "less than or equal to 2"),
                                                 ("max_tokens", "0", "greater than or equal to 1"),
                                                 ("top_p", "lots", "Enter a number"),
                                                 ("reasoning_effort", "extreme", "Select a valid choice"),
                                                 ("thinking", "maybe", "Select a valid choice")])
def test_a_parameter_out_of_range_is_refused_and_changes_nothing(user_client, hosts, field, value, error):
    chat = new_session(user_client, "deepseek/deepseek-v4-flash")
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


def settings_panel(client, chat):
    return client.get(chat.get_absolute_url()).context_data["settings_form"]


def test_deepseek_offers_its_reasoning_controls_and_gets_them_in_its_own_shape(user_client, hosts):
    chat = new_session(user_client, "deepseek/deepseek-v4-flash", title="t")
    form = settings_panel(user_client, chat)
    assert [value for value, _ in form.fields["reasoning_effort"].choices] == ["", "low", "high", "max"]
    assert "thinking" in form.fields
    user_client.post(reverse("chat_settings", args=[chat.pk]), {"reasoning_effort": "max", "thinking": "off"})
    send(user_client, chat, "hi")
    (body, *_) = hosts["deepseek"].chat_bodies()
    assert (body["reasoning_effort"], body["thinking"]) == ("max", {"type": "disabled"})


def test_a_loaded_llama_model_offers_what_its_props_say(user_client, hosts):
    # sam-desktop's qwen3-30b is loaded; its chat template reads enable_thinking, and it has no
    # reasoning_effort support (the captured /props).
    chat = new_session(user_client, "sam-desktop/qwen3-30b", title="t")
    form = settings_panel(user_client, chat)
    assert "thinking" in form.fields and "reasoning_effort" not in form.fields
    user_client.post(reverse("chat_settings", args=[chat.pk]), {"thinking": "off", "reasoning_effort": "high"})
    chat.refresh_from_db()
    assert chat.parameters == {"thinking": "off"}  # what it does not take is not kept
    send(user_client, chat, "hi")
    body = the_turn(hosts["sam-desktop"])
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and "reasoning_effort" not in body


def test_a_model_not_loaded_is_not_loaded_to_find_out(user_client, hosts):
    chat = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    form = settings_panel(user_client, chat)
    assert "thinking" not in form.fields and "reasoning_effort" not in form.fields
    assert hosts["sam-desktop"].requests_to("/upstream/qwen3-8b/props") == []


def test_reasoning_effort_from_props_and_kept_settings_not_sent_where_not_taken(user_client, hosts):
    from tests.factories import make_provider
    from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

    with FakeLlamaSwap([FakeModel("gpt-oss-20b", loaded=True, template_caps={"supports_reasoning_effort": True})]) as box:
        make_provider(slug="box2", base_url=box.url)
        chat = new_session(user_client, "box2/gpt-oss-20b", title="t")
        form = settings_panel(user_client, chat)
        assert [value for value, _ in form.fields["reasoning_effort"].choices] == ["", "low", "medium", "high"]
        user_client.post(reverse("chat_settings", args=[chat.pk]), {"reasoning_effort": "high"})
        send(user_client, chat, "hi")
        assert the_turn(box)["reasoning_effort"] == "high"
    # The same chat moved to a model that takes no reasoning effort: the kept value is not sent.
    ChatSession.objects.filter(pk=chat.pk).update(model_id="embedding/qwen3-8b")
    send(user_client, chat, "again")
    assert "reasoning_effort" not in the_turn(hosts["embedding"])


def test_presets_and_model_defaults_start_new_chats(user_client, hosts):
    chat = new_session(user_client, "sam-desktop/qwen3-8b", title="t")
    url = reverse("chat_settings", args=[chat.pk])
    assert "Name the preset" in user_client.post(url, {"system_prompt": "x", "keep": "preset"}, follow=True).content.decode()
    user_client.post(url, {"system_prompt": "You are a pirate.", "temperature": "1.5", "keep": "preset",
                           "preset_name": "Pirate"})
    user_client.post(url, {"system_prompt": "Be brief.", "max_tokens": "100", "keep": "model"})
    pirate = Preset.objects.get(name="Pirate")
    assert (pirate.system_prompt, pirate.parameters) == ("You are a pirate.", {"temperature": 1.5})
    assert 'value="%d">Pirate</option>' % pirate.pk in user_client.get(reverse("chat_index")).content.decode()

    # The new chat's page shows what a chat starts with; its first message (without the panel's fields,
    # as an API client posts it) takes the same.
    def panel(**query):
        form = user_client.get(reverse("chat_new"), query).context_data["settings_form"]
        return form["system_prompt"].value(), {k: form[k].value() for k in ("temperature", "max_tokens") if form[k].value()}

    assert panel(model="sam-desktop/qwen3-8b", preset=pirate.pk) == ("You are a pirate.", {"temperature": 1.5})
    assert panel(model="sam-desktop/qwen3-8b") == ("Be brief.", {"max_tokens": 100})  # no preset: the model's defaults
    assert panel(model="embedding/qwen3-8b") == ("", {})  # another host's qwen3-8b: none
    user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b", "preset": pirate.pk, "content": "hi"})
    started = ChatSession.objects.latest("id")
    assert (started.system_prompt, started.parameters) == ("You are a pirate.", {"temperature": 1.5})
    user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b", "content": "hi"})
    started = ChatSession.objects.latest("id")
    assert (started.system_prompt, started.parameters) == ("Be brief.", {"max_tokens": 100})
    user_client.post(reverse("chat_new"), {"model_id": "embedding/qwen3-8b", "content": "hi"})
    assert ChatSession.objects.latest("id").system_prompt == ""

    user_client.post(reverse("presets"), {"delete": pirate.pk})
    assert not Preset.objects.filter(name="Pirate").exists()
    before = ChatSession.objects.count()
    page = user_client.get(reverse("chat_new"), {"model": "sam-desktop/qwen3-8b", "preset": pirate.pk}, follow=True)
    assert "that preset does not exist" in page.content.decode() and ChatSession.objects.count() == before
    sent = user_client.post(reverse("chat_new"), {"model_id": "sam-desktop/qwen3-8b", "preset": pirate.pk, "content": "hi"},
                            headers={"X-BooChat-Stream": "1"})
    assert sent.status_code == 400 and "that preset does not exist" in sent.json()["error"]
    assert ChatSession.objects.count() == before


def test_presets_are_private(user_client, client, django_user_model):
    mallory = django_user_model.objects.create_user("mallory")
    theirs = Preset.objects.create(user=mallory, name="Secret", system_prompt="hidden")
    assert "Secret" not in user_client.get(reverse("presets")).content.decode()
    user_client.post(reverse("presets"), {"delete": theirs.pk})
    assert Preset.objects.filter(pk=theirs.pk).exists()


def test_one_props_request_serves_the_context_size_and_the_reasoning_controls(user_client, hosts):
    from tests.factories import make_provider
    from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

    with FakeLlamaSwap([FakeModel("gemma-3-4b", loaded=True, n_ctx=3072)]) as box:
        make_provider(slug="box", base_url=box.url)
        chat = new_session(user_client, "box/gemma-3-4b", title="t")
        page = user_client.get(chat.get_absolute_url())
        assert page.context_data["usage"]["available"] == 3072 and "thinking" in page.context_data["settings_form"].fields
        assert len(box.requests_to("/upstream/gemma-3-4b/props")) == 1
