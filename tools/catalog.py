"""The tools a user may give a model: each tool server's list, cached, and calls to them.

Lists are kept in Django's cache (Redis when `REDIS_URL` is set, shared by every process), keyed by
server slug and address. Nothing here waits on a server to show a page: a list older than
`BOOCHAT_TOOL_LIST_TTL`, or never fetched, is refreshed by a background thread while the cached one
(or none yet: "not listed yet") is served, and a server that did not answer is shown as down with
why. Calls are made on the caller's event loop, so cancelling the caller (Stop) closes the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache as once
from typing import Any, TypeVar

import anyio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import connection as db_connection
from mcp.server.mcpserver import MCPServer

from tools import client
from tools.client import BUILTIN, Connection
from tools.models import Approval, ToolServer
from tools.websearch import build_server

logger = logging.getLogger(__name__)
T = TypeVar("T")

_CACHE_VERSION = 1
_CACHE_SECONDS = 7 * 24 * 3600  # a down server's last good list is still shown (and offered) while it is down
_FUNCTION_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_FUNCTION_NAME = 64  # OpenAI's limit for a function name: ^[a-zA-Z0-9_-]{1,64}$
_refresher = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool-lists")
_in_flight: set[Future[None]] = set()


def function_name_for(server: str, tool: str) -> str:
    """"<slug>__<tool>" as a valid function name: other characters become "_", and a name past 64
    characters is cut and ends in a hash of the whole, so that two long names stay apart."""
    name = f"{server}__{_FUNCTION_NAME_RE.sub('_', tool)}"
    if len(name) <= MAX_FUNCTION_NAME:
        return name
    digest = hashlib.sha256(f"{server}__{tool}".encode()).hexdigest()[:8]
    return f"{name[:MAX_FUNCTION_NAME - 9]}_{digest}"


@dataclass(frozen=True)
class Tool:
    server: str  # the ToolServer slug
    name: str  # the tool's MCP name
    description: str
    input_schema: dict[str, Any]  # JSON Schema from the MCP server
    needs_approval: bool  # the server's approval setting ("ask": True)

    @property
    def function_name(self) -> str:
        return function_name_for(self.server, self.name)


@dataclass(frozen=True)
class ServerTools:
    slug: str
    name: str
    up: bool
    error: str  # why it is down, or a note; "" when all is well
    tools: tuple[Tool, ...]  # the last list it gave, also while it is down
    checked_at: datetime | None = None  # the last try to list its tools; None: not tried yet
    refreshed_at: datetime | None = None  # the last time it listed them
    needs_approval: bool = True


@dataclass(frozen=True)
class ToolResult:
    text: str  # the result as text (MCP content items joined; non-text items described)
    is_error: bool
    duration_ms: int
    truncated: bool  # cut at BOOCHAT_TOOL_RESULT_MAX_CHARS


# -- which servers ------------------------------------------------------------------------------------


@once
def _web_search_server() -> MCPServer:
    # One per process: the in-memory client starts a session on it per list or call.
    return build_server()


def builtin_connections() -> list[Connection]:
    """Servers that run inside BooChat: web search when BOOCHAT_SEARXNG_URL is set (every user)."""
    if not settings.BOOCHAT_SEARXNG_URL:
        return []
    return [Connection("web", "Web search", BUILTIN, approval=Approval.ASK, build=_web_search_server)]


def connection_for(row: ToolServer) -> Connection:
    return Connection(row.slug, row.name, row.transport, row.url, tuple(row.request_headers().items()), row.approval,
                      unusable=row.unusable_because())


def connections_for(user: AbstractBaseUser | AnonymousUser) -> list[Connection]:
    """The servers `user` may use: built-in ones, then the enabled rows their groups allow (database work)."""
    return builtin_connections() + [connection_for(row) for row in ToolServer.objects.for_user(user)]


# -- lists, cached ------------------------------------------------------------------------------------


def cache_key(connection: Connection) -> str:
    # The address is part of the key: a server pointed elsewhere does not keep its old list.
    address = hashlib.sha256(f"{connection.transport} {connection.url}".encode()).hexdigest()[:12]
    return f"tools:{_CACHE_VERSION}:{connection.slug}:{address}"


async def fetch_list(connection: Connection, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """One server's tools as a cache entry; a failure is the entry's state (the last list kept)."""
    timeout = settings.BOOCHAT_TOOL_TIMEOUT
    now = time.time()
    try:
        with anyio.fail_after(timeout):
            tools = await client.list_tools(connection, timeout=timeout)
    except Exception as exc:  # every failure of one server is its state, never the page's
        error = client.describe_failure(exc, timeout=timeout)
        logger.warning("tool list of %s: %s", connection.slug, error)
        kept = previous or {}
        return {"tools": kept.get("tools", []), "refreshed_at": kept.get("refreshed_at"), "checked_at": time.time(),
                "up": False, "error": error}
    return {"tools": tools, "refreshed_at": now, "checked_at": time.time(), "up": True, "error": ""}


async def fetch_lists(connections: list[Connection], previous: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every server's list at once; keys are cache keys."""
    results = await asyncio.gather(*(fetch_list(c, previous.get(cache_key(c))) for c in connections))
    return {cache_key(c): result for c, result in zip(connections, results, strict=True)}


def refresh_now(connections: list[Connection]) -> dict[str, dict[str, Any]]:
    """List these servers now, waiting (at most BOOCHAT_TOOL_TIMEOUT): admin's "Check" action."""
    previous = cache.get_many([cache_key(c) for c in connections])
    results = asyncio.run(fetch_lists(connections, previous))
    cache.set_many(results, timeout=_CACHE_SECONDS)
    return results


