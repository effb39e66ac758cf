import re

import pytest
from django.urls import reverse

from settings_app.models import Favorite
from settings_app.picker import dom_id
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_hosts(sam_desktop, embedding_host):
    make_provider(slug="sam-desktop", name="Sam's desktop", base_url=sam_desktop.url, is_default=True)
    make_provider(slug="embedding", name="Embedding box", base_url=embedding_host.url)


def section_order(html):
    return re.findall(r'<section [^>]*id="([^"]+)"', html)


def user_of(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def test_favorites_come_first_then_one_section_per_provider(user_client, two_hosts):
    Favorite.objects.toggle(user=user_of(user_client), model_id="embedding/qwen3-8b")
    response = user_client.get(reverse("picker"))
    assert response.status_code == 200
    assert response.template_name == "picker.html"
    html = response.content.decode()
    assert section_order(html) == ["favorites", "provider-sam-desktop", "provider-embedding"]
    picker = response.context_data["picker"]
    assert [r.model.id for r in picker.favorites] == ["embedding/qwen3-8b"]
    # the favorite also stays in its provider group
    embedding = next(g for g in picker.groups if g.provider.slug == "embedding")
    assert [r.favorite for r in embedding.rows if r.model.model == "qwen3-8b"] == [True]
    assert html.count(f'id="fav-{dom_id("embedding/qwen3-8b")}"') == 1
    assert html.count(f'id="{dom_id("embedding/qwen3-8b")}"') == 1


def test_rows_show_loaded_state_context_and_a_named_toggle(user_client, two_hosts):
    html = user_client.get(reverse("picker")).content.decode()
    row = html.split(f'id="{dom_id("sam-desktop/qwen3-30b")}"')[1].split("</li>")[0]
    assert "loaded" in row and "32768 ctx" in row and "Qwen3 30B" in row
    assert 'aria-pressed="false"' in row
    assert 'aria-label="Add qwen3-30b · sam-desktop to favorites"' in row
    unloaded = html.split(f'id="{dom_id("sam-desktop/qwen3-8b")}"')[1].split("</li>")[0]
    assert "not loaded" in unloaded


def test_same_model_on_two_hosts_gives_two_rows_and_two_favorites(user_client, two_hosts):
    html = user_client.get(reverse("picker")).content.decode()
    assert dom_id("sam-desktop/qwen3-8b") != dom_id("embedding/qwen3-8b")
    assert f'id="{dom_id("sam-desktop/qwen3-8b")}"' in html and f'id="{dom_id("embedding/qwen3-8b")}"' in html

    user_client.post(reverse("favorite_toggle"), {"model_id": "sam-desktop/qwen3-8b"}, headers={"HX-Request": "true"})
    assert Favorite.objects.ids_for(user_of(user_client)) == ["sam-desktop/qwen3-8b"]
    picker = user_client.get(reverse("picker")).context_data["picker"]
    embedding = next(g for g in picker.groups if g.provider.slug == "embedding")
    assert not next(r for r in embedding.rows if r.model.model == "qwen3-8b").favorite


def test_htmx_toggle_returns_the_row_and_the_favorites_section(user_client, two_hosts):
    url = reverse("favorite_toggle")
    form = {"model_id": "sam-desktop/box2/gpt-oss-20b"}
    response = user_client.post(url, form, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.template_name == "picker.html#toggle_result"
    assert "HX-Request" in response["Vary"]
    html = response.content.decode()
    assert '<section id="favorites"' in html and 'hx-swap-oob="true"' in html
    row_id = dom_id("sam-desktop/box2/gpt-oss-20b")
    assert f'id="fav-{row_id}"' in html  # now listed in Favorites
    group_row = html.split(f'<li id="{row_id}"')[1].split("</li>")[0]
    assert 'hx-swap-oob="true"' in group_row and 'aria-pressed="true"' in group_row
    assert Favorite.objects.ids_for(user_of(user_client)) == ["sam-desktop/box2/gpt-oss-20b"]

    html = user_client.post(url, form, headers={"HX-Request": "true"}).content.decode()
    assert f'id="fav-{row_id}"' not in html
    assert Favorite.objects.count() == 0


def test_plain_form_toggle_redirects_back(user_client, two_hosts):
    response = user_client.post(reverse("favorite_toggle"), {"model_id": "sam-desktop/qwen3-8b", "next": "/models/?q=qwen"})
    assert response.status_code == 302
    assert response["Location"] == "/models/?q=qwen"
    response = user_client.post(reverse("favorite_toggle"), {"model_id": "sam-desktop/qwen3-8b", "next": "https://evil.example/"})
    assert response["Location"] == reverse("picker")


def test_toggle_of_a_bare_id_stores_the_composite_id(user_client, two_hosts):
    user_client.post(reverse("favorite_toggle"), {"model_id": "qwen3-8b"})
    assert Favorite.objects.ids_for(user_of(user_client)) == ["sam-desktop/qwen3-8b"]


def test_toggle_without_a_model_is_refused(user_client, two_hosts):
    response = user_client.post(reverse("favorite_toggle"), headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "the model id is empty" in response.content.decode()
    response = user_client.post(reverse("favorite_remove"), headers={"HX-Request": "true"})
    assert response.status_code == 400


def test_toggle_of_an_unknown_provider_is_refused(user_client, two_hosts):
    response = user_client.post(reverse("favorite_toggle"), {"model_id": "nowhere/qwen3-8b"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "unknown provider 'nowhere'" in response.content.decode()
    assert not Favorite.objects.exists()


def test_unavailable_favorites_are_hidden_in_the_picker_and_listed_in_settings(user_client, two_hosts):
    user = user_of(user_client)
    Favorite.objects.toggle(user=user, model_id="sam-desktop/qwen3-8b")
    Favorite.objects.toggle(user=user, model_id="sam-desktop/retired-model")

    picker = user_client.get(reverse("picker")).context_data["picker"]
    assert [r.model.id for r in picker.favorites] == ["sam-desktop/qwen3-8b"]
    assert picker.unavailable_favorites == ["sam-desktop/retired-model"]

    response = user_client.get(reverse("settings"))
    html = response.content.decode()
    retired = html.split("<code>sam-desktop/retired-model</code>")[1].split("</li>")[0]
    assert "unavailable" in retired
    assert 'aria-label="Remove sam-desktop/retired-model from favorites"' in retired
    assert Favorite.objects.count() == 2

    response = user_client.post(reverse("favorite_remove"), {"model_id": "sam-desktop/retired-model"})
    assert response.status_code == 302
    assert Favorite.objects.ids_for(user) == ["sam-desktop/qwen3-8b"]


def test_a_down_provider_is_marked_and_the_page_still_renders(user_client, sam_desktop):
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    make_provider(slug="gone", name="Gone box", base_url="http://127.0.0.1:9")
    html = user_client.get(reverse("picker")).content.decode()
    gone = html.split('id="provider-gone"')[1].split("</section>")[0]
    assert 'class="state state-down"' in gone
    assert "Last error: connection refused or host unreachable" in gone
    assert "never reached" in gone


def test_server_side_filter(user_client, two_hosts):
    picker = user_client.get(reverse("picker"), {"q": "QWEN 8b"}).context_data["picker"]
    assert sorted(r.model.id for g in picker.groups for r in g.rows) == [
        "embedding/deepseek-r1-qwen3-8b", "embedding/qwen3-8b", "sam-desktop/qwen3-8b",
    ]


def test_settings_page_saves_the_default_model_through_the_compact_picker(user_client, two_hosts):
    html = user_client.get(reverse("settings")).content.decode()
    assert '<select name="default_model"' in html
    assert '<optgroup label="Sam&#x27;s desktop">' in html
    response = user_client.post(reverse("settings"), {"default_model": "embedding/qwen3-8b"})
    assert response.status_code == 302
    html = user_client.get(reverse("settings")).content.decode()
    assert '<option value="embedding/qwen3-8b" selected>' in html
    response = user_client.post(reverse("settings"), {"default_model": "nowhere/x"})
    assert "unknown provider" in response.content.decode()


def test_api_models_lists_composite_ids_without_favorites(user_client, two_hosts):
    Favorite.objects.toggle(user=user_of(user_client), model_id="embedding/qwen3-8b")
    payload = user_client.get(reverse("api_models")).json()
    assert set(payload) == {"providers", "models"}
    assert [p["slug"] for p in payload["providers"]] == ["sam-desktop", "embedding"]
    ids = [m["id"] for m in payload["models"]]
    assert "sam-desktop/qwen3-8b" in ids and "embedding/qwen3-8b" in ids
    assert "favorite" not in str(payload).lower()


def test_pages_and_apis_need_login(client):
    assert client.get(reverse("picker")).status_code == 302
    assert client.get(reverse("api_models")).status_code == 401
    assert client.post(reverse("favorite_toggle"), {"model_id": "a/b"}).status_code == 302
