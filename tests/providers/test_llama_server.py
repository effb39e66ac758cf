"""llama.cpp's llama-server as a provider: a router's models read their own `/props` (context size,
image support, thinking control), and a plain server's unknown model ids are refused, not answered by
whatever model it has loaded."""

import openai
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from boochat.gateway.keys import create_key
from boochat.models import ChatSession
from providers.models import ProviderKind
from tests.boochat.test_chat import chat_requests, new_session
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServer, FakeLlamaServerRouter
from tests.fakes.llama_swap import FakeModel
from tests.files import png

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def router():
    """A router-mode llama-server with a loaded vision model, and one that is still loading."""
    with FakeLlamaServerRouter([FakeModel("qwen3-vl", n_ctx=2048, vision=True, loaded=True),
                                FakeModel("tiny-beta", n_ctx=2048)], reply=["A red square."]) as host:
        make_provider(slug="router", name="Router box", kind=ProviderKind.LLAMA_SERVER, base_url=host.url,
                      is_default=True)
        yield host


@pytest.fixture
def big():
    """A plain llama-server (started with -m) serving qwen3-8b."""
    with FakeLlamaServer(FakeModel("qwen3-8b", n_ctx=2048)) as host:
        make_provider(slug="big", name="Big box", kind=ProviderKind.LLAMA_SERVER, base_url=host.url, is_default=True)
        yield host


@pytest.fixture
def sdk(asgi_server):
    _, key = create_key(name="agent")
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0, timeout=10) as client:
        yield client


# -- router mode: /props?model= --------------------------------------------------------------------


def test_a_loaded_router_model_offers_thinking_and_takes_images(user_client, router):
    chat = new_session(user_client, "router/qwen3-vl", title="t")
    page = user_client.get(chat.get_absolute_url())
    assert "thinking" in page.context_data["settings_form"].fields  # its chat template reads enable_thinking
    assert [r.target for r in router.requests_to("/props")] == ["/props?model=qwen3-vl"]
    response = user_client.post(reverse("chat_send", args=[chat.pk]), {"content": "What is this?",
                                                                         "attachments": [SimpleUploadedFile("photo.png", png(4, 3))]})
    assert response.status_code == 302
    (turn,) = [body for body in chat_requests(router) if body.get("stream")]
    assert turn["messages"][-1]["content"][1]["type"] == "image_url"


def test_a_router_model_gets_its_own_context_size_never_the_routers_zero(user_client, router):
    router.starting.add("tiny-beta")  # listed as "loading": no n_ctx in the list yet
    chat = new_session(user_client, "router/tiny-beta", title="t")
    usage = user_client.get(chat.get_absolute_url()).context_data["usage"]
    assert usage["available"] == 4096 and usage["source"] == "default"  # not the router's n_ctx 0
    assert router.requests_to("/props") == []  # a model still loading is not asked: the request would wait on it
    router.starting.discard("tiny-beta")
    router.find("tiny-beta").loaded = True
    cache.clear()  # the next page reads the host's list again, as it would after BOOCHAT_CATALOG_TTL
    usage = user_client.get(chat.get_absolute_url()).context_data["usage"]
    assert (usage["available"], usage["source"]) == (2048, "listing")


# -- a plain llama-server answers any model name with its own --------------------------------------


def test_a_model_the_host_does_not_list_is_404_model_not_found_and_never_sent(sdk, big):
    assert [m.id for m in sdk.models.list()] == ["big/qwen3-8b"]  # the host's list, as cached
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="big/no-such-model", messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert (error["code"], error["param"], error["type"]) == ("model_not_found", "model", "invalid_request_error")
    assert "Big box (big) does not serve 'no-such-model': it lists qwen3-8b." in error["message"]
    assert big.requests_to("/v1/chat/completions") == []
    answer = sdk.chat.completions.create(model="big/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert answer.model == "big/qwen3-8b" and len(big.requests_to("/v1/chat/completions")) == 1


def test_a_host_that_never_listed_its_models_is_let_through(sdk, big):
    # No list is cached (no page and no /v1/models yet): BooChat does not ask the host first.
    answer = sdk.chat.completions.create(model="big/other-name", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content  # from the model the host has loaded, as llama-server does
    assert [r.json()["model"] for r in big.requests_to("/v1/chat/completions")] == ["other-name"]


def test_a_chat_on_a_model_the_host_does_not_list_fails_clearly(user_client, big):
    user_client.get(reverse("picker"))  # the page lists the host's models
    chat = new_session(user_client, "big/no-such-model", title="t")
    response = user_client.post(reverse("chat_send", args=[chat.pk]), {"content": "hi"},
                                headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 404
    assert response.json()["error"] == "Big box (big) does not serve 'no-such-model': it lists qwen3-8b."
    answer = ChatSession.objects.get(pk=chat.pk).messages.get(role="assistant")
    assert answer.state == "failed" and "does not serve 'no-such-model'" in answer.error
    assert big.requests_to("/v1/chat/completions") == []
