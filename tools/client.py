"""Talking to MCP servers with the official SDK: list a server's tools, call one.

Each list or call opens its own session (streamable HTTP, the older HTTP+SSE, or in memory for a
server built into BooChat) and closes it when done, so a cancelled call (Stop) closes its
connection and nothing outlives the request that needed it. Timeouts are the caller's
(`anyio.fail_after` around these functions).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    AudioContent,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    Implementation,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

BUILTIN = "builtin"  # a transport beside Transport's: the server runs inside BooChat
MAX_TOOLS_PER_SERVER = 500
MAX_LIST_PAGES = 20
_CLIENT_INFO = Implementation(name="BooChat", version="1")


class Unusable(Exception):
    """The server cannot be asked (the message says why); nothing was sent."""


@dataclass(frozen=True)
class Connection:
    """How to reach one tool server: a registry row's address, or a built-in server's factory."""

    slug: str
    name: str
    transport: str  # Transport value, or BUILTIN
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    approval: str = "ask"
    build: Callable[[], MCPServer] | None = None  # a built-in server's
    unusable: str = ""  # why it cannot be asked now (its secret's variable is not set): no request is made


@asynccontextmanager
async def open_session(connection: Connection, *, timeout: float) -> AsyncIterator[Client]:
    """An initialized MCP client session with the server; HTTP waits are bounded by `timeout`."""
    if connection.unusable:
        raise Unusable(connection.unusable)
    async with AsyncExitStack() as stack:
        server: Any
        if connection.build is not None:
            server = connection.build()
        elif connection.transport == "sse":
            server = sse_client(connection.url, headers=dict(connection.headers), timeout=timeout,
                                sse_read_timeout=timeout)
        else:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=dict(connection.headers), timeout=httpx2.Timeout(timeout)))
            server = streamable_http_client(connection.url, http_client=http)
        yield await stack.enter_async_context(Client(server, client_info=_CLIENT_INFO, read_timeout_seconds=timeout))


async def list_tools(connection: Connection, *, timeout: float) -> list[dict[str, Any]]:
    """The server's tools as plain values (name, description, input_schema), every page of them."""
    tools: list[dict[str, Any]] = []
    async with open_session(connection, timeout=timeout) as client:
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools += [
                {"name": tool.name, "description": tool.description or "", "input_schema": tool.input_schema}
                for tool in page.tools
            ]
            cursor = page.next_cursor
            if not cursor or len(tools) >= MAX_TOOLS_PER_SERVER:
                break
    return tools[:MAX_TOOLS_PER_SERVER]


async def call_tool(connection: Connection, name: str, arguments: dict[str, Any], *, timeout: float) -> CallToolResult:
    """One call of `name`, as the server answered it."""
    async with open_session(connection, timeout=timeout) as client:
        return await client.call_tool(name, arguments, read_timeout_seconds=timeout)


def result_text(result: CallToolResult) -> str:
    """A tool result as text for the model: text items as they are, other items described."""
    parts = []
    for item in result.content:
        if isinstance(item, TextContent):
            parts.append(item.text)
        elif isinstance(item, ImageContent | AudioContent):
            kind = "image" if isinstance(item, ImageContent) else "audio"
            parts.append(f"[{kind}: {item.mime_type}, {len(item.data) * 3 // 4} bytes, not shown]")
        elif isinstance(item, EmbeddedResource):
            resource = item.resource
            if isinstance(resource, TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[binary resource {resource.uri}: {resource.mime_type or 'unknown type'}, not shown]")
        elif isinstance(item, ResourceLink):
            parts.append(f"[resource link: {item.uri}{' (' + item.name + ')' if item.name else ''}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def describe_failure(exc: BaseException, *, timeout: float) -> str:
    """Why a list or a call failed, in words for people and models (never the secret headers)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, Unusable):
        return str(exc)
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, httpx2.ConnectError | ConnectionError):
        return "connection refused or host unreachable"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, MCPError):
        return f"the server refused: {exc}"
    if isinstance(exc, httpx2.HTTPError):
        return f"HTTP error: {type(exc).__name__}"
    return f"unexpected failure: {type(exc).__name__}: {exc}"[:300]
