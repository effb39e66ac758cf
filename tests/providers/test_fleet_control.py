"""Loading and unloading models from BooChat: llama-swap and llama-server in router mode, each action
answered with what the host said; only staff or holders of providers.control_models may."""

import time

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from providers.models import ProviderKind
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServer, FakeLlamaServerRouter
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

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
        panel(controller, "router", action="unload", model="qwen3-8b")
        assert router.requests_to("/models/unload")[0].json() == {"model": "qwen3-8b"}
        eventually(lambda: "Unloaded qwen3-8b" in panel(controller, "router").content.decode())
        assert not router.models[0].loaded
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


# -- only models the host lists, each path segment encoded ----------------------------------------

CONTROL_PATHS = ("/api/", "/unload", "/upstream/", "/models/")


def control_requests(host):
    """What the host received beyond the panel's own reads of its state."""
    return [r for r in host.requests if r.method != "GET" or r.path.startswith(CONTROL_PATHS)]


@pytest.mark.parametrize("name", ["../../unload", "../../../v1/models", "qwen3-8b/../../../unload", "./qwen3-8b",
                                  "qwen3-8b//x"])
def test_names_that_leave_the_models_path_are_refused_and_reach_nothing(controller, hosts, name):
    host = hosts["sam-desktop"]
    for action in ("unload", "load"):
        response = controller.post(reverse("host_models", args=["sam-desktop"]), {"action": action, "model": name},
                                   headers={"HX-Request": "true"})
        assert response.status_code == 400
        assert escape(f"{name!r} is not a model name") in response.content.decode()
    assert control_requests(host) == [] and host.requests_to("/api/unload") == []
    assert any(m.loaded for m in host.models)


def test_a_model_the_host_does_not_list_is_refused(controller, hosts):
    host = hosts["sam-desktop"]
    for action in ("unload", "load"):
        response = controller.post(reverse("host_models", args=["sam-desktop"]), {"action": action, "model": "nope"})
        assert response.status_code == 400
        assert escape("Sam's desktop (sam-desktop) does not list a model 'nope'") in response.content.decode()
    assert control_requests(host) == []


def test_a_peer_model_with_a_slash_is_controlled_with_each_segment_encoded(controller):
    models = [FakeModel("gpt-oss-20b", peer="box2"), FakeModel("qwen3:8b", peer="box2")]
    with FakeLlamaSwap(models, swap=False) as host:
        make_provider(slug="sam-desktop", name="Sam's desktop", base_url=host.url, is_default=True)
        panel(controller, action="load", model="box2/gpt-oss-20b")
        eventually(lambda: models[0].loaded)
        assert [r.target for r in control_requests(host)] == ["/upstream/box2/gpt-oss-20b/health"]
        panel(controller, action="load", model="box2/qwen3:8b")
        eventually(lambda: models[1].loaded)
        assert control_requests(host)[-1].target == "/upstream/box2/qwen3%3A8b/health"
        html = panel(controller, action="unload", model="box2/qwen3:8b").content.decode()
        assert control_requests(host)[-1].target == "/api/models/unload/box2/qwen3%3A8b"
        assert "Unloaded box2/qwen3:8b" in html and not models[1].loaded


# -- loads queue per host, identical ones merged, with a bound -----------------------------------------


@pytest.fixture
def hung_host(controller):
    """A llama-swap host whose loads hang until the test lets them go."""
    with FakeLlamaSwap([FakeModel(f"m{i}") for i in range(6)], swap=False) as host:
        make_provider(slug="hung", name="Hung box", base_url=host.url)
        host.hold_loads = True
        yield host
        host.hold_loads = False
        eventually(lambda: all(m.loaded for m in host.models if host.requests_to(f"/upstream/{m.id}/health")))


def health_requests(host):
    return [r for r in host.requests if r.path.startswith("/upstream/") and r.path.endswith("/health")]


def test_a_hung_hosts_loads_do_not_delay_another_hosts_load(controller, hosts, hung_host):
    for i in range(4):
        panel(controller, "hung", action="load", model=f"m{i}")
    eventually(lambda: health_requests(hung_host))
    panel(controller, "embedding", action="load", model="deepseek-r1-qwen3-8b")
    eventually(lambda: hosts["embedding"].requests_to("/upstream/deepseek-r1-qwen3-8b/health"))
    assert len(health_requests(hung_host)) == 1  # its own queue: one load at a time
    html = panel(controller, "hung").content.decode()
    assert "Loading m3 on Hung box" in html and 'hx-trigger="every 1s"' in html
    hung_host.hold_loads = False
    eventually(lambda: all(m.loaded for m in hung_host.models[:4]))
    eventually(lambda: "Loaded m3" in panel(controller, "hung").content.decode())


