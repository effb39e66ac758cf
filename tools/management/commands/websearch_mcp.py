"""`manage.py websearch_mcp --host 127.0.0.1 --port 8808`: BooChat's web search tools (web_search,
read_page) served over MCP streamable HTTP at /mcp, for MCP clients other than BooChat (which runs the
same server in its own process)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tools.websearch import build_server


class Command(BaseCommand):
    help = ("Serve the web search tools (web_search, read_page) as an MCP server over streamable HTTP at "
            "http://HOST:PORT/mcp. It has no authentication: keep it on loopback, or behind a proxy that has.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8808, help="Port to listen on (default 8808).")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port}: a port is a number from 1 to 65535.")
        if not settings.BOOCHAT_SEARXNG_URL:
            self.stderr.write("BOOCHAT_SEARXNG_URL is not set: web_search will answer that web search is not set "
                              "up; read_page works.")
        address = f"[{host}]" if ":" in host else host
        self.stdout.write(f"Web search tools over MCP at http://{address}:{port}/mcp", ending="\n")
        self.stdout.flush()
        # On a loopback address the SDK also refuses requests whose Host or Origin header names another
        # host (DNS rebinding from a browser).
        build_server().run("streamable-http", host=host, port=port)
