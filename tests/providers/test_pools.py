"""Model pools: a pool's model goes to the member whose host has it loaded (or is idle), sticks to the
chat's member, fails over before the first byte, and names the member that answered."""

import json
import logging
import time

import openai
import pytest
from django.core.cache import cache
from django.urls import reverse

from boochat.gateway.keys import create_key
from boochat.models import ArenaAnswer, ChatSession
from providers.catalog import load_catalog
from providers.models import ModelOverride, Provider, ProviderKind
from providers.provider_file import ProviderFileError, parse_provider_file
from tests.boochat.test_chat import chat_requests, new_session, send
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db

MEMBERS = ["sam-desktop/qwen3-8b", "embedding/qwen3-8b"]


@pytest.fixture
def fleet(hosts):
    pool = Provider.objects.create(slug="fleet", name="Any box", kind=ProviderKind.POOL)
    ModelOverride.objects.create(provider=pool, model="qwen3-8b", display_name="Qwen3 8B (any box)", members=MEMBERS)
    return hosts


def fresh_lists():
    """The hosts' model lists as they are now (the catalog keeps them a few seconds otherwise)."""
    cache.clear()
    load_catalog()


def served(session):
    return [(m.served_by, m.provider) for m in session.messages.filter(role="assistant")]


# -- choosing a member ------------------------------------------------------------------------------


def test_a_pool_prefers_the_member_whose_model_is_loaded(user_client, fleet, caplog):
    fleet["embedding"].models[0].loaded = True  # embedding/qwen3-8b is loaded; sam-desktop's is not
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    with caplog.at_level(logging.INFO, logger="providers.pools"):
        send(user_client, chat, "hi")
    assert len(chat_requests(fleet["embedding"])) == 1 and chat_requests(fleet["sam-desktop"]) == []
    assert served(chat) == [("embedding/qwen3-8b", "embedding")]
    assert chat.messages.get(role="assistant").model_id == "fleet/qwen3-8b"
    assert "fleet/qwen3-8b: embedding/qwen3-8b: loaded; sam-desktop/qwen3-8b:" in caplog.text
    assert "qwen3-8b · embedding" in user_client.get(chat.get_absolute_url()).content.decode()


def test_a_pool_chats_page_chooses_the_member_once(user_client, fleet, caplog):
    fleet["embedding"].models[0].loaded = True
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    with caplog.at_level(logging.INFO, logger="providers.pools"):
        page = user_client.get(chat.get_absolute_url())
    assert [r.getMessage() for r in caplog.records if r.name == "providers.pools"] == [
        "fleet/qwen3-8b: embedding/qwen3-8b: loaded; sam-desktop/qwen3-8b: in list order"]
    assert page.context_data["usage"]["available"] == 1024


def test_then_a_host_with_nothing_loaded_then_the_list_order(user_client, fleet):
    # sam-desktop has qwen3-30b loaded (a swap would unload it); the embedding box has nothing loaded.
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, chat, "hi")
    assert served(chat) == [("embedding/qwen3-8b", "embedding")]
    assert chat_requests(fleet["sam-desktop"]) == []


def test_a_chat_stays_with_the_member_that_served_it_while_it_is_loaded(user_client, fleet):
    fleet["sam-desktop"].models[1].loaded = True  # sam-desktop/qwen3-8b loaded
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, chat, "one")
    fleet["embedding"].models[0].loaded = True  # now both have it loaded; the list order says sam-desktop
    ModelOverride.objects.filter(model="qwen3-8b", provider__slug="fleet").update(members=MEMBERS[::-1])
    fresh_lists()
    send(user_client, chat, "two")
    assert served(chat) == [("sam-desktop/qwen3-8b", "sam-desktop")] * 2  # stuck to its member
    other = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, other, "hi")
    assert served(other) == [("embedding/qwen3-8b", "embedding")]  # a new chat takes the list order