def test_identical_loads_are_merged(controller, hung_host):
    answers = [panel(controller, "hung", action="load", model="m0").content.decode() for _ in range(3)]
    eventually(lambda: health_requests(hung_host))
    hung_host.hold_loads = False
    eventually(lambda: hung_host.models[0].loaded)
    eventually(lambda: "every 1s" not in panel(controller, "hung").content.decode())
    assert len(hung_host.requests_to("/upstream/m0/health")) == 1
    assert "Loading m0 on Hung box was already asked for; it is merged with that load" in answers[2]
    html = panel(controller, "hung", action="load", model="m0").content.decode()
    assert "m0 is already loaded on Hung box" in html and len(hung_host.requests_to("/upstream/m0/health")) == 1


def test_past_the_bound_a_load_is_refused_with_the_reason(controller, hung_host, settings):
    settings.BOOCHAT_MAX_WAITING_LOADS = 2
    panel(controller, "hung", action="load", model="m0")
    panel(controller, "hung", action="load", model="m1")
    response = controller.post(reverse("host_models", args=["hung"]), {"action": "load", "model": "m2"},
                               headers={"HX-Request": "true"})
    assert response.status_code == 503
    html = response.content.decode()
    assert "2 loads already waiting on Hung box (hung) (at most 2)" in html and 'id="host-hung"' in html
    hung_host.hold_loads = False
    eventually(lambda: hung_host.models[1].loaded)
    assert hung_host.requests_to("/upstream/m2/health") == []
    panel(controller, "hung", action="load", model="m2")  # room again once those are done
    eventually(lambda: hung_host.models[2].loaded)


# -- llama-server: router mode as recorded, single-model servers left alone -----------------------------


@pytest.fixture
def router(controller):
    with FakeLlamaServerRouter([FakeModel("tiny-alpha"), FakeModel("tiny-beta"), FakeModel("tiny-broken")]) as host:
        host.broken = {"tiny-broken"}
        make_provider(slug="router", name="Router box", kind=ProviderKind.LLAMA_SERVER, base_url=host.url)
        yield host


def test_a_failed_router_load_is_shown_as_failed(controller, router):
    router.load_seconds = 0.3
    html = panel(controller, "router", action="load", model="tiny-broken").content.decode()
    assert "Loading tiny-broken on Router box" in html and 'hx-trigger="every 1s"' in html
    eventually(lambda: "every 1s" not in panel(controller, "router").content.decode())
    html = panel(controller, "router").content.decode()
    assert "Loading tiny-broken failed: Router box reports the load failed (exit code 1)" in html
    assert "Loaded tiny-broken" not in html and "failed (exit code 1)" in html
    assert 'value="tiny-broken"' in html  # it can be tried again
    panel(controller, "router", action="load", model="tiny-alpha")
    eventually(lambda: "Loaded tiny-alpha." in panel(controller, "router").content.decode())
    assert "state-loaded" in panel(controller, "router").content.decode()


def test_a_sleeping_router_model_is_shown_and_not_followed(controller, router):
    router.models[0].loaded = True
    router.sleeping = {"tiny-alpha"}
    html = panel(controller, "router").content.decode()
    assert "state-sleeping" in html and "every 1s" not in html
    # The picker does not call it loaded: its weights were let go, and a request waits for them again.
    listed = {m["id"]: m["loaded"] for m in controller.get(reverse("api_models")).json()["models"]}
    assert listed == {"router/tiny-alpha": False, "router/tiny-beta": False, "router/tiny-broken": False}


def test_unload_all_on_a_router_follows_the_models_until_they_are_gone(controller, router):
    router.models[0].loaded = router.models[1].loaded = True
    router.unload_seconds = 0.5
    html = panel(controller, "router", action="unload_all").content.decode()
    assert 'hx-trigger="every 1s"' in html  # the page follows the host until the models are gone
    assert "Unloading every model on Router box: tiny-alpha, tiny-beta" in html
    eventually(lambda: "Nothing loaded on Router box" in panel(controller, "router").content.decode())
    html = panel(controller, "router").content.decode()
    assert "Unloaded tiny-alpha" in html and "Unloaded tiny-beta" in html and "every 1s" not in html


def test_a_single_model_llama_server_is_not_offered_load_and_unload(controller, router):
    with FakeLlamaServer(FakeModel("qwen3-8b")) as single:
        make_provider(slug="single", name="Single box", kind=ProviderKind.LLAMA_SERVER, base_url=single.url)
        picker = controller.get(reverse("picker")).content.decode()
        assert reverse("host_models", args=["router"]) in picker
        assert reverse("host_models", args=["single"]) not in picker
        html = panel(controller, "single").content.decode()
        assert "Single box (single) is a single-model llama-server" in html and "Load ahead of use" not in html
        response = controller.post(reverse("host_models", args=["single"]), {"action": "load", "model": "qwen3-8b"})
        assert response.status_code == 409 and "single-model llama-server" in response.content.decode()
        assert single.requests_to("/models/load") == []
