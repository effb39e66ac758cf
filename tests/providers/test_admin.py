import re

import pytest
from django.urls import reverse

from providers.models import Provider, ProviderSource
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


def add_form(**fields):
    return {
        "slug": "sam-desktop", "name": "Sam's desktop", "kind": "llama_swap", "base_url": "http://gpu-box:8080",
        "sidecar_url": "", "api_key_env": "", "enabled": "on",
        "connect_timeout": "3", "read_timeout": "600", "models_timeout": "2", "strategy": "cache",
        "overrides-TOTAL_FORMS": "0", "overrides-INITIAL_FORMS": "0",
        **fields,
    }


def changelist_cells(body, field):
    """{slug: the text of the row's `field` cell} for each row of the changelist's table."""
    table = body[body.index('<table id="result_list"'):]
    table = table[:table.index("</table>")]
    cells = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S):
        slug = re.search(r'<th class="field-slug"><a [^>]*>([^<]*)</a></th>', row)
        cell = re.search(rf'<td class="field-{field}">([^<]*)</td>', row)
        cells[slug.group(1) if slug else None] = cell.group(1) if cell else None
    return cells


def test_changelist_shows_where_each_row_comes_from(admin_client):
    make_provider(slug="from-file", source=ProviderSource.FILE, is_default=True)
    make_provider(slug="by-hand")
    response = admin_client.get(reverse("admin:providers_provider_changelist"))
    assert response.status_code == 200
    assert changelist_cells(response.content.decode(), "source") == {"from-file": "Provider file", "by-hand": "Admin"}


def test_adding_the_first_provider_makes_it_the_default(admin_client):
    response = admin_client.post(reverse("admin:providers_provider_add"), add_form())
    assert response.status_code == 302, response.content.decode()
    provider = Provider.objects.get()
    assert provider.is_default and provider.source == ProviderSource.ADMIN


def test_a_new_default_replaces_the_old_one(admin_client):
    make_provider(slug="old", is_default=True)
    response = admin_client.post(reverse("admin:providers_provider_add"), add_form(is_default="on"))
    assert response.status_code == 302, response.content.decode()
    assert Provider.objects.default().slug == "sam-desktop"
    assert Provider.objects.filter(is_default=True).count() == 1


@pytest.mark.parametrize("fields, error", [
    ({"slug": "Sam/Desktop"}, "no &#x27;/&#x27;"),
    ({"slug": "llama-swap"}, "reserved"),
    ({"base_url": "gpu-box:8080"}, "http:// or https://"),
    ({"api_key_env": "sk-live-123"}, "not an environment variable name"),
    ({"is_default": "on", "enabled": ""}, "default provider must be enabled"),
])
def test_bad_input_is_refused_with_the_reason(admin_client, fields, error):
    response = admin_client.post(reverse("admin:providers_provider_add"), add_form(**fields))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Provider.objects.exists()


def test_slug_cannot_change_after_creation(admin_client):
    provider = make_provider(slug="sam-desktop", is_default=True)
    url = reverse("admin:providers_provider_change", args=[provider.pk])
    response = admin_client.post(url, add_form(slug="renamed", name="Renamed desktop", is_default="on"))
    assert response.status_code == 302, response.content.decode()  # the form was accepted...
    provider.refresh_from_db()
    assert provider.name == "Renamed desktop"  # ...and saved...
    assert provider.slug == "sam-desktop"  # ...all but the slug


def test_rows_from_the_file_are_read_only(admin_client):
    provider = make_provider(slug="sam-desktop", source=ProviderSource.FILE, is_default=True)
    url = reverse("admin:providers_provider_change", args=[provider.pk])
    response = admin_client.get(url)
    assert "edit it there" in response.content.decode()
    assert 'name="base_url"' not in response.content.decode()
    admin_client.post(url, add_form(base_url="http://elsewhere:1", is_default="on"))
    assert Provider.objects.get().base_url == "http://127.0.0.1:9"


def test_make_default_action(admin_client):
    make_provider(slug="a", is_default=True)
    b = make_provider(slug="b")
    admin_client.post(reverse("admin:providers_provider_changelist"), {"action": "make_default", "_selected_action": [b.pk]})
    assert Provider.objects.default() == b


def test_the_default_cannot_be_disabled_by_action(admin_client):
    a = make_provider(slug="a", is_default=True)
    admin_client.post(reverse("admin:providers_provider_changelist"), {"action": "disable", "_selected_action": [a.pk]})
    assert Provider.objects.get(pk=a.pk).enabled


def test_admin_needs_staff(user_client):
    response = user_client.get(reverse("admin:providers_provider_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_test_connection_action_reports_health_and_models(admin_client, sam_desktop):
    up = make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    down = make_provider(slug="gone", base_url="http://127.0.0.1:9")
    response = admin_client.post(
        reverse("admin:providers_provider_changelist"),
        {"action": "test_connection", "_selected_action": [up.pk, down.pk]},
        follow=True,
    )
    body = response.content.decode()
    assert "Provider sam-desktop: up" in body and "3 models (qwen3-30b, qwen3-8b, box2/gpt-oss-20b)" in body
    assert "Provider gone: down: connection refused or host unreachable" in body