def _refresh_in_background(connections: list[Connection], previous: dict[str, dict[str, Any]]) -> None:
    # One refresh per server at a time across every process sharing the cache.
    claim = settings.BOOCHAT_TOOL_TIMEOUT + 5
    claimed = [c for c in connections if cache.add(f"{cache_key(c)}:refreshing", 1, timeout=claim)]
    if not claimed:
        return

    async def fetch_and_store(connection: Connection) -> None:
        # Each list is stored as it arrives: a server that never answers delays no other's.
        key = cache_key(connection)
        try:
            cache.set(key, await fetch_list(connection, previous.get(key)), timeout=_CACHE_SECONDS)
        finally:
            cache.delete(f"{key}:refreshing")

    async def fetch_all() -> None:
        await asyncio.gather(*(fetch_and_store(c) for c in claimed))

    def run() -> None:
        asyncio.run(fetch_all())

    future = _refresher.submit(run)
    _in_flight.add(future)
    future.add_done_callback(_in_flight.discard)


def wait_for_background_refreshes(timeout: float) -> None:
    """Block until the background refreshes started so far are done (tests, benchmarks)."""
    wait(list(_in_flight), timeout=timeout)


def _timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _server_tools(connection: Connection, entry: dict[str, Any] | None) -> ServerTools:
    needs_approval = connection.approval != Approval.NEVER
    if entry is None:
        return ServerTools(connection.slug, connection.name, False, "not listed yet", (), needs_approval=needs_approval)
    tools = tuple(
        Tool(connection.slug, item["name"], item["description"], item["input_schema"], needs_approval)
        for item in entry.get("tools", [])
    )
    return ServerTools(connection.slug, connection.name, bool(entry.get("up")), entry.get("error", ""), tools,
                       _timestamp(entry.get("checked_at")), _timestamp(entry.get("refreshed_at")), needs_approval)


def cached_servers(connections: Iterable[Connection]) -> list[ServerTools]:
    """The servers' cached lists, at once; stale and missing ones are refreshed in the background."""
    connections = list(connections)
    cached = cache.get_many([cache_key(c) for c in connections])
    due = time.time() - settings.BOOCHAT_TOOL_LIST_TTL
    stale = [c for c in connections if cached.get(cache_key(c), {}).get("checked_at", 0) <= due]
    if stale:
        _refresh_in_background(stale, {cache_key(c): cached[cache_key(c)] for c in stale if cache_key(c) in cached})
    return [_server_tools(c, cached.get(cache_key(c))) for c in connections]


def servers_now(user: AbstractBaseUser | AnonymousUser) -> list[ServerTools]:
    """`servers_for` for synchronous code (views)."""
    return cached_servers(connections_for(user))


def _releasing_connection(work: Callable[..., T]) -> Callable[..., T]:
    """`work` that closes its thread's database connection when done (outside a transaction): async
    callers go on to wait on tool servers, holding no connection meanwhile."""

    def run(*args: Any) -> T:
        try:
            return work(*args)
        finally:
            if not db_connection.in_atomic_block:
                db_connection.close()

    return run


async def servers_for(user: AbstractBaseUser | AnonymousUser) -> list[ServerTools]:
    """The enabled servers this user's groups may use, with their cached tools; never waits on a
    server that is down (cached with a TTL, refreshed in the background, like hosts)."""
    return await sync_to_async(_releasing_connection(servers_now))(user)


# -- calls --------------------------------------------------------------------------------------------


def _find(user: AbstractBaseUser | AnonymousUser, function_name: str) -> tuple[Connection, str] | None:
    """The server and tool a function name means, among the servers `user` may use: by the cached
    lists, or, for a server not listed yet, by the name itself."""
    slug, sep, rest = function_name.partition("__")
    if not sep or not rest:
        return None
    connection = next((c for c in connections_for(user) if c.slug == slug), None)
    if connection is None:
        return None
    entry = cache.get(cache_key(connection)) or {}
    for item in entry.get("tools", []):
        if function_name_for(connection.slug, item["name"]) == function_name:
            return connection, item["name"]
    return (connection, rest) if not entry.get("refreshed_at") else None


def _result(text: str, *, is_error: bool, started: float) -> ToolResult:
    limit = settings.BOOCHAT_TOOL_RESULT_MAX_CHARS
    truncated = len(text) > limit
    if truncated:
        text = f"{text[:limit]}\n[… cut: the result had {len(text):,} characters, {limit:,} are kept]"
    return ToolResult(text, is_error, round((time.monotonic() - started) * 1000), truncated)


async def call_tool(user: AbstractBaseUser | AnonymousUser, function_name: str, arguments: dict[str, Any], *,
                    timeout: float | None = None) -> ToolResult:
    """Permission checked again; per-call timeout (BOOCHAT_TOOL_TIMEOUT); a server error, a timeout or a
    bad name comes back as ToolResult(is_error=True, text=<why>), never raises for those. Cancellation
    (Stop) propagates and closes the call."""
    started = time.monotonic()
    found = await sync_to_async(_releasing_connection(_find))(user, function_name)
    if found is None:
        return _result(f"There is no tool {function_name!r} this user may call.", is_error=True, started=started)
    if not isinstance(arguments, dict):
        return _result("The arguments must be a JSON object.", is_error=True, started=started)
    connection, name = found
    limit = timeout if timeout is not None else settings.BOOCHAT_TOOL_TIMEOUT
    try:
        with anyio.fail_after(limit):
            result = await client.call_tool(connection, name, arguments, timeout=limit)
    except Exception as exc:  # a server's failure is the call's result, for the model to read
        why = client.describe_failure(exc, timeout=limit)
        logger.warning("tool call %s on %s: %s", name, connection.slug, why)
        return _result(f"{connection.name}: {why}", is_error=True, started=started)
    return _result(client.result_text(result), is_error=bool(result.is_error), started=started)
