import pytest
from django.core.management import call_command
from django.urls import reverse

from boochat.models import ChatSession
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


def test_pages_require_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


def provider_row(body, slug):
    """The home page's table row for one provider."""
    start = body.index(f'<tr id="provider-{slug}">')
    return body[start:body.index("</tr>", start)]


def test_home_lists_providers_without_secrets(user_client, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-very-secret")
    make_provider(slug="sam-desktop", name="Sam's desktop", is_default=True)
    make_provider(slug="deepseek", name="DeepSeek", kind="deepseek", api_key_env="DEEPSEEK_API_KEY")
    response = user_client.get(reverse("home"))
    assert response.status_code == 200
    assert response.template_name == "home.html"
    assert [p.slug for p in response.context_data["providers"]] == ["sam-desktop", "deepseek"]
    body = response.content.decode()
    sam, deepseek = provider_row(body, "sam-desktop"), provider_row(body, "deepseek")
    assert "Sam&#x27;s desktop" in sam and '<span class="badge">default</span>' in sam  # the default is marked...
    assert "DeepSeek" in deepseek and 'class="badge"' not in deepseek  # ...and only the default
    assert "sk-very-secret" not in body


def test_home_without_providers_says_how_to_add_one(user_client):
    response = user_client.get(reverse("home"))
    assert "LLAMA_PROVIDERS_PATH" in response.content.decode()


def test_healthz_needs_no_login(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.content == b"ok"


def test_ensure_admin_creates_one_admin_once(django_user_model, monkeypatch, capsys):
    monkeypatch.delenv("BOOCHAT_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    out = capsys.readouterr().out
    admin = django_user_model.objects.get()
    assert admin.is_superuser and admin.username == "admin"
    password = out.split("password: ")[1].split()[0]
    assert admin.check_password(password)

    call_command("ensure_admin")
    assert capsys.readouterr().out == ""
    assert django_user_model.objects.count() == 1


def test_ensure_admin_reads_the_password_from_the_environment(django_user_model, monkeypatch, capsys):
    monkeypatch.setenv("BOOCHAT_ADMIN_PASSWORD", "correct horse battery")
    call_command("ensure_admin")
    assert "correct horse battery" not in capsys.readouterr().out
    assert django_user_model.objects.get().check_password("correct horse battery")


def test_home_shows_hosts_addresses_to_staff_only(client, django_user_model):
    make_provider(slug="sam-desktop", name="Sam's desktop", base_url="http://10.1.2.3:8080", is_default=True)
    alice = django_user_model.objects.create_user("alice", password="pw-for-tests-only")
    client.force_login(alice)
    body = client.get(reverse("home")).content.decode()
    assert "Sam&#x27;s desktop" in body and "10.1.2.3" not in body
    alice.is_staff = True
    alice.save()
    assert "http://10.1.2.3:8080" in client.get(reverse("home")).content.decode()


def test_the_home_page_message_box_opens_a_new_chat_that_sends_it(user_client, hosts):
    response = user_client.post(reverse("chat_start"), {"model_id": "sam-desktop/qwen3-8b", "content": "  Hello there  "})
    assert response.status_code == 302 and response["Location"] == reverse("chat_new") + "?model=sam-desktop%2Fqwen3-8b"
    page = user_client.get(response["Location"])
    body = page.content.decode()
    assert "data-autosend" in body and ">Hello there</textarea>" in body
    assert page.context_data["selected"] == "sam-desktop/qwen3-8b"
    again = user_client.get(response["Location"]).content.decode()  # sent once: a reload does not send it again
    assert "data-autosend" not in again and "></textarea>" in again
    assert not ChatSession.objects.exists()  # the page's first message saves the chat


def test_error_pages_use_the_apps_layout(user_client, rf):
    from django.views.defaults import server_error

    missing = user_client.get("/no/such/page/")
    body = missing.content.decode()
    assert missing.status_code == 404 and "Page not found" in body and 'class="topbar"' in body
    failed = server_error(rf.get("/"))  # rendered without a context, as Django does after an exception
    assert failed.status_code == 500 and "Something went wrong" in failed.content.decode()
    assert 'href="/static/css/app' in failed.content.decode()
