"""Load and unload from the models page: the host's state changes in the page as it happens."""

import pytest
from playwright.sync_api import expect

from tests.factories import make_provider
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
