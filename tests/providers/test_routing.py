import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from providers import routing, snapshot
from providers.models import Provider, ProviderKind
from providers.routing import (
    ProviderUnavailable,
    RoutingError,
    UnknownProvider,
    aresolve,
    canonical_model_id,
    resolve,
)
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(hosts):
    return hosts


def send_chat(route):
    """What every caller does with a route: POST the body with the bare wire id."""
    return httpx.post(
        route.chat_completions_url,
        headers=route.headers,
        json={"model": route.wire_model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=5,
    )


def test_local_deepseek_distill_goes_to_its_own_host(registry):
    route = resolve("embedding/deepseek-r1-qwen3-8b")

    assert route.provider == "embedding"
    assert route.kind == ProviderKind.LLAMA_SWAP
    assert route.wire_model == "deepseek-r1-qwen3-8b"
    assert not route.uses_sidecar
    assert "Authorization" not in route.headers
    assert send_chat(route).status_code == 200
    assert [r.json()["model"] for r in registry["embedding"].requests_to("/v1/chat/completions")] == ["deepseek-r1-qwen3-8b"]
    assert registry["deepseek"].requests == []
    assert registry["sam-desktop"].requests == []


def test_deepseek_goes_to_deepseek_with_its_key(registry):
    route = resolve("deepseek/deepseek-v4-flash")

    assert route.kind == ProviderKind.DEEPSEEK
    assert route.chat_completions_url == f"{registry['deepseek'].url}/chat/completions"
    response = send_chat(route)
    assert response.status_code == 200, response.text
    (request,) = registry["deepseek"].requests
    assert request.headers["authorization"] == "Bearer sk-test-deepseek"
    assert request.json()["model"] == "deepseek-v4-flash"
    assert registry["embedding"].requests == []


def test_the_api_key_stays_out_of_the_routes_repr(registry):
    assert "sk-test-deepseek" not in repr(resolve("deepseek/deepseek-v4-flash"))


def test_missing_api_key_is_a_clear_error_not_an_unauthenticated_call(registry, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    with pytest.raises(ProviderUnavailable, match="DEEPSEEK_API_KEY"):
        resolve("deepseek/deepseek-v4-flash")


def test_same_model_name_on_two_hosts_routes_to_two_hosts(registry):
    desktop = resolve("sam-desktop/qwen3-8b")
    small_box = resolve("embedding/qwen3-8b")

    assert desktop.base_url != small_box.base_url
    assert desktop.wire_model == small_box.wire_model == "qwen3-8b"
    send_chat(desktop)
    send_chat(small_box)
    assert len(registry["sam-desktop"].requests_to("/v1/chat/completions")) == 1
    assert len(registry["embedding"].requests_to("/v1/chat/completions")) == 1


def test_peer_model_keeps_its_slash_on_the_wire(registry):
    route = resolve("sam-desktop/box2/gpt-oss-20b")
    assert route.wire_model == "box2/gpt-oss-20b"
    assert send_chat(route).status_code == 200
    assert route.props_url == f"{registry['sam-desktop'].url}/upstream/box2/gpt-oss-20b/props"


def test_sidecar_carries_chat_but_not_the_rest(registry, sam_desktop):
    with type(sam_desktop)() as sidecar:
        make_provider(slug="lab", base_url=registry["embedding"].url, sidecar_url=sidecar.url)
        route = resolve("lab/qwen3-8b")

        assert route.uses_sidecar
        assert route.chat_completions_url == f"{sidecar.url}/v1/chat/completions"
        assert route.api_url("models") == f"{registry['embedding'].url}/v1/models"
        assert send_chat(route).status_code == 200
        assert len(sidecar.requests_to("/v1/chat/completions")) == 1
    assert registry["embedding"].requests == []


def test_bare_and_legacy_ids_resolve_to_the_default_provider(registry):
    assert resolve("qwen3-8b").provider == "sam-desktop"
    assert resolve("llama-swap/qwen3-8b").provider == "sam-desktop"
    assert canonical_model_id("qwen3-8b") == "sam-desktop/qwen3-8b"
    assert canonical_model_id("llama-swap/box2/gpt-oss-20b") == "sam-desktop/box2/gpt-oss-20b"


def test_a_bare_deepseek_name_is_not_guessed_to_be_deepseek(registry):
    # Routing is by provider identity: a bare id always means the default provider.
    assert resolve("deepseek-v4-flash").provider == "sam-desktop"


def test_unknown_provider_is_an_error_and_calls_no_host(registry):
    with pytest.raises(UnknownProvider, match="unknown provider 'nowhere'"):
        resolve("nowhere/qwen3-8b")
    assert all(host.requests == [] for host in registry.values())


@pytest.mark.parametrize("model_id", ["http://127.0.0.1:1/x", "//evil/x", "sam-desktop/../../admin", "", "sam-desktop/"])
def test_ids_that_look_like_urls_or_paths_are_refused(registry, model_id):
    with pytest.raises(RoutingError):
        resolve(model_id)
    assert all(host.requests == [] for host in registry.values())


def test_disabled_provider_is_unavailable(registry):
    make_provider(slug="old-box", enabled=False)
    with pytest.raises(ProviderUnavailable, match="disabled"):
        resolve("old-box/qwen3-8b")


def test_bare_id_without_a_default_provider_is_an_error():
    make_provider(slug="embedding")
    with pytest.raises(RoutingError, match="no default provider"):
        resolve("qwen3-8b")


def test_api_base_per_kind():
    make_provider(slug="swap", base_url="http://gpu-box:8080/", is_default=True)
    make_provider(slug="server", kind=ProviderKind.LLAMA_SERVER, base_url="http://gpu-box:8081")
    make_provider(slug="ds", kind=ProviderKind.DEEPSEEK, base_url="https://api.deepseek.com")
    make_provider(slug="oai", kind=ProviderKind.OPENAI, base_url="https://api.example.com/v1")

    assert resolve("swap/m").api_url("models") == "http://gpu-box:8080/v1/models"
    assert resolve("server/m").props_url == "http://gpu-box:8081/props?model=m"  # the model's own in router mode
    assert resolve("ds/deepseek-chat").chat_completions_url == "https://api.deepseek.com/chat/completions"
    assert resolve("ds/deepseek-chat").props_url is None
    assert resolve("oai/gpt-x").chat_completions_url == "https://api.example.com/v1/chat/completions"


def test_timeouts_come_from_the_provider():
    make_provider(slug="slow", connect_timeout=1.5, read_timeout=900, models_timeout=0.5)
    route = resolve("slow/m")
    assert route.timeout.connect == 1.5
    assert route.timeout.read == 900
    assert route.models_timeout == 0.5


# -- the in-process registry snapshot -------------------------------------------------------------


def test_a_warm_registry_routes_without_a_query(registry, django_assert_num_queries):
    resolve("embedding/qwen3-8b")
    with django_assert_num_queries(0):
        assert resolve("sam-desktop/qwen3-8b").provider == "sam-desktop"
        assert resolve("qwen3-8b").provider == "sam-desktop"


def test_changes_made_in_this_process_route_at_once(registry):
    resolve("embedding/qwen3-8b")
    Provider.objects.filter(slug="embedding").update(enabled=False)  # a bulk write sends no signal
    with pytest.raises(ProviderUnavailable):
        resolve("embedding/qwen3-8b")

    Provider.objects.filter(slug="embedding").update(enabled=True)
    make_provider(slug="gpu2", base_url="http://127.0.0.1:9")
    assert resolve("gpu2/qwen3-8b").base_url == "http://127.0.0.1:9"

    Provider.objects.make_default(Provider.objects.get(slug="embedding"))
    assert resolve("qwen3-8b").provider == "embedding"

    Provider.objects.get(slug="gpu2").delete()
    with pytest.raises(UnknownProvider):
        resolve("gpu2/qwen3-8b")


def test_changes_from_other_processes_route_within_the_ttl(registry, monkeypatch):
    resolve("embedding/qwen3-8b")
    with connection.cursor() as cursor:  # as another process would: no signal reaches this one
        cursor.execute("UPDATE providers_provider SET enabled = %s WHERE slug = %s", [False, "embedding"])
    assert resolve("embedding/qwen3-8b").provider == "embedding"  # the snapshot is still fresh

    now = time.monotonic()
    monkeypatch.setattr(snapshot.time, "monotonic", lambda: now + routing.registry.ttl + 0.1)
    with pytest.raises(ProviderUnavailable):
        resolve("embedding/qwen3-8b")


def test_async_callers_share_the_snapshot(registry):
    async def both():
        return await aresolve("embedding/qwen3-8b"), await aresolve("qwen3-8b")

    first, bare = async_to_sync(both)()
    assert (first.provider, bare.provider) == ("embedding", "sam-desktop")
