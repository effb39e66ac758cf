import time

import pytest

from providers.catalog import (
    DOWN,
    UP,
    ListingError,
    cache_key,
    load_catalog,
    parse_model_list,
    wait_for_background_refreshes,
)
from providers.models import ModelOverride, Provider, ProviderKind
from providers.routing import endpoint_for
from tests.factories import make_provider
from tests.fakes.fixtures import json_fixture
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db


def status_of(catalog, slug):
    return next(p for p in catalog.providers if p.slug == slug)


def test_v250_listing_gives_composite_ids_loaded_state_and_context(sam_desktop):
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    desktop = status_of(load_catalog(), "sam-desktop")

    assert desktop.state == UP
    models = {m.id: m for m in desktop.models}
    assert set(models) == {"sam-desktop/qwen3-30b", "sam-desktop/qwen3-8b", "sam-desktop/box2/gpt-oss-20b"}
    assert models["sam-desktop/qwen3-30b"].loaded is True
    assert models["sam-desktop/qwen3-30b"].context_size == 32768
    assert models["sam-desktop/qwen3-30b"].upstream_name == "Qwen3 30B"
    assert models["sam-desktop/qwen3-8b"].loaded is False
    assert models["sam-desktop/qwen3-8b"].context_size is None
    assert models["sam-desktop/box2/gpt-oss-20b"].display_name == "box2/gpt-oss-20b"
    # status in /v1/models made /running unnecessary
    assert sam_desktop.requests_to("/running") == []


@pytest.mark.parametrize("version", ["v150", "v226"])
def test_older_llama_swap_reports_loaded_models_through_running(version):
    with FakeLlamaSwap([FakeModel("qwen3-30b", loaded=True), FakeModel("qwen3-8b")], version=version) as host:
        make_provider(slug="old", base_url=host.url, is_default=True)
        models = {m.model: m for m in load_catalog().models}
        assert len(host.requests_to("/running")) == 1
    assert models["qwen3-30b"].loaded is True
    assert models["qwen3-8b"].loaded is False


def test_llama_server_listing_carries_n_ctx():
    entries, skipped = parse_model_list(json_fixture("llama-server/03-a-v1-models.http"))
    assert entries == [{"id": "qwen3-8b", "aliases": [], "name": "", "embedding": False, "loaded": None,
                        "context_size": 2048}]
    assert skipped == 0


def test_odd_entries_are_skipped_not_fatal():
    payload = {"object": "list", "data": [
        {"id": 5}, "qwen3-8b", None, {"id": "a b"}, {"id": "../x"}, {"no": "id"},
        {"id": "good", "status": "loaded", "meta": [], "context_length": -3, "name": 7},
        {"id": "good2", "status": {"value": "weird"}, "meta": {"n_ctx": True}},
    ]}
    entries, skipped = parse_model_list(payload)
    assert [e["id"] for e in entries] == ["good", "good2"]
    assert all(e["loaded"] is None and e["context_size"] is None and e["name"] == "" for e in entries)
    assert skipped == 6


@pytest.mark.parametrize("payload", [{"object": "list"}, {"data": "nope"}, "text", 42])
def test_a_listing_without_a_data_array_is_an_error(payload):
    with pytest.raises(ListingError, match="not an OpenAI list"):
        parse_model_list(payload)


