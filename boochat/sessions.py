"""Logins read together: Django's model authentication backend (AUTHENTICATION_BACKENDS) and its
database session engine (SESSION_ENGINE without REDIS_URL), each able to serve many requests from
one query.

A burst of streamed chat sends is admitted in batches (boochat.handler). Each send's login check
reads its session and then its user, two queries each; `read_together()` reads the batch's sessions
in one query (with REDIS_URL, Django's cached_db engine reads each from Redis) and their users in
another, and the checks then run exactly as Django's own, from those rows. A session or user the batch did not read, or any request outside a batch, loads as
Django loads it. The rows are Django's, in its tables. Sessions record the backend that logged them
in: migration 0002 moves those of Django's ModelBackend to this one, so nobody is logged out.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.contrib.auth import SESSION_KEY, backends, get_user_model
from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.utils import timezone

from boochat.reads import InList

# .rows: session key -> its row, or None where there is none (or it expired);
# .users: user pk -> the user, or None where there is none.
_read = threading.local()


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):  # noqa: ANN202 - Django's signature
        rows = getattr(_read, "rows", None)
        if rows is None or self.session_key not in rows:
            return super()._get_session_from_db()
        row = rows[self.session_key]
        if row is None:  # as Django's: an unknown or expired key is forgotten
            self._session_key = None
        return row


class ModelBackend(backends.ModelBackend):
    """Django's ModelBackend; a user read by the current batch comes from there."""

    def get_user(self, user_id):  # noqa: ANN001, ANN201 - Django's signature
        users = getattr(_read, "users", None)
        if users is None or user_id not in users:
            return super().get_user(user_id)
        user = users[user_id]
        # A copy each: requests of one user must not share an object.
        return copy.copy(user) if user is not None and self.user_can_authenticate(user) else None


@functools.cache
def _sessions_by_key() -> InList:
    return InList(SessionStore.get_model_class().objects.all(), "pk")


@functools.cache
def _users_by_pk() -> InList:
    return InList(get_user_model()._default_manager.all(), "pk")


@contextmanager
def read_together(sessions: Iterable[SessionBase | None]) -> Iterator[None]:
    """Within this block, in this thread, the users that `sessions` are logged in as come from one
    query made now; so do the sessions themselves, those of this engine that have not loaded yet
    (other engines load each their own way: Redis, for cached_db). Both reads are boochat.reads'."""
    stores = [s for s in sessions if s is not None and s.session_key is not None]
    unread = [s.session_key for s in stores if isinstance(s, SessionStore) and not hasattr(s, "_session_cache")]
    try:
        if unread:
            _read.rows = dict.fromkeys(unread)
            now = timezone.now()  # as Django's: a session that has expired is not there
            _read.rows.update((row.session_key, row) for row in _sessions_by_key()(unread) if row.expire_date > now)
        user_model = get_user_model()
        ids = set()
        for store in stores:  # each loads now, from the rows read above if it can
            try:
                ids.add(user_model._meta.pk.to_python(store[SESSION_KEY]))
            except (KeyError, ValidationError):  # not logged in, or nonsense: Django's check says so
                continue
        if ids:
            _read.users = dict.fromkeys(ids)
            _read.users.update((user.pk, user) for user in _users_by_pk()(ids))
        yield
    finally:
        _read.__dict__.clear()
