"""Arbitrary input to the JSON APIs and the gateway: only 4xx with a message, never a 500."""

import json
import socket

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boochat.gateway.keys import create_key
from providers.ids import InvalidModelId, ModelRef
from providers.models import Provider
from settings_app.models import Favorite
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

pytestmark = pytest.mark.django_db
NO_FIXTURE_RESET = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

tricky_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["..", "%2F", "sam-desktop/%2e%2e/admin", "\x00", "sam-desktop/\x00", "http://127.0.0.1:1/x",
                     "//evil/x", "sam-desktop/../../admin", "llama-swap/", "/", "a" * 5000, "ＳＡＭ/qwen", "sam-desktop/ü"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


@given(tricky_text)
def test_parsing_any_string_either_gives_a_valid_ref_or_says_why(value):
    try:
        ref = ModelRef.parse(value, default_provider="sam-desktop")
    except InvalidModelId as exc:
        assert str(exc)
    else:
        assert ModelRef.parse(str(ref)) == ref


@pytest.fixture
def patch_client(django_user_model):
    make_provider(slug="sam-desktop", base_url="http://127.0.0.1:9", is_default=True)
    client = Client()
    client.force_login(django_user_model.objects.create_user("fuzz"))
    return client


@NO_FIXTURE_RESET
@given(body=st.dictionaries(st.sampled_from(["favorite_models", "favorite_models_add", "favorite_models_remove",
                                             "default_model", "other"]), json_values, max_size=3))
def test_settings_patch_never_fails_with_a_500(patch_client, body):
    response = patch_client.patch("/api/settings", json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.content
    payload = response.json()
    if response.status_code == 400:
        assert payload["error"]
    else:
        for model_id in payload["favorite_models"]:
            assert ModelRef.parse(model_id)  # only well-formed composite ids are ever stored


@pytest.fixture
def gateway_key(gateway, patch_client):
    return {"Authorization": f"Bearer {create_key(name='fuzz')[1]}", "Content-Type": "application/json"}


@NO_FIXTURE_RESET
@given(raw=st.one_of(json_values.map(json.dumps), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_gateway_bodies_never_fail_with_a_500(gateway, gateway_key, raw):
    response = gateway.post("/v1/chat/completions", content=raw.encode("utf-8", "surrogatepass"), headers=gateway_key)
    assert 400 <= response.status_code < 600 and response.status_code != 500
    error = response.json()["error"]
    assert error["message"] and {"type", "param", "code"} <= set(error)


def test_huge_bodies_get_a_clear_413(patch_client, gateway, gateway_key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = json.dumps({"favorite_models": ["sam-desktop/x"] * 200})
    response = patch_client.patch("/api/settings", big, content_type="application/json")
    assert response.status_code == 413 and "larger than 1000 bytes" in response.json()["error"]
    assert not Favorite.objects.exists()
    body = json.dumps({"model": "x", "pad": "y" * 2000}).encode()
    response = gateway.post("/v1/chat/completions", content=body, headers=gateway_key)
    assert response.status_code == 413 and "larger than 1000 bytes" in response.json()["error"]["message"]

    def without_length():  # chunked: no Content-Length to refuse it by
        yield body[:500]
        yield body[500:]

    response = gateway.post("/v1/chat/completions", content=without_length(), headers=gateway_key)
    assert response.status_code == 413 and "larger than 1000 bytes" in response.json()["error"]["message"]


@pytest.mark.parametrize("model_id", ["http://127.0.0.1:{port}/x", "//127.0.0.1:{port}/x", "sam-desktop/../../admin",
                                      "sam-desktop/%2e%2e/admin", "sam-desktop/x?url=http://127.0.0.1:{port}",
                                      "sam-desktop/x#frag"])
def test_no_model_id_makes_boochat_call_anything_but_a_configured_host(gateway, gateway_key, model_id):
    # The configured host is a fake that records every request; anything else would have to reach
    # the listener, which counts connections.
    with FakeLlamaSwap([FakeModel("x")]) as host, socket.create_server(("127.0.0.1", 0)) as elsewhere:
        elsewhere.settimeout(0.5)
        Provider.objects.filter(slug="sam-desktop").update(base_url=host.url)
        port = elsewhere.getsockname()[1]
        response = gateway.post("/v1/chat/completions", json={"model": model_id.format(port=port), "messages": []},
                                headers=gateway_key)
        assert response.status_code == 400
        assert host.requests == []
        with pytest.raises(TimeoutError):
            elsewhere.accept()
