"""Failed logins are throttled per username and per client address, logged without the password,
and the count is shared by every worker (database, or Redis when REDIS_URL is set)."""

import io
import logging
import re

import httpx
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def attempt(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password})


def test_wrong_passwords_for_one_user_lock_it_for_a_while(django_user_model, settings, caplog):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("alice", password="right-password-1")
    client = Client(REMOTE_ADDR="10.0.0.1")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            response = attempt(client, "alice", "wrong-password-9")
            assert response.status_code == 200 and "Please enter a correct username and password" in response.content.decode()
        assert attempt(client, "alice", "wrong-password-9").status_code == 429
    locked = attempt(Client(REMOTE_ADDR="10.0.0.2"), "alice", "right-password-1")  # from anywhere, even right
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "alice" in logged and "wrong-password-9" not in logged
    assert re.search(r"login failure", logged, re.IGNORECASE)
    django_user_model.objects.create_user("bob", password="right-password-2")
    assert attempt(Client(REMOTE_ADDR="10.0.0.3"), "bob", "right-password-2").status_code == 302


def test_a_username_cannot_forge_a_log_line(django_user_model):
    """CR, LF and ESC in a failed login's username are written escaped, on the one line of the record."""
    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")  # settings.LOGGING's
    written = io.StringIO()
    previous = console.setStream(written)
    try:
        forged = 'mallory\r\n2026-01-01 00:00:00 INFO axes: AXES: Successful login by {username: "admin"}\x1b[2J'
        assert attempt(Client(REMOTE_ADDR="10.0.0.5"), forged, "guess").status_code == 200
    finally:
        console.setStream(previous)
    lines = written.getvalue().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ \S+: ", line) for line in lines), lines
    (failure,) = [line for line in lines if "login failure" in line]
    assert "\x1b" not in failure and "\r" not in failure
    assert r'mallory\r\n2026-01-01 00:00:00 INFO axes: AXES: Successful login by {username: \"admin\"}\x1b[2J' in failure
    assert "Successful login" not in written.getvalue().replace(failure, "")


def test_many_usernames_from_one_address_lock_that_address(django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("carol", password="right-password-3")
    client = Client(REMOTE_ADDR="10.0.0.7")
    for name in ("u1", "u2", "u3"):
        attempt(client, name, "guess")
    assert attempt(client, "carol", "right-password-3").status_code == 429
    assert attempt(Client(REMOTE_ADDR="10.0.0.8"), "carol", "right-password-3").status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("dave", password="right-password-4")
    for _ in range(2):
        attempt(Client(REMOTE_ADDR="10.0.0.9"), "dave", "nope")
    assert attempt(Client(REMOTE_ADDR="10.0.0.9"), "dave", "right-password-4").status_code == 302
    for _ in range(2):
        assert attempt(Client(REMOTE_ADDR="10.0.0.9"), "dave", "nope").status_code == 200


def test_the_count_is_shared_by_the_workers(app_process, django_user_model):
    django_user_model.objects.create_user("erin", password="right-password-5")
    base, _ = app_process(workers=2, BOOCHAT_LOGIN_FAILURE_LIMIT="4")
    statuses = []
    for _ in range(8):  # each on a new connection: the two workers take turns at accepting them
        with httpx.Client(base_url=base, timeout=10) as client:
            client.get(LOGIN)
            response = client.post(LOGIN, data={"username": "erin", "password": "nope",
                                                "csrfmiddlewaretoken": client.cookies["csrftoken"]})
            statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200] and set(statuses[4:]) == {429}, statuses