def test_a_down_host_is_skipped_without_waiting_for_it(user_client, fleet):
    with FakeLlamaSwap([FakeModel("qwen3-8b", loaded=True)]) as hung:
        make_provider(slug="hung", base_url=hung.url)
        ModelOverride.objects.filter(model="qwen3-8b", provider__slug="fleet").update(members=["hung/qwen3-8b", *MEMBERS])
        hung.hang = True
        fresh_lists()  # its list times out: the host is down
        hung.requests.clear()
        chat = new_session(user_client, "fleet/qwen3-8b", title="t")
        started = time.monotonic()
        send(user_client, chat, "hi")
        assert time.monotonic() - started < 1.5  # far below its 600 s read timeout
        assert hung.requests_to("/v1/chat/completions") == []
    assert served(chat)[0][0] in MEMBERS


# -- failover ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["refused", "500", "503"])
def test_a_failing_member_hands_the_request_to_the_next_before_the_first_byte(user_client, fleet, fault, caplog):
    fleet["sam-desktop"].models[1].loaded = True
    fresh_lists()  # sam-desktop's qwen3-8b is loaded: it is chosen first
    if fault == "refused":
        fleet["sam-desktop"].stop()
    else:
        fleet["sam-desktop"].fault, fleet["sam-desktop"].fault_paths = fault, {"/v1/chat/completions"}
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    with caplog.at_level(logging.INFO, logger="providers.upstream"):
        send(user_client, chat, "hi")
    answer = chat.messages.get(role="assistant")
    assert answer.state == "complete" and (answer.served_by, answer.provider) == ("embedding/qwen3-8b", "embedding")
    assert [r["messages"] for r in chat_requests(fleet["embedding"])] == [[{"role": "user", "content": "hi"}]]
    assert "sam-desktop/qwen3-8b: sam-desktop " in caplog.text and "trying embedding/qwen3-8b" in caplog.text


def test_a_failure_after_the_first_byte_is_reported_not_retried(user_client, fleet):
    fleet["sam-desktop"].models[1].loaded = True
    fresh_lists()
    fleet["sam-desktop"].drop_after = 3
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, chat, "hi")
    answer = chat.messages.get(role="assistant")
    assert answer.state == "interrupted" and answer.served_by == "sam-desktop/qwen3-8b" and answer.content
    assert chat_requests(fleet["embedding"]) == []


def test_every_member_failing_says_so_with_the_last_error(user_client, fleet):
    for host in ("sam-desktop", "embedding"):
        fleet[host].fault, fleet[host].fault_paths = "503", {"/v1/chat/completions"}
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, chat, "hi")
    answer = chat.messages.get(role="assistant")
    assert answer.state == "failed" and "is not ready" in answer.error


# -- everywhere a composite id goes -----------------------------------------------------------------


def test_the_pool_is_listed_in_the_picker_favoritable_and_in_the_gateway(user_client, gateway, fleet):
    page = user_client.get(reverse("picker")).content.decode()
    assert "Any box" in page and "Qwen3 8B (any box)" in page
    user_client.post(reverse("favorite_toggle"), {"star": "fleet/qwen3-8b"})
    assert 'value="fleet/qwen3-8b"' in user_client.get(reverse("chat_index")).content.decode()
    _, key = create_key(name="t")
    models = gateway.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert "fleet/qwen3-8b" in [m["id"] for m in models]


def test_the_gateway_answers_with_the_pool_id_names_the_member_and_fails_over(fleet, asgi_server):
    fleet["sam-desktop"].models[1].loaded = True
    fresh_lists()
    fleet["sam-desktop"].fault, fleet["sam-desktop"].fault_paths = "503", {"/v1/chat/completions"}
    _, key = create_key(name="sdk")
    client = openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="fleet/qwen3-8b", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-booChat-served-by"] == "embedding/qwen3-8b"
    assert raw.parse().model == "fleet/qwen3-8b"
    chunks = list(client.chat.completions.create(model="fleet/qwen3-8b", stream=True,
                                                 messages=[{"role": "user", "content": "hi"}]))
    assert chunks and {c.model for c in chunks} == {"fleet/qwen3-8b"}
    fleet["sam-desktop"].fault = None
    plain = client.chat.completions.create(model="sam-desktop/qwen3-30b", messages=[{"role": "user", "content": "hi"}])
    assert plain.model == "sam-desktop/qwen3-30b"  # the composite id the client sent, not the host's own
    assert len(fleet["embedding"].requests_to("/v1/chat/completions")) == 2


