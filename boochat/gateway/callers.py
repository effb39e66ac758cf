"""Who a gateway request acts as (its key's user), the models they may use, the limits that count the
request, and its usage record: one place every /v1/ endpoint calls."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from boochat import database, limits
from boochat.gateway.keys import ActiveKey, active_keys, find_key
from boochat.models import GatewayKey, UsageRecord
from boochat.usage.recording import Meter, Use
from providers.access import EVERYTHING, Access, access_for, restricted_users

_LAST_USED_EVERY = 60.0  # seconds between last-used writes for one key (and address)


@dataclass(frozen=True)
class Caller:
    """A request's user and key (both None on a gateway opened without keys), what it may use and
    the limits that count it."""

    user_id: int | None
    key: ActiveKey | None
    access: Access
    subjects: list[limits.Subject]


ANONYMOUS = Caller(None, None, EVERYTHING, [])


async def _current(snapshot: Any) -> Any:
    kept = snapshot.fresh()
    return kept if kept is not None else await database.run(snapshot.get)


_last_used: dict[int, tuple[float, str]] = {}
_background: set[asyncio.Task[Any]] = set()


def _note_use(key_id: int, address: str) -> None:
    """Record when and from where a key was last used, at most once a minute per key (or at once from a
    new address), off the request's path."""
    now = time.monotonic()
    noted_at, noted_from = _last_used.get(key_id, (-_LAST_USED_EVERY, ""))
    if now - noted_at < _LAST_USED_EVERY and noted_from == address:
        return
    _last_used[key_id] = (now, address)
    task = asyncio.ensure_future(database.run(lambda: GatewayKey.objects.filter(pk=key_id).update(
        last_used_at=timezone.now(), last_used_from=address or None)))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def identify(token: str, address: str) -> Caller | None:
    """The caller a key names (as the request presented it); None if it is missing, unknown, revoked
    or expired (unless the gateway is open, when a request without a key is anonymous)."""
    if not token:
        return ANONYMOUS if settings.BOOCHAT_GATEWAY_OPEN else None
    key = find_key(token, await _current(active_keys))
    if key is None:
        return ANONYMOUS if settings.BOOCHAT_GATEWAY_OPEN else None
    _note_use(key.id, address)
    access = access_for(key.user_id, await _current(restricted_users)).narrowed(key.scope)
    subjects = limits.subjects_for(key.user_id, key, await _current(limits.limit_rows)) if settings.BOOCHAT_USAGE else []
    return Caller(key.user_id, key, access, subjects)


def meter(caller: Caller, endpoint: str, model_id: str) -> Meter:
    """A meter for a request of `caller` to `model_id`."""
    key = caller.key
    return Meter(Use(UsageRecord.Source.GATEWAY, model_id, user_id=caller.user_id, key_id=key.id if key else None,
                     endpoint=endpoint, limit_names=tuple(s.name for s in caller.subjects)))
