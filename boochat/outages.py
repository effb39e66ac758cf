"""The database or the cache being down: which one a failure means, a check of both for /healthz, and
the 503 a request gets instead of a 500, naming what is down (the details go to the log only)."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

SERVICES = {
    "database": "BooChat cannot reach its database right now.",
    "cache": "BooChat cannot reach its cache (Redis) right now: sessions, logins and model lists live there.",
}
RETRY_AFTER_SECONDS = 5


def service_down(exc: BaseException | None) -> str | None:
    """"database" or "cache" when `exc` means that service cannot be reached, else None."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return "database"
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return "cache"
    return None


def unavailable_message(service: str) -> str:
    return f"{SERVICES[service]} Try again in a few seconds."


def check_services() -> dict[str, str]:
    """Each service's state for /healthz: "ok", or "unavailable (<kind of error>)"."""
    states = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        states["database"] = "ok"
    except DatabaseError as exc:
        logger.warning("Health check: the database is unavailable: %s", exc)
        states["database"] = f"unavailable ({type(exc).__name__})"
    try:
        cache.get("healthz")
        states["cache"] = "ok"
    except (RedisError, OSError) as exc:
        logger.warning("Health check: the cache is unavailable: %s", exc)
        states["cache"] = f"unavailable ({type(exc).__name__})"
    return states
