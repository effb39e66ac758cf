import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from boochat.env import env_bool, env_int, env_list

PRODUCTION_ENV = {
    "BOOCHAT_SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
    "BOOCHAT_ALLOWED_HOSTS": "chat.example.org",
    "BOOCHAT_HTTPS": "true",
    "BOOCHAT_DEBUG": "false",
}


def manage(*args, env=None):
    # The browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is theirs, not the deployment's.
    base = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_warns_without_https():
    env = {**PRODUCTION_ENV, "BOOCHAT_HTTPS": "false"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stdout + result.stderr


def test_migrations_match_the_models():
    result = manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


def test_env_helpers_parse_and_refuse(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    assert env_bool("X_BOOL") is True
    assert env_int("X_INT", 1) == 12
    assert env_list("X_LIST", "") == ["a", "b", "c"]
    assert env_bool("X_UNSET", True) is True

    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL='maybe' is not a boolean"):
        env_bool("X_BOOL")
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_INT='ten' is not a whole number"):
        env_int("X_INT", 1)


def test_a_bad_setting_stops_start_up_with_its_name():
    result = manage("check", env={"BOOCHAT_DEBUG": "perhaps"})
    assert result.returncode != 0
    assert "BOOCHAT_DEBUG='perhaps' is not a boolean" in result.stderr



@pytest.mark.parametrize(("name", "value", "reason"), [
    ("BOOCHAT_WORKERS", "two", "is not a whole number"),
    ("BOOCHAT_WORKERS", "0", "is less than 1"),
    ("BOOCHAT_GRACEFUL_TIMEOUT", "soon", "is not a whole number"),
])
def test_a_bad_server_setting_stops_gunicorn_with_its_name(name, value, reason):
    base = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "python:boochat.gunicorn_conf", "boochat.asgi:application"],
        cwd=settings.BASE_DIR, env={**base, "BOOCHAT_BIND": "127.0.0.1:0", name: value},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert f"{name}={value!r} {reason}" in result.stderr, result.stderr

@pytest.mark.django_db
def test_the_suite_runs_on_the_configured_database_and_cache():
    """CI runs the suite twice; this proves the second run really is on PostgreSQL and Redis."""
    from django.core.cache import caches
    from django.db import connection

    cache = caches["default"]

    expected_vendor = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == expected_vendor
    expected_cache = "RedisCache" if os.environ.get("REDIS_URL") else "LocMemCache"
    assert type(cache).__name__ == expected_cache
    cache.set("boochat-probe", "ok")
    assert cache.get("boochat-probe") == "ok"


@pytest.mark.django_db
def test_with_redis_sessions_are_read_from_it_and_a_logout_ends_them_everywhere(django_user_model):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = django_user_model.objects.create_user("tabs")
    first = Client()
    first.force_login(user)
    second = Client()  # another tab, or a request that lands on another worker
    second.cookies["sessionid"] = first.cookies["sessionid"].value

    first.get("/settings/")  # the session is cached after its first read
    with CaptureQueriesContext(connection) as queries:
        assert second.get("/settings/").status_code == 200
    session_reads = [q["sql"] for q in queries if "django_session" in q["sql"]]
    assert len(session_reads) == (0 if os.environ.get("REDIS_URL") else 1)

    assert first.post("/accounts/logout/").status_code == 302
    assert second.get("/settings/").status_code == 302  # to the login page
