"""Upgrades log nobody out: sessions that name the login backend BooChat once had name Django's."""

from importlib import import_module

import pytest
from django.apps import apps
from django.contrib import auth
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

pytestmark = pytest.mark.django_db


def test_sessions_of_the_former_backend_stay_logged_in(django_user_model):
    user = django_user_model.objects.create_user("alice")
    store = SessionStore()
    store.update({auth.SESSION_KEY: str(user.pk), auth.BACKEND_SESSION_KEY: "boochat.sessions.ModelBackend",
                  auth.HASH_SESSION_KEY: user.get_session_auth_hash()})
    store.create()
    client = Client()
    client.cookies["sessionid"] = store.session_key
    assert client.get("/settings/").status_code == 302  # a backend that is not configured: logged out

    migration = import_module("boochat.migrations.0004_sessions_djangos_backend")
    migration.earlier.move_sessions(apps, migration.earlier.OURS, migration.earlier.DJANGOS)
    assert client.get("/settings/").status_code == 200
    assert SessionStore(store.session_key).load()[auth.BACKEND_SESSION_KEY] == "django.contrib.auth.backends.ModelBackend"