def test_an_arena_column_names_its_member(user_client, fleet):
    fleet["embedding"].models[0].loaded = True
    fresh_lists()
    response = user_client.post(reverse("arena_new"), {"prompt": "Which is faster?", "model_1": "fleet/qwen3-8b",
                                                       "model_2": "sam-desktop/qwen3-30b"})
    assert response.status_code == 302
    first = ArenaAnswer.objects.get(position=0)
    user_client.post(reverse("arena_answer_stream", args=[first.pk]))
    first.refresh_from_db()
    assert (first.model_id, first.served_by, first.provider) == ("fleet/qwen3-8b", "embedding/qwen3-8b", "embedding")
    assert "member embedding/qwen3-8b" in user_client.get(first.run.get_absolute_url()).content.decode()


def test_a_chat_on_a_pool_shows_the_members_context_size(user_client, fleet):
    fleet["embedding"].models[0].loaded = True
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    usage = user_client.get(chat.get_absolute_url()).context_data["usage"]
    assert usage["available"] == 1024  # embedding's qwen3-8b, the member a send would go to


# -- declaring pools ------------------------------------------------------------------------------------


def pool_file(members, **pool):
    return json.dumps({"providers": [
        {"slug": "sam-desktop", "kind": "llama_swap", "base_url": "http://127.0.0.1:9", "default": True},
        {"slug": "fleet", "name": "Any box", "kind": "pool",
         "models": {"qwen3-8b": {"members": members, "display_name": "Qwen3 8B (any box)"}}, **pool},
    ]})


def test_the_provider_file_declares_pools():
    (_, fleet) = parse_provider_file("p.json", pool_file(["sam-desktop/qwen3-8b"]))
    assert fleet.kind == "pool" and fleet.base_url == ""
    assert fleet.overrides["qwen3-8b"].members == ("sam-desktop/qwen3-8b",)


@pytest.mark.parametrize("members, pool, field, reason", [
    (["gone/qwen3-8b"], {}, "models.qwen3-8b.members", "unknown provider 'gone'"),
    (["fleet/qwen3-8b"], {}, "models.qwen3-8b.members", "a pool cannot be a member of a pool"),
    (["qwen3-8b"], {}, "models.qwen3-8b.members", "is not a composite id"),
    ([], {}, "models.qwen3-8b.members", "must list its members"),
    (["sam-desktop/a", "sam-desktop/a"], {}, "models.qwen3-8b.members", "twice"),
    (["sam-desktop/qwen3-8b"], {"base_url": "http://x:1"}, "base_url", "a pool has no address"),
])
def test_the_provider_file_refuses_a_bad_pool_naming_the_entry(members, pool, field, reason):
    with pytest.raises(ProviderFileError) as caught:
        parse_provider_file("p.json", pool_file(members, **pool))
    assert caught.value.entry == "providers[1] ('fleet')" and caught.value.field == field
    assert reason in caught.value.reason


def test_only_a_pools_models_have_members():
    document = json.dumps({"providers": [{"slug": "a", "kind": "llama_swap", "base_url": "http://x:1",
                                          "models": {"m": {"members": ["a/b"]}}}]})
    with pytest.raises(ProviderFileError, match="only a pool's models have members"):
        parse_provider_file("p.json", document)


