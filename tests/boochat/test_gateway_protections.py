"""The gateway keeps Django's protections (Host, HTTPS, security headers, escaped logs) and its own
(JSON bodies, no foreign web pages): in process, through the ASGI application the server runs."""

import asyncio
import logging

import httpx
import pytest

from boochat.asgi import application
from boochat.gateway.keys import create_key

pytestmark = pytest.mark.django_db(transaction=True)


def call(method, path, *, host="127.0.0.1:8000", scheme="http", **kwargs):
    async def run():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://{host}") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(run())


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {create_key(name='tests')[1]}"}


CHAT = {"model": "sam-desktop/qwen3-8b", "messages": [{"role": "user", "content": "hi"}]}


def test_a_host_not_in_allowed_hosts_is_refused(auth, hosts):
    response = call("GET", "/v1/models", host="attacker.example", headers=auth)
    assert response.status_code == 400
    assert "Invalid Host header 'attacker.example'" in response.json()["error"]["message"]
    assert not hosts["sam-desktop"].requests
    assert call("GET", "/v1/models", host="localhost:8000", headers=auth).status_code == 200


def test_post_bodies_must_be_json(auth, hosts):
    response = call("POST", "/v1/chat/completions", content=b'{"model": "sam-desktop/qwen3-8b"}',
                    headers={**auth, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["error"]["message"]
    assert not hosts["sam-desktop"].requests_to("/v1/chat/completions")
    ok = call("POST", "/v1/chat/completions", json=CHAT, headers={**auth, "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_a_web_page_of_another_site_is_refused_unless_allowed(auth, hosts, settings):
    page = {**auth, "Origin": "https://evil.example"}
    response = call("POST", "/v1/chat/completions", json=CHAT, headers=page)
    assert response.status_code == 403
    assert "https://evil.example" in response.json()["error"]["message"]
    assert not hosts["sam-desktop"].requests_to("/v1/chat/completions")

    settings.BOOCHAT_GATEWAY_ALLOWED_ORIGINS = ["https://evil.example"]
    preflight = call("OPTIONS", "/v1/chat/completions", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://evil.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    allowed = call("POST", "/v1/chat/completions", json=CHAT, headers=page)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://evil.example"


def test_same_security_headers_as_the_rest_of_the_app(auth, hosts, client):
    response = call("GET", "/v1/models", headers=auth)
    page = client.get("/accounts/login/")
    for name in ("x-content-type-options", "referrer-policy", "cross-origin-opener-policy", "x-frame-options"):
        assert response.headers[name] == page.headers[name], name
    assert "strict-transport-security" not in response.headers


def test_https_rules_follow_boochat_https(auth, hosts, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    redirect = call("GET", "/v1/models?x=1", headers=auth)
    assert redirect.status_code == 301 and redirect.headers["location"] == "https://127.0.0.1:8000/v1/models?x=1"
    secure = call("GET", "/v1/models", scheme="https", headers=auth)
    assert secure.status_code == 200 and secure.headers["strict-transport-security"].startswith("max-age=3600")
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxied = call("GET", "/v1/models", headers={**auth, "X-Forwarded-Proto": "https"})
    assert proxied.status_code == 200 and "strict-transport-security" in proxied.headers


def test_logged_paths_are_escaped(auth, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        call("GET", "/v1/nothing%0aINFO forged line%00", headers=auth)
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    line = record.getMessage()
    assert "\n" not in line and "\x00" not in line
    assert "\\nINFO forged line\\x00" in line


def test_deeply_nested_json_is_a_400(auth, hosts):
    body = b'{"model": "sam-desktop/qwen3-8b", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = call("POST", "/v1/chat/completions", content=body, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]
