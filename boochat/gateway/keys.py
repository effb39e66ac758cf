"""Gateway API keys: made in admin, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from boochat.models import GatewayKey
from providers.snapshot import Snapshot

KEY_PREFIX = "bc-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, name: str) -> tuple[GatewayKey, str]:
    """A new key row and the key itself, which exists only in the caller's hands from here on."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = GatewayKey.objects.create(name=name, prefix=key[:10], key_hash=hash_key(key))
    return row, key


def _load_keys() -> dict[str, int]:
    return dict(GatewayKey.objects.active().values_list("key_hash", "id"))


# Active keys by hash. A revocation in this process applies at once (signals in boochat.apps,
# GatewayKeyQuerySet.update); other workers see it within the snapshot's TTL (one second).
active_keys = Snapshot(_load_keys)