def test_admin_checks_a_pools_members(admin_client, hosts):
    pool = Provider.objects.create(slug="fleet", name="Any box", kind=ProviderKind.POOL)
    url = reverse("admin:providers_modeloverride_add")
    bad = admin_client.post(url, {"provider": pool.pk, "model": "qwen3-8b", "members": '["nowhere/qwen3-8b"]',
                                  "purpose": ""})
    assert bad.status_code == 200 and "unknown provider" in bad.content.decode()
    good = admin_client.post(url, {"provider": pool.pk, "model": "qwen3-8b", "members": json.dumps(MEMBERS), "purpose": ""})
    assert good.status_code == 302 and ModelOverride.objects.get(provider=pool).members == MEMBERS
    address = admin_client.post(reverse("admin:providers_provider_add"), {
        "slug": "pool2", "name": "p", "kind": "pool", "base_url": "http://x:1", "enabled": "on",
        "connect_timeout": 3, "read_timeout": 600, "models_timeout": 2, "overrides-TOTAL_FORMS": 0,
        "overrides-INITIAL_FORMS": 0})
    assert address.status_code == 200 and "A pool has no address" in address.content.decode()
    assert not ChatSession.objects.exists()


def test_a_model_id_outside_latin_1_is_named_percent_encoded(gateway, hosts):
    with FakeLlamaSwap([FakeModel("модель", loaded=True)]) as host:
        make_provider(slug="ru", base_url=host.url)
        _, key = create_key(name="t")
        response = gateway.post("/v1/chat/completions", json={"model": "ru/модель", "messages": [{"role": "user", "content": "hi"}]},
                                headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.json()["model"] == "ru/модель"
    assert response.headers["X-BooChat-Served-By"] == "ru/%D0%BC%D0%BE%D0%B4%D0%B5%D0%BB%D1%8C"


def test_a_pool_as_task_model_writes_titles_on_its_loaded_member(user_client, fleet, settings):
    settings.BOOCHAT_TASK_MODEL = "fleet/qwen3-8b"
    fleet["embedding"].models[0].loaded = True  # the pool's loaded member; sam-desktop's is not
    fresh_lists()
    chat = new_session(user_client, "sam-desktop/qwen3-30b")
    send(user_client, chat, "hi")
    (title,) = chat_requests(fleet["embedding"])
    assert title["stream"] is False and title["model"] == "qwen3-8b"
    assert [r["model"] for r in chat_requests(fleet["sam-desktop"])] == ["qwen3-30b"]  # no swap for the title


# -- hosts that come back, members tried last, ranking, timeouts ------------------------------------


def gateway_chat(gateway, key, model="fleet/qwen3-8b", content="hi"):
    return gateway.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]},
                        headers={"Authorization": f"Bearer {key}"})


def test_a_member_marked_down_comes_back_by_itself_under_gateway_traffic_alone(fleet, gateway, settings):
    settings.BOOCHAT_CATALOG_TTL = 0  # every list is due for a refresh at once: no waiting in the test
    ModelOverride.objects.filter(model="qwen3-8b", provider__slug="fleet").update(members=MEMBERS[::-1])
    fleet["embedding"].models[0].loaded = True  # first in the list and loaded: the member while its host is up
    fleet["embedding"].fault, fleet["embedding"].fault_paths = "500", {"/v1/models"}
    fresh_lists()  # the embedding box's list failed: it is marked down
    fleet["embedding"].fault = None  # healthy again; only gateway requests follow, no page asks for the catalog
    _, key = create_key(name="agent")
    served_by, deadline = [], time.monotonic() + 10
    while "embedding/qwen3-8b" not in served_by and time.monotonic() < deadline:
        # New prompts each time: a prompt a member served before would go back to it (its cache).
        response = gateway_chat(gateway, key, content=f"hi {len(served_by)}")
        assert response.status_code == 200
        served_by.append(response.headers["X-BooChat-Served-By"])
    assert served_by[-1] == "embedding/qwen3-8b"


def test_a_member_marked_down_is_still_tried_when_every_other_member_failed(fleet, gateway, settings, caplog):
    settings.BOOCHAT_CATALOG_TTL = 3600  # the list that says "down" stays: no refresh comes to the rescue
    fleet["embedding"].fault, fleet["embedding"].fault_paths = "500", {"/v1/models"}
    fresh_lists()
    fleet["embedding"].fault = None  # healthy, but still marked down
    fleet["sam-desktop"].stop()  # the only member marked up is gone
    _, key = create_key(name="agent")
    with caplog.at_level(logging.INFO, logger="providers.pools"):
        response = gateway_chat(gateway, key)
    assert response.status_code == 200 and response.headers["X-BooChat-Served-By"] == "embedding/qwen3-8b"
    assert "embedding/qwen3-8b: embedding is down, tried last" in caplog.text
    assert len(fleet["embedding"].requests_to("/v1/chat/completions")) == 1


