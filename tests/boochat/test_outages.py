"""Redis down, through Django's test client: the cache points at a port where nothing listens. (The
started app process, PostgreSQL down and a killed redis-server: tests/production/test_outages.py.)"""

import socket

import pytest
from django.test import Client
from django.urls import reverse

from boochat.gateway.keys import create_key


@pytest.fixture
def redis_down(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{port}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}


def test_healthz_is_ok_when_the_database_and_the_cache_answer(client, db):
    response = client.get(reverse("healthz"))
    assert (response.status_code, response.content) == (200, b"ok")


def test_healthz_names_the_cache_when_redis_is_down(client, db, redis_down):
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.content.decode() == "database: ok\ncache: unavailable (ConnectionError)\n"
    assert response["Retry-After"] == "5"


def test_an_api_answers_json_503_naming_redis(user_client, redis_down):
    user_client.raise_request_exception = False
    response = user_client.get(reverse("api_models"))
    assert response.status_code == 503
    assert response.json()["unavailable"] == "cache" and "Redis" in response.json()["error"]


def test_a_page_answers_503_naming_redis(user_client, redis_down):
    user_client.raise_request_exception = False
    response = user_client.get(reverse("home"))
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert "cannot reach its cache (Redis)" in response.content.decode()


def test_the_gateway_answers_503_in_openais_envelope(db, redis_down):
    _, key = create_key(name="agent")
    client = Client(raise_request_exception=False)
    response = client.get(reverse("gateway_models"), headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "cache_unavailable"
    assert response.json()["error"]["type"] == "server_error"
