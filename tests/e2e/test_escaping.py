"""Names and answers that carry HTML render as text everywhere: no script of theirs runs."""

import pytest
from playwright.sync_api import expect

from boochat.models import ChatSession
from providers.models import ModelOverride
from tests.factories import add_message, make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOAD = '<img src=x onerror="window.__xss=1">'
MODEL_ID = "<svg/onload=window.__xss=2>"  # a legal model id: no whitespace, no ?#%\ and no empty segment


def test_hostile_names_and_answers_stay_inert(page, live_server, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="correct horse battery staple")
    with FakeLlamaSwap([FakeModel(MODEL_ID, name=PAYLOAD)], reply=[f"Hi {PAYLOAD} <script>window.__xss=3</script>"]) as host:
        provider = make_provider(slug="evil", name=f"Evil {PAYLOAD}", base_url=host.url, is_default=True)
        ModelOverride.objects.create(provider=provider, model="other", display_name=PAYLOAD)
        session = ChatSession.objects.create(user=admin, model_id=f"evil/{MODEL_ID}", title=f"T {PAYLOAD}")
        add_message(session=session, role="user", content=f"Q {PAYLOAD}")
        add_message(session=session, role="assistant", content=f"A {PAYLOAD} <script>window.__xss=4</script>",
                               reasoning=f"R {PAYLOAD}", provider="evil", wire_model=MODEL_ID)

        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("root")
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")

        for url in ("/", "/models/", "/settings/", session.get_absolute_url(), "/admin/providers/provider/",
                    f"/admin/providers/provider/{provider.pk}/change/", "/admin/providers/modeloverride/"):
            page.goto(f"{live_server.url}{url}")
            page.wait_for_load_state("load")
            assert page.evaluate("window.__xss") is None, url
        page.goto(f"{live_server.url}/models/")
        expect(page.get_by_text(PAYLOAD).first).to_be_visible()  # shown as text
        page.goto(f"{live_server.url}{session.get_absolute_url()}")
        expect(page.locator("article.message.assistant")).to_contain_text("A <img src=x")
        expect(page.locator("#session-title")).to_have_text(f"T {PAYLOAD}")
    assert page.evaluate("window.__xss") is None
