import pytest
from playwright.sync_api import expect

from boochat.models import ArenaAnswer, MessageState
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_columns_stream_side_by_side_then_the_analysis(asgi_page, asgi_server):
    page = asgi_page
    slow = [f"a{i} " for i in range(12)]
    with FakeLlamaSwap([FakeModel("qwen3-8b")], reply=slow, stream_delay=0.1) as desktop, \
            FakeLlamaSwap([FakeModel("qwen3-8b")], reply=["b "] * 12, stream_delay=0.1) as small_box, \
            FakeLlamaSwap([FakeModel("qwen3-8b")]) as doomed:
        make_provider(slug="sam-desktop", name="Sam's desktop", base_url=desktop.url, is_default=True)
        make_provider(slug="embedding", name="Embedding box", base_url=small_box.url)
        make_provider(slug="gone", name="Gone box", base_url=doomed.url)
        page.goto(f"{asgi_server.url}/arena/")
        page.get_by_label("Prompt").fill("Count to twelve")
        page.get_by_label("Model 1", exact=True).select_option("sam-desktop/qwen3-8b")
        page.get_by_label("Model 2", exact=True).select_option("embedding/qwen3-8b")
        page.get_by_label("Model 3 (optional)").select_option("gone/qwen3-8b")
        doomed.stop()  # the host goes down between choosing it and running
        page.get_by_label("Analyzer (— : the task model, else model 1)").select_option("sam-desktop/qwen3-8b")
        page.get_by_role("button", name="Run").click()

        first, second = page.locator(".arena-column").nth(0), page.locator(".arena-column").nth(1)
        # Both columns are streaming at the same time: each shows words before either is done.
        expect(first).to_contain_text("a2", timeout=5000)
        expect(second).to_contain_text("b b b", timeout=5000)
        assert "a11" not in first.inner_text()

        expect(first).to_contain_text("host sam-desktop", timeout=10000)
        expect(second).to_contain_text("host embedding", timeout=10000)
        expect(first).to_contain_text("tok/s")
        # A down host fails in its own column with the reason; the others carried on.
        expect(page.locator(".arena-column").nth(2)).to_contain_text("Gone box (gone) is unreachable")
        expect(page.locator("#analysis")).to_contain_text("a0 a1", timeout=10000)  # the analyzer's answer
        expect(page.get_by_role("button", name="Continue as chat")).to_have_count(2)
    states = sorted(ArenaAnswer.objects.values_list("state", flat=True))
    assert states == [MessageState.COMPLETE, MessageState.COMPLETE, MessageState.FAILED]
