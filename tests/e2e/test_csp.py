"""Every page works under BooChat's Content-Security-Policy: Chromium reports no violation."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ArenaAnswer, ArenaRun, ChatSession
from tests.factories import add_message, make_provider

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_page_breaks_the_content_security_policy(asgi_page, asgi_server, sam_desktop):
    page = asgi_page
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    make_provider(slug="sam-desktop", name="Sam's desktop", base_url=sam_desktop.url, is_default=True)
    alice = User.objects.get(username="alice")
    alice.is_staff = alice.is_superuser = True
    alice.save()
    chat = ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title="Tides")
    add_message(session=chat, role="user", content="Show me `code` and a table")
    add_message(session=chat, role="assistant", content="| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```")
    run = ArenaRun.objects.create(user=alice, prompt="Compare", analyzer_model_id="sam-desktop/qwen3-8b")
    ArenaAnswer.objects.create(run=run, position=0, model_id="sam-desktop/qwen3-8b", content="One", state="complete")

    response = page.request.get(f"{asgi_server.url}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for path in ["/", "/models/", "/chat/", "/chat/new", chat.get_absolute_url(), "/settings/", "/arena/", run.get_absolute_url(),
                 "/admin/", "/admin/providers/provider/", "/admin/boochat/gatewaykey/add/"]:
        page.goto(f"{asgi_server.url}{path}")
        page.wait_for_load_state("networkidle")
    # htmx at work: a favorite toggled in place.
    page.goto(f"{asgi_server.url}/models/")
    page.get_by_role("button", name="Add qwen3-8b").first.click()
    expect(page.locator("#favorites")).to_contain_text("qwen3-8b")
    assert violations == []
