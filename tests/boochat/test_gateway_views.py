"""The gateway through Django's URL conf and test client: the same answers as the ASGI app gives."""

import asyncio
import json

import pytest
from django.urls import reverse

from boochat.gateway.keys import create_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {create_key(name='tests')[1]}"}


def test_named_urls_reach_the_gateway(client, hosts, auth):
    assert reverse("gateway_model", args=["sam-desktop/qwen3-8b"]) == "/v1/models/sam-desktop/qwen3-8b"
    listed = client.get(reverse("gateway_models"), headers=auth)
    assert listed.status_code == 200 and "sam-desktop/qwen3-8b" in [m["id"] for m in listed.json()["data"]]
    one = client.get(reverse("gateway_model", args=["sam-desktop/qwen3-8b"]), headers=auth)
    assert one.json()["id"] == "sam-desktop/qwen3-8b"
    assert client.get(reverse("gateway_models")).status_code == 401
    assert client.get("/v1/nothing", headers=auth).json()["error"]["code"] == "unknown_url"


def test_chat_through_the_test_client(client, hosts, auth):
    body = {"model": "embedding/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.post(reverse("gateway_chat_completions"), json.dumps(body), content_type="application/json",
                         headers=auth)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
    assert [r.json()["model"] for r in hosts["embedding"].requests_to("/v1/chat/completions")] == ["qwen3-8b"]
    unknown = client.post(reverse("gateway_chat_completions"), json.dumps({**body, "model": "nowhere/x"}),
                          content_type="application/json", headers=auth)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_provider"


def test_a_stream_through_django(async_client, hosts, auth):
    body = {"model": "sam-desktop/qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    async def stream():
        response = await async_client.post(reverse("gateway_chat_completions"), json.dumps(body),
                                           content_type="application/json", headers=auth)
        return response, b"".join([chunk async for chunk in response.streaming_content])

    response, received = asyncio.run(stream())
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    assert received.endswith(b"data: [DONE]\n\n")
