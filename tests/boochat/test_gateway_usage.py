"""Usage of the gateway, recorded after each reply and written in batches: through the openai SDK
against the app served by uvicorn; the totals are what the fake hosts reported in their `usage`."""

import time

import httpx
import openai
import pytest
from django.utils import timezone

from boochat.gateway.keys import create_key
from boochat.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-for-tests-only")


@pytest.fixture
def alice_key(alice):
    return create_key(user=alice, name="laptop")


@pytest.fixture
def sdk(asgi_server, alice_key):
    with openai.OpenAI(base_url=f"{asgi_server.url}/v1", api_key=alice_key[1], max_retries=0, timeout=10) as client:
        yield client


def records_of(user, count, timeout=10):
    """The user's records once `count` of them are written (the writer batches them a second apart)."""
    deadline = time.monotonic() + timeout
    while UsageRecord.objects.filter(user=user).count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(UsageRecord.objects.filter(user=user).order_by("id"))


def test_a_non_streamed_answer_is_recorded_with_the_hosts_usage(sdk, hosts, alice, alice_key):
    answer = sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=[{"role": "user", "content": "hi"}])
    (record,) = records_of(alice, 1)
    assert (record.prompt_tokens, record.completion_tokens) == (answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (42, 11, 0)
    assert record.key_id == alice_key[0].pk and record.source == "gateway" and record.endpoint == "chat/completions"
    assert record.model_id == "sam-desktop/qwen3-30b" and record.served_by == "sam-desktop/qwen3-30b"
    assert record.status == 200 and record.ttfb_ms is not None and record.duration_ms >= record.ttfb_ms


def test_a_stream_is_counted_and_the_usage_chunk_not_asked_for_is_dropped(sdk, hosts, alice):
    chunks = list(sdk.chat.completions.create(model="embedding/qwen3-8b", stream=True,
                                              messages=[{"role": "user", "content": "hi"}]))
    assert chunks and all(chunk.usage is None for chunk in chunks)  # as a host asked without it answers
    assert chunks[-1].choices[0].finish_reason == "stop"
    (forwarded,) = [r for r in hosts["embedding"].requests if r.method == "POST"]
    assert forwarded.json()["stream_options"] == {"include_usage": True}  # BooChat asked the host
    (record,) = records_of(alice, 1)
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (22, 18, 21)


def test_a_stream_that_asks_for_usage_still_gets_it(sdk, hosts, alice):
    chunks = list(sdk.chat.completions.create(model="embedding/qwen3-8b", stream=True,
                                              stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": "hi"}]))
    assert chunks[-1].usage.total_tokens == 40
    (record,) = records_of(alice, 1)
    assert record.prompt_tokens + record.completion_tokens == chunks[-1].usage.total_tokens


def test_raw_stream_bytes_keep_their_shape_without_the_usage_event(asgi_server, hosts, alice_key):
    body = {"model": "embedding/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{asgi_server.url}/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {alice_key[1]}"})
    text = response.text
    assert '"usage"' not in text and text.endswith("data: [DONE]\n\n") and "\n\n\n" not in text


def test_embeddings_and_totals_over_several_requests(sdk, hosts, alice):
    sdk.embeddings.create(model="embedding/nomic-embed", input=["a", "bb", "cccccccc"])
    sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=[{"role": "user", "content": "hi"}])
    list(sdk.chat.completions.create(model="embedding/qwen3-8b", stream=True, messages=[{"role": "user", "content": "x"}]))
    records = records_of(alice, 3)
    assert sum(r.prompt_tokens for r in records) == (1 + 1 + 3) + 42 + 22
    assert sum(r.completion_tokens for r in records) == 11 + 18
    assert {r.endpoint for r in records} == {"embeddings", "chat/completions"}


def test_a_refused_request_is_recorded_with_its_status(sdk, hosts, alice):
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="sam-desktop/no-such-model", messages=[{"role": "user", "content": "hi"}])
    (record,) = records_of(alice, 1)
    assert record.status == 404 and record.prompt_tokens == 0


def test_the_usage_page_and_csv_show_the_gateways_records(sdk, hosts, alice, client):
    sdk.chat.completions.create(model="sam-desktop/qwen3-30b", messages=[{"role": "user", "content": "hi"}])
    list(sdk.chat.completions.create(model="embedding/qwen3-8b", stream=True, messages=[{"role": "user", "content": "x"}]))
    records_of(alice, 2)
    client.force_login(alice)
    page = client.get("/settings/usage/?period=7d")
    assert page.status_code == 200
    assert page.context_data["totals"] == {"requests": 2, "prompt": 64, "completion": 29, "cached": 21}
    by_model = {row["name"]: row["requests"] for row in page.context_data["by_model"]}
    assert by_model == {"sam-desktop/qwen3-30b": 1, "embedding/qwen3-8b": 1}
    assert [row["name"] for row in page.context_data["by_key"]] == ["laptop"]
    assert sum(bar.tokens for bar in page.context_data["chart"]) == 64 + 29
    csv = b"".join(client.get("/settings/usage/?period=30d&format=csv").streaming_content).decode().splitlines()
    assert csv[0].startswith("at,user,key,source") and len(csv) == 3 and all(",alice," in line for line in csv[1:])


def test_a_model_id_no_database_stores_loses_no_record(asgi_server, hosts, alice, alice_key):
    auth = {"Authorization": f"Bearer {alice_key[1]}"}
    for model in ("sam-desktop/a\u0000b", "=HYPERLINK(\"http://x\")/m"):
        response = httpx.post(f"{asgi_server.url}/v1/chat/completions", headers=auth,
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code in (400, 404)
    httpx.post(f"{asgi_server.url}/v1/chat/completions", headers=auth,
               json={"model": "sam-desktop/qwen3-30b", "messages": [{"role": "user", "content": "hi"}]})
    records = records_of(alice, 3)
    assert [r.model_id for r in records] == ["sam-desktop/a\ufffdb", "=HYPERLINK(\"http://x\")/m", "sam-desktop/qwen3-30b"]


def test_the_csv_export_quotes_cells_a_spreadsheet_would_run(alice, client):
    UsageRecord.objects.create(at=timezone.now(), user=alice, source="gateway", model_id="=cmd|'/c calc'!A1", status=400)
    client.force_login(alice)
    csv = b"".join(client.get("/settings/usage/?format=csv").streaming_content).decode()
    assert ",'=cmd|'/c calc'!A1," in csv
