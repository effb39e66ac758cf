"""Load and unload from the models page: the host's state changes in the page as it happens."""

import pytest
from playwright.sync_api import expect

from providers.models import ProviderKind
from tests.factories import make_provider
from tests.fakes.llama_server import FakeLlamaServerRouter
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_loading_shows_starting_then_ready_without_a_reload(page, live_server, django_user_model):
    django_user_model.objects.create_user("ops", password="correct horse battery staple", is_staff=True)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    with FakeLlamaSwap([FakeModel("qwen3-8b"), FakeModel("qwen3-30b", loaded=True)], swap=False) as host:
        host.load_seconds = 2.0
        make_provider(slug="sam-desktop", name="Sam's desktop", base_url=host.url, is_default=True)
        page.goto(f"{live_server.url}/models/")
        page.evaluate("window.__noReload = true")
        panel = page.locator("#host-sam-desktop")
        expect(panel.locator(".run-state")).to_have_text("ready")
        panel.get_by_label("Load ahead of use").select_option("qwen3-8b")
        panel.get_by_role("button", name="Load", exact=True).click()
        expect(page.locator("#host-sam-desktop li", has_text="qwen3-8b").locator(".run-state")).to_have_text(
            "starting", timeout=3000)
        expect(page.locator("#host-sam-desktop li", has_text="qwen3-8b").locator(".run-state")).to_have_text(
            "ready", timeout=6000)
        expect(page.locator("#host-sam-desktop")).to_contain_text("Loaded qwen3-8b")
        page.locator("#host-sam-desktop").get_by_role("button", name="Unload qwen3-8b").click()
        expect(page.locator("#host-sam-desktop li", has_text="qwen3-8b")).to_have_count(0)
        assert page.evaluate("window.__noReload") is True
        host.refuse_control = True
        page.locator("#host-sam-desktop").get_by_role("button", name="Unload all").click()
        expect(page.locator("#host-sam-desktop [role=alert]")).to_contain_text("refused: HTTP 500")


def test_a_router_panel_follows_unload_all_and_shows_a_failed_load(page, live_server, django_user_model):
    django_user_model.objects.create_user("ops", password="correct horse battery staple", is_staff=True)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    models = [FakeModel("tiny-alpha", loaded=True), FakeModel("tiny-beta", loaded=True), FakeModel("tiny-broken")]
    with FakeLlamaServerRouter(models) as router:
        router.broken = {"tiny-broken"}
        router.unload_seconds = 1.0
        router.load_seconds = 1.0
        make_provider(slug="router", name="Router box", kind=ProviderKind.LLAMA_SERVER, base_url=router.url,
                      is_default=True)
        page.goto(f"{live_server.url}/models/")
        page.evaluate("window.__noReload = true")
        panel = page.locator("#host-router")
        expect(panel.locator(".run-state")).to_have_text(["loaded", "loaded"])
        panel.get_by_role("button", name="Unload all").click()
        expect(page.locator("#host-router")).to_contain_text("Nothing loaded on Router box", timeout=8000)
        expect(page.locator("#host-router")).to_contain_text("Unloaded tiny-beta")
        page.locator("#host-router").get_by_label("Load ahead of use").select_option("tiny-broken")
        page.locator("#host-router").get_by_role("button", name="Load", exact=True).click()
        expect(page.locator("#host-router [role=alert]")).to_contain_text(
            "Loading tiny-broken failed: Router box reports the load failed (exit code 1)", timeout=8000)
        expect(page.locator("#host-router li", has_text="tiny-broken").locator(".run-state")).to_have_text(
            "failed (exit code 1)")
        assert page.evaluate("window.__noReload") is True


def test_a_load_past_the_bound_shows_the_refusal_in_the_panel(page, live_server, django_user_model, settings):
    settings.BOOCHAT_MAX_WAITING_LOADS = 1
    django_user_model.objects.create_user("ops", password="correct horse battery staple", is_staff=True)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    with FakeLlamaSwap([FakeModel("qwen3-8b"), FakeModel("qwen3-30b")], swap=False) as host:
        host.hold_loads = True
        make_provider(slug="sam-desktop", name="Sam's desktop", base_url=host.url, is_default=True)
        page.goto(f"{live_server.url}/models/")
        panel = page.locator("#host-sam-desktop")
        panel.get_by_label("Load ahead of use").select_option("qwen3-8b")
        panel.get_by_role("button", name="Load", exact=True).click()
        expect(page.locator("#host-sam-desktop")).to_contain_text("Loading qwen3-8b on Sam's desktop")
        page.locator("#host-sam-desktop").get_by_label("Load ahead of use").select_option("qwen3-30b")
        page.locator("#host-sam-desktop").get_by_role("button", name="Load", exact=True).click()
        expect(page.locator("#host-sam-desktop [role=alert]")).to_contain_text(
            "1 load already waiting on Sam's desktop (sam-desktop) (at most 1)")
        host.hold_loads = False
        expect(page.locator("#host-sam-desktop")).to_contain_text("Loaded qwen3-8b", timeout=8000)
        assert host.requests_to("/upstream/qwen3-30b/health") == []
