"""Loading and unloading models from BooChat: llama-swap and llama-server in router mode, each action
answered with what the host said; only staff or holders of providers.control_models may."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from providers.models import ProviderKind
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServerRouter
from tests.fakes.llama_swap import FakeModel

pytestmark = pytest.mark.django_db


def panel(client, slug="sam-desktop", **post):
    url = reverse("host_models", args=[slug])
    response = client.post(url, post, headers={"HX-Request": "true"}) if post else client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.content
    return response


def eventually(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


@pytest.fixture
def controller(django_user_model):
    user = django_user_model.objects.create_user("ops")
    user.user_permissions.add(Permission.objects.get(codename="control_models"))
    client = Client()
    client.force_login(user)
    return client


def test_only_staff_or_the_permission_may_control_models(user_client, controller, django_user_model, hosts):
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("root", is_staff=True))
    url = reverse("host_models", args=["sam-desktop"])
    assert user_client.get(url).status_code == 403
    assert user_client.post(url, {"action": "unload_all"}).status_code == 403
    assert all(m.loaded is not False for m in hosts["sam-desktop"].models if m.id == "qwen3-30b")
    assert hosts["sam-desktop"].requests_to("/unload") == []
    assert "host-control" not in user_client.get(reverse("picker")).content.decode()
    assert 'class="host-control"' in controller.get(reverse("picker")).content.decode()
    assert staff.get(url).status_code == 200
    assert controller.get(reverse("host_models", args=["deepseek"])).status_code == 404  # nothing to load there


def test_llama_swap_running_models_unload_and_load_ahead(controller, hosts):
    host = hosts["sam-desktop"]
    html = panel(controller).content.decode()
    assert "<code>qwen3-30b</code>" in html and "state-ready" in html

    html = panel(controller, action="unload", model="qwen3-30b").content.decode()
    assert host.requests_to("/api/models/unload/qwen3-30b") and "HTTP 200: OK" in html
    assert "Nothing loaded on Sam" in html

    host.load_seconds = 0.5
    html = panel(controller, action="load", model="qwen3-8b").content.decode()
    assert "Loading qwen3-8b" in html and 'hx-trigger="every 1s"' in html  # the page follows the host
    eventually(lambda: host.starting == {"qwen3-8b"})
    assert "state-starting" in panel(controller).content.decode()
    eventually(lambda: host.models[1].loaded)
    eventually(lambda: "every 1s" not in panel(controller).content.decode())
    html = panel(controller).content.decode()
    assert "state-ready" in html and "Loaded qwen3-8b" in html and host.requests_to("/upstream/qwen3-8b/health")

    panel(controller, action="unload_all")
    assert host.requests_to("/unload") and not any(m.loaded for m in host.models)


def test_a_host_that_refuses_says_so(controller, hosts):
    hosts["sam-desktop"].refuse_control = True
    html = panel(controller, action="unload", model="qwen3-30b").content.decode()
    assert "refused: HTTP 500: failed to stop process" in html
    page = controller.post(reverse("host_models", args=["sam-desktop"]), {"action": "unload_all"}, follow=True)
    assert "refused: HTTP 500" in page.content.decode()  # without JavaScript: the page, with the message


def test_bad_requests_are_refused_and_change_nothing(controller, hosts):
    url = reverse("host_models", args=["sam-desktop"])
    assert controller.post(url, {"action": "reboot"}).status_code == 400
    assert controller.post(url, {"action": "unload"}).status_code == 400
    assert controller.get(reverse("host_models", args=["nowhere"])).status_code == 404
    assert not any(r.path.startswith(("/api/models/unload", "/unload")) for r in hosts["sam-desktop"].requests)


def test_llama_server_router_mode(controller):
    with FakeLlamaServerRouter([FakeModel("qwen3-8b", loaded=True), FakeModel("gemma-3-4b")]) as router:
        make_provider(slug="router", name="Router box", kind=ProviderKind.LLAMA_SERVER, base_url=router.url)
        html = panel(controller, "router").content.decode()
        assert "<code>qwen3-8b</code>" in html and "state-loaded" in html and 'value="gemma-3-4b"' in html
        panel(controller, "router", action="load", model="gemma-3-4b")
        eventually(lambda: router.models[1].loaded)
        assert router.requests_to("/models/load")[0].json() == {"model": "gemma-3-4b"}
        html = panel(controller, "router", action="unload", model="qwen3-8b").content.decode()
        assert router.requests_to("/models/unload")[0].json() == {"model": "qwen3-8b"} and not router.models[0].loaded
        assert "Unloaded qwen3-8b" in html
        # The picker knows which of the router's models are loaded.
        listed = {m["id"]: m["loaded"] for m in controller.get(reverse("api_models")).json()["models"]}
        assert listed == {"router/qwen3-8b": False, "router/gemma-3-4b": True}


def test_admin_links_each_host_to_its_models_and_unloads_them_all(admin_client, hosts):
    changelist = admin_client.get(reverse("admin:providers_provider_changelist")).content.decode()
    assert reverse("host_models", args=["sam-desktop"]) in changelist
    sam = hosts["sam-desktop"]
    from providers.models import Provider

    page = admin_client.post(reverse("admin:providers_provider_changelist"), {
        "action": "unload_all_models", "_selected_action": [Provider.objects.get(slug="sam-desktop").pk]}, follow=True)
    assert "Unloaded every model" in page.content.decode() and sam.requests_to("/unload")
