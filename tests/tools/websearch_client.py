"""Calling the web search server the way an MCP client does: through the SDK's in-memory transport,
which speaks the protocol's JSON-RPC messages (initialize, tools/list, tools/call) over streams."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import Client
from mcp.types import CallToolResult, ListToolsResult

from tools.websearch import build_server


def call(tool: str, **arguments: Any) -> CallToolResult:
    async def go() -> CallToolResult:
        async with Client(build_server(), mode="legacy") as client:
            return await client.call_tool(tool, arguments)

    return asyncio.run(go())


def list_tools() -> ListToolsResult:
    async def go() -> ListToolsResult:
        async with Client(build_server(), mode="legacy") as client:
            return await client.list_tools()

    return asyncio.run(go())


def text(result: CallToolResult) -> str:
    return "".join(item.text for item in result.content if item.type == "text")