def test_deepseek_models_are_listed_with_the_key(deepseek_host, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", deepseek_host.api_key)
    make_provider(slug="deepseek", kind=ProviderKind.DEEPSEEK, base_url=deepseek_host.url, api_key_env="DEEPSEEK_API_KEY", is_default=True)
    deepseek = status_of(load_catalog(), "deepseek")
    assert deepseek.state == UP
    assert [m.id for m in deepseek.models] == ["deepseek/deepseek-v4-flash", "deepseek/deepseek-v4-pro"]
    assert all(m.loaded is None and m.context_size is None for m in deepseek.models)


def test_a_provider_without_its_key_is_down_and_never_called(deepseek_host, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    make_provider(slug="deepseek", kind=ProviderKind.DEEPSEEK, base_url=deepseek_host.url, api_key_env="DEEPSEEK_API_KEY")
    deepseek = status_of(load_catalog(), "deepseek")
    assert deepseek.state == DOWN
    assert "DEEPSEEK_API_KEY" in deepseek.last_error
    assert deepseek_host.requests == []


def test_same_model_on_two_hosts_gives_two_entries(sam_desktop, embedding_host):
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    make_provider(slug="embedding", base_url=embedding_host.url)
    catalog = load_catalog()
    qwens = [m for m in catalog.models if m.model == "qwen3-8b"]
    assert sorted(m.id for m in qwens) == ["embedding/qwen3-8b", "sam-desktop/qwen3-8b"]
    keys = {cache_key(endpoint_for(p)) for p in Provider.objects.all()}
    assert len(keys) == 2 and all(":sam-desktop:" in k or ":embedding:" in k for k in keys)


def test_overrides_hide_rename_and_size_models(sam_desktop):
    provider = make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    ModelOverride.objects.create(provider=provider, model="qwen3-8b", hidden=True)
    ModelOverride.objects.create(provider=provider, model="qwen3-30b", display_name="Qwen3 30B A3B", context_size=16384)
    models = {m.model: m for m in load_catalog().models}
    assert "qwen3-8b" not in models
    assert models["qwen3-30b"].display_name == "Qwen3 30B A3B"
    assert models["qwen3-30b"].label == "Qwen3 30B A3B · sam-desktop"
    assert models["qwen3-30b"].context_size == 16384


def test_disabled_providers_are_not_listed(sam_desktop):
    make_provider(slug="off", base_url=sam_desktop.url, enabled=False)
    assert load_catalog().providers == ()
    assert sam_desktop.requests == []


def test_a_refused_connection_marks_the_provider_down_with_the_reason(sam_desktop):
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    make_provider(slug="gone", base_url="http://127.0.0.1:9")
    catalog = load_catalog()
    assert status_of(catalog, "sam-desktop").state == UP
    gone = status_of(catalog, "gone")
    assert gone.state == DOWN
    assert gone.last_error == "connection refused or host unreachable"
    assert gone.models == ()


def test_an_error_status_marks_the_provider_down():
    with FakeLlamaSwap() as host:
        make_provider(slug="broken", base_url=host.url + "/nothing-here")
        broken = status_of(load_catalog(), "broken")
    assert broken.state == DOWN
    assert "HTTP 404" in broken.last_error


def test_a_hanging_host_costs_at_most_its_timeout(sam_desktop):
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    with FakeLlamaSwap() as hanging:
        hanging.hang = True
        make_provider(slug="hangs", base_url=hanging.url, models_timeout=0.3)
        started = time.monotonic()
        catalog = load_catalog()
        elapsed = time.monotonic() - started
    assert status_of(catalog, "hangs").state == DOWN
    assert status_of(catalog, "hangs").last_error == "no answer within 0.3 s"
    assert status_of(catalog, "sam-desktop").state == UP
    # Bounded by the timeout (plus scheduling slack), not by the host: without it this would not return.
    assert elapsed < 0.3 + 2.5


def test_the_cached_list_is_served_while_the_host_is_down(settings):
    settings.BOOCHAT_CATALOG_TTL = 0
    with FakeLlamaSwap([FakeModel("qwen3-8b")]) as host:
        make_provider(slug="box", base_url=host.url, models_timeout=0.3, is_default=True)
        assert [m.id for m in load_catalog().models] == ["box/qwen3-8b"]
        host.hang = True

        started = time.monotonic()
        stale = load_catalog()  # served from the cache; the refresh runs in the background
        served_in = time.monotonic() - started
        assert [m.id for m in stale.models] == ["box/qwen3-8b"]
        assert served_in < 0.3  # did not wait for the hanging host
        wait_for_background_refreshes(10)

        after = status_of(load_catalog(background=False), "box")
    assert after.state == DOWN
    assert after.last_error == "no answer within 0.3 s"
    assert [m.id for m in after.models] == ["box/qwen3-8b"]
    assert after.refreshed_at is not None


def test_a_down_hosts_cached_models_are_not_shown_as_loaded(settings):
    settings.BOOCHAT_CATALOG_TTL = 0
    with FakeLlamaSwap([FakeModel("qwen3-8b", loaded=True)]) as host:
        make_provider(slug="box", base_url=host.url, models_timeout=0.3, is_default=True)
        assert [m.loaded for m in load_catalog(background=False).models] == [True]
        host.hang = True
        load_catalog()
        wait_for_background_refreshes(10)
        after = status_of(load_catalog(background=False), "box")
    assert after.state == DOWN and [(m.id, m.loaded) for m in after.models] == [("box/qwen3-8b", None)]


def test_a_fresh_cache_is_not_refetched(sam_desktop):
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    load_catalog()
    load_catalog()
    assert len(sam_desktop.requests_to("/v1/models")) == 1


def test_changing_a_providers_address_drops_its_cached_list(sam_desktop, embedding_host):
    provider = make_provider(slug="box", base_url=sam_desktop.url, is_default=True)
    assert "box/qwen3-30b" in {m.id for m in load_catalog().models}
    provider.base_url = embedding_host.url
    provider.save()
    assert "box/nomic-embed" in {m.id for m in load_catalog().models}


def test_payload_has_providers_and_models_but_no_favorites(sam_desktop, django_user_model):
    from settings_app.models import Favorite

    user = django_user_model.objects.create_user("alice")
    Favorite.objects.toggle(user=user, model_id="sam-desktop/qwen3-8b")
    make_provider(slug="sam-desktop", base_url=sam_desktop.url, is_default=True)
    payload = load_catalog().as_json()
    assert set(payload) == {"providers", "models"}
    assert payload["providers"][0]["slug"] == "sam-desktop"
    assert payload["providers"][0]["state"] == "up"
    assert {"id", "provider", "model", "display_name", "loaded", "context_size", "embedding"} == set(payload["models"][0])
    assert "favorite" not in str(payload).lower()

