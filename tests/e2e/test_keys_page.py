"""The Keys page in Chromium: a key made shows once in its card; Revoke asks in the page's dialog first."""

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import GatewayKey

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_key_is_made_then_revoked_after_the_dialog_asks(logged_in_page, live_server):
    page = logged_in_page
    page.goto(f"{live_server.url}/settings/keys/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Make the key").click()
    expect(page.locator(".key-created #new-key")).to_contain_text("bc-")
    expect(page.get_by_role("button", name="Copy the new key")).to_be_visible()

    page.get_by_role("button", name="Revoke the key laptop").click()
    dialog = page.get_by_role("dialog", name="Revoke the key “laptop”?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert GatewayKey.objects.get(user=User.objects.get(username="alice")).revoked_at is None

    page.get_by_role("button", name="Revoke the key laptop").click()
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.locator("#keys-heading + .table-card")).to_contain_text("revoked")
    assert GatewayKey.objects.get(user=User.objects.get(username="alice")).revoked_at is not None