def test_a_member_with_the_model_loaded_goes_before_an_idle_host_listed_first(user_client, fleet):
    fleet["sam-desktop"].models[0].loaded = False  # sam-desktop, first in the list, has nothing loaded
    fleet["embedding"].models[0].loaded = True  # the embedding box has the pool's model loaded
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, chat, "hi")
    assert served(chat) == [("embedding/qwen3-8b", "embedding")]
    assert chat_requests(fleet["sam-desktop"]) == []


def test_a_read_timeout_is_not_failed_over_the_request_is_not_sent_twice(fleet, gateway):
    Provider.objects.filter(slug="sam-desktop").update(read_timeout=0.5)
    fleet["sam-desktop"].models[1].loaded = True  # sam-desktop's qwen3-8b is chosen first
    fresh_lists()
    fleet["sam-desktop"].first_byte_delay = 30  # it takes the request, then says nothing
    _, key = create_key(name="agent")
    response = gateway_chat(gateway, key)
    assert response.status_code == 504 and "did not answer within 0.5 s" in response.json()["error"]["message"]
    assert len(fleet["sam-desktop"].requests_to("/v1/chat/completions")) == 1
    assert fleet["embedding"].requests_to("/v1/chat/completions") == []  # it may be generating on sam-desktop


def test_a_pools_context_size_is_its_smallest_members_everywhere(user_client, gateway, fleet):
    sam, small = fleet["sam-desktop"].models[1], fleet["embedding"].models[0]
    sam.loaded, sam.context_length = True, 2048  # chosen first, lists 2,048 tokens
    small.context_length = 1024  # lists 1,024 tokens
    fresh_lists()
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    fleet["sam-desktop"].fault, fleet["sam-desktop"].fault_paths = "503", {"/v1/chat/completions"}
    send(user_client, chat, "hi")  # answered by the 1,024-token member
    assert served(chat) == [("embedding/qwen3-8b", "embedding")]
    fleet["sam-desktop"].fault = None
    usage = user_client.get(chat.get_absolute_url()).context_data["usage"]
    assert usage["available"] == 1024
    listed = {m["id"]: m for m in user_client.get(reverse("api_models")).json()["models"]}
    assert listed["fleet/qwen3-8b"]["context_size"] == 1024
    _, key = create_key(name="agent")
    entry = gateway.get("/v1/models/fleet%2Fqwen3-8b", headers={"Authorization": f"Bearer {key}"}).json()
    assert entry["context_length"] == 1024


def test_a_pool_model_that_does_not_exist_is_404_model_not_found(fleet, gateway):
    _, key = create_key(name="agent")
    response = gateway_chat(gateway, key, model="fleet/no-such-model")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found" and response.json()["error"]["param"] == "model"
    assert "pool 'fleet' has no model 'no-such-model'" in response.json()["error"]["message"]


def test_the_models_page_says_which_member_a_pool_would_use_now(user_client, fleet):
    fresh_lists()  # nothing of qwen3-8b loaded; the embedding box idle, sam-desktop busy with qwen3-30b
    page = user_client.get(reverse("picker")).content.decode()
    assert "<dt>Qwen3 8B (any box)</dt><dd>now → <code>embedding/qwen3-8b</code> <small>(embedding has nothing loaded)</small></dd>" in page
    fleet["sam-desktop"].models[1].loaded = True  # now sam-desktop has it loaded: no swap there
    fresh_lists()
    page = user_client.get(reverse("picker")).content.decode()
    assert "now → <code>sam-desktop/qwen3-8b</code> <small>(loaded)</small>" in page
    chat = new_session(user_client, "fleet/qwen3-8b", title="t")
    send(user_client, chat, "hi")  # and a chat goes where the page said
    assert served(chat) == [("sam-desktop/qwen3-8b", "sam-desktop")]
