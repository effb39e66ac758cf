"""Where a fleet's shared state lives: Redis (`REDIS_URL`) for every worker and instance, else this
process. One Redis client per event loop (redis.asyncio binds its connections to the loop that
opened them) and one synchronous client for pages."""

from __future__ import annotations

import asyncio
import weakref
from functools import cache

import redis
import redis.asyncio
from django.conf import settings

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, redis.asyncio.Redis]] = (
    weakref.WeakKeyDictionary())


def prefix() -> str:
    """The first part of every key BooChat's fleet writes in Redis."""
    return f"{settings.BOOCHAT_CACHE_PREFIX}:fleet"


def async_redis() -> redis.asyncio.Redis | None:
    """This event loop's Redis client, or None without `REDIS_URL`."""
    url = settings.REDIS_URL
    if not url:
        return None
    loop = asyncio.get_running_loop()
    kept = _async_clients.get(loop)
    if kept is None or kept[0] != url:
        kept = _async_clients[loop] = (url, redis.asyncio.Redis.from_url(url))
    return kept[1]


def sync_redis() -> redis.Redis | None:
    """A synchronous Redis client (pages, and releases from outside an event loop), or None."""
    return _sync_client(settings.REDIS_URL) if settings.REDIS_URL else None


@cache
def _sync_client(url: str) -> redis.Redis:
    # It is called from event loops (a lease ending): a Redis that stopped answering costs seconds, not a hang.
    timeout = settings.BOOCHAT_CACHE_TIMEOUT
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
