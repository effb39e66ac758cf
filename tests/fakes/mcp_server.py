"""A real MCP server, built with the official SDK, served on 127.0.0.1 for the tests.

Tools: `echo` (text back), `add` (two integers), `slow` (sleeps the seconds asked, then answers),
`fail` (raises: the result is an MCP error result), `huge` (a text of the length asked). Every call
is recorded in `calls`, and every HTTP request's headers in `headers_seen` (the bearer secret).

    with FakeMcpServer() as server:            # streamable HTTP at server.url (…/mcp)
    with FakeMcpServer("sse") as server:       # the older HTTP+SSE at server.url (…/sse)
    with FakeMcpServer(server=MCPServer(…)):   # another server built with the SDK

uvicorn runs the SDK's Starlette app in its own thread and loop; `stop()` ends open streams.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer


def build_server(calls: list[tuple[str, dict[str, Any]]] | None = None) -> MCPServer:
    """The SDK server with the test tools (also usable in memory)."""
    record = calls if calls is not None else []
    server = MCPServer("BooChat test tools")

    @server.tool(description="Say the text back.")
    def echo(text: str) -> str:
        record.append(("echo", {"text": text}))
        return text

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        record.append(("add", {"a": a, "b": b}))
        return a + b

    @server.tool(description="Answer after `seconds` seconds.")
    async def slow(seconds: float) -> str:
        record.append(("slow", {"seconds": seconds}))
        await asyncio.sleep(seconds)
        return f"slept {seconds:g} s"

    @server.tool(description="Always fails.")
    def fail(reason: str = "broken on purpose") -> str:
        record.append(("fail", {"reason": reason}))
        raise RuntimeError(reason)

    @server.tool(description="A text of `size` characters.")
    def huge(size: int) -> str:
        record.append(("huge", {"size": size}))
        return ("0123456789" * (size // 10 + 1))[:size]

    return server


class FakeMcpServer:
    def __init__(self, transport: str = "streamable_http", server: MCPServer | None = None) -> None:
        self.transport = transport
        self.server = server  # another SDK server to serve than the test tools
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.transport == 'sse' else 'mcp'}"

    def _app(self) -> Any:
        mcp = self.server or build_server(self.calls)
        app = mcp.sse_app() if self.transport == "sse" else mcp.streamable_http_app()
        seen = self.headers_seen

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
            await app(scope, receive, send)

        return recording

    def start(self) -> FakeMcpServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="FakeMcpServer")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    def __enter__(self) -> FakeMcpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
