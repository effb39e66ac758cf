"""Gateway API keys: each belongs to a user and acts as that user; shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from boochat.models import GatewayKey
from providers.access import parse_patterns
from providers.snapshot import Snapshot

KEY_PREFIX = "bc-"
SERVICE_USER = "gateway"  # owns keys made without an owner (scripts, tests); it cannot log in


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def service_user() -> Any:
    """The user that owns keys made for a service rather than a person: made on first use, no password."""
    user, created = get_user_model().objects.get_or_create(username=SERVICE_USER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def create_key(*, name: str, user: User | None = None, expires_at: datetime | None = None,
               scope: Iterable[str] = (), **limits: int | None) -> tuple[GatewayKey, str]:
    """A new key row and the key itself, which exists only in the caller's hands from here on."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = GatewayKey.objects.create(user=user or service_user(), name=name, prefix=key[:10], key_hash=hash_key(key),
                                    expires_at=expires_at, scope=list(parse_patterns(scope)), **limits)
    return row, key


@dataclass(frozen=True)
class ActiveKey:
    """What the gateway needs to know of a key on each request."""

    id: int
    user_id: int
    scope: tuple[str, ...]
    expires_at: datetime | None
    requests_per_minute: int | None
    tokens_per_day: int | None
    concurrent_streams: int | None

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


def _load_keys() -> dict[str, ActiveKey]:
    rows = GatewayKey.objects.active().filter(user__is_active=True).values_list(
        "key_hash", "id", "user_id", "scope", "expires_at", "requests_per_minute", "tokens_per_day",
        "concurrent_streams")
    return {key_hash: ActiveKey(pk, user_id, tuple(scope or ()), expires, rpm, tpd, streams)
            for key_hash, pk, user_id, scope, expires, rpm, tpd, streams in rows}


# Active keys by hash. A revocation in this process applies at once (signals in boochat.apps,
# GatewayKeyQuerySet.update); other workers see it within the snapshot's TTL (one second). An
# expiry is checked on each request.
active_keys = Snapshot(_load_keys)


def find_key(key: str, keys: dict[str, ActiveKey]) -> ActiveKey | None:
    """The active, unexpired key for a bearer token, or None."""
    found = keys.get(hash_key(key))
    return None if found is None or found.expired() else found
