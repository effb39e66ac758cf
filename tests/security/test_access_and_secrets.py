"""Who may do what, and that secrets never leave the server."""

import json
import logging

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from boochat.gateway.keys import create_key
from boochat.models import ChatSession
from providers.models import Provider, ProviderKind
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

PUBLIC = {"login", "healthz", "shared_chat"}
DEEPSEEK_KEY = "sk-live-very-secret-deepseek-key"


def app_routes():
    """(name, url) for every named route outside admin, filled with plausible arguments."""
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if "admin" in str(pattern.pattern):
                    continue
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield pattern.name, pattern

    for name, pattern in walk(get_resolver().url_patterns):
        kwargs = {key: ("sam-desktop/qwen3-8b" if key == "model_id" else 1) for key in pattern.pattern.converters}
        yield name, reverse(name, kwargs=kwargs)


@pytest.mark.parametrize("name, url", list(app_routes()))
def test_every_page_and_api_needs_a_login_or_a_gateway_key(client, name, url):
    if name == "shared_chat":  # a shared link is read without a login; a token no share holds is 404
        assert client.get(url).status_code == 404 and client.post(url).status_code == 405
        return
    if name in PUBLIC:  # answered to anyone, without a redirect to the login page
        response = client.get(url)
        assert response.status_code == 200, url
        if name == "login":
            body = response.content.decode()
            assert response.templates[0].name == "registration/login.html"
            assert 'name="username"' in body and 'name="password"' in body
        else:  # healthz, for load balancers
            assert response.content == b"ok"
        return
    statuses = set()
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        statuses.add(response.status_code)
        if name.startswith("gateway"):  # the method it accepts says 401, the other 405
            assert response.status_code in (401, 405), (method, url)
        elif name.startswith("api_"):
            assert response.status_code in (401, 405), (method, url)
        else:
            assert response.status_code in (302, 405), (method, url)
            if response.status_code == 302:
                assert response["Location"].startswith(reverse("login")), (method, url)
    assert statuses != {405}, url  # one of the two methods reached the login or key check


def test_the_public_routes_are_among_them():
    assert PUBLIC <= {name for name, _ in app_routes()}


@pytest.mark.parametrize("url, data", [
    ("chat_new", {}),
    ("chat_start", {}),
    ("favorite_toggle", {"model_id": "sam-desktop/x"}),
    ("settings", {"default_model": ""}),
    ("arena_new", {"prompt": "x"}),
    ("logout", {}),
])
def test_session_writes_need_the_csrf_token(django_user_model, url, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user("csrf"))
    assert client.post(reverse(url), data).status_code == 403


def test_another_users_session_is_invisible(client, django_user_model):
    owner = django_user_model.objects.create_user("owner")
    session = ChatSession.objects.create(user=owner, model_id="sam-desktop/x", title="private plans")
    client.force_login(django_user_model.objects.create_user("other"))
    assert client.get(session.get_absolute_url()).status_code == 404
    assert "private plans" not in client.get(reverse("chat_index")).content.decode()
    assert client.post(reverse("chat_set_model", args=[session.pk]), {"model_id": "a/b"}).status_code == 404
    assert client.post(reverse("chat_title", args=[session.pk])).status_code == 404


@pytest.fixture
def deepseek(deepseek_host, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", DEEPSEEK_KEY)
    deepseek_host.api_key = DEEPSEEK_KEY
    make_provider(slug="deepseek", name="DeepSeek", kind=ProviderKind.DEEPSEEK, base_url=deepseek_host.url,
                  api_key_env="DEEPSEEK_API_KEY", is_default=True)
    return deepseek_host


def test_provider_keys_never_reach_pages_payloads_or_logs(admin_client, deepseek, caplog):
    caplog.set_level(logging.DEBUG)
    session = ChatSession.objects.create(user=ChatSession._meta.get_field("user").related_model.objects.get(),
                                         model_id="deepseek/deepseek-v4-flash", title="t")
    admin_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"})
    deepseek.balance = False  # an error path too
    admin_client.post(reverse("chat_send", args=[session.pk]), {"content": "again"})
    pages = [
        admin_client.get(url).content.decode()
        for url in (reverse("home"), reverse("picker"), reverse("settings"), session.get_absolute_url(),
                    reverse("api_models"), "/admin/providers/provider/",
                    f"/admin/providers/provider/{Provider.objects.get(slug='deepseek').pk}/change/",
                    "/admin/boochat/gatewaykey/")
    ]
    everything = "\n".join(pages) + caplog.text + json.dumps(list(session.messages.values()), default=str)
    assert DEEPSEEK_KEY not in everything
    assert "DEEPSEEK_API_KEY" in pages[-2]  # the variable's name is fine to show


def test_keys_never_reach_the_gateways_answers_or_logs(deepseek, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    _, gateway_key = create_key(name="t")
    headers = {"Authorization": f"Bearer {gateway_key}"}
    answers = [gateway.post("/v1/chat/completions", json={"model": "deepseek/deepseek-v4-flash", "messages": []},
                            headers=headers).text]
    deepseek.balance = False  # an error path too
    answers.append(gateway.post("/v1/chat/completions", json={"model": "deepseek/deepseek-v4-flash", "messages": []},
                                headers=headers).text)
    answers.append(gateway.get("/v1/models", headers=headers).text)
    everything = "\n".join(answers) + caplog.text
    assert "Payment Required" in caplog.text  # the failed request was logged...
    assert DEEPSEEK_KEY not in everything and gateway_key not in everything  # ...without either key


def test_a_missing_key_error_names_the_variable_not_a_value(user_client, deepseek, monkeypatch):
    monkeypatch.delenv("DEEPSEEK_API_KEY")
    session = ChatSession.objects.create(user=ChatSession._meta.get_field("user").related_model.objects.get(),
                                         model_id="deepseek/deepseek-v4-flash", title="t")
    response = user_client.post(reverse("chat_send", args=[session.pk]), {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    assert response.status_code == 400
    assert "environment variable DEEPSEEK_API_KEY, which is not set" in response.json()["error"]
    assert deepseek.requests == []
