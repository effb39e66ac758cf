"""`manage.py websearch_mcp` started as its own process, listed and called with the SDK's streamable
HTTP client, as another MCP client would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from mcp import Client

from tests.fakes.searxng import FakeSearXNG
from tests.fakes.web_pages import https_site
from tests.tools.websearch_client import text


@pytest.fixture
def websearch_command(tmp_path):
    """`start(*args, **env)` runs the command on a free port and returns its /mcp URL once it takes
    connections; every process started is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **env: str) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        log_path = tmp_path / f"websearch-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "websearch_mcp", "--host", "127.0.0.1", "--port", str(port), *args],
                cwd=settings.BASE_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}/mcp"
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"websearch_mcp did not start (exit code {process.poll()}): {log_path.read_text()}")
                time.sleep(0.1)

    yield start
    for process in started:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)


def test_the_command_serves_both_tools_over_streamable_http(websearch_command, certificate):
    site = https_site(certificate)
    with FakeSearXNG() as searxng, site:
        url = websearch_command(
            BOOCHAT_SEARXNG_URL=searxng.url, BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS="true",
            SSL_CERT_FILE=str(certificate[0]),  # the child trusts the test certificate
        )

        async def session():
            async with Client(url) as client:
                listed = await client.list_tools()
                search = await client.call_tool("web_search", {"query": "tea", "count": 2})
                page = await client.call_tool("read_page", {"url": f"https://localhost:{site.port}/notes.txt"})
                return listed, search, page

        listed, search, page = asyncio.run(session())

    assert sorted(tool.name for tool in listed.tools) == ["read_page", "web_search"]
    assert not search.is_error and text(search).startswith("Results for 'tea':\n\n1. Result 1\n")
    assert searxng.queries() == [{"q": ["tea"], "format": ["json"]}]
    # Connected to the checked address, over TLS with the certificate checked for the name.
    assert (page.is_error, text(page)) == (False, f"URL: https://localhost:{site.port}/notes.txt\n\nplain notes\nline two")
    assert site.requests_to("/notes.txt")[0].headers["host"] == f"localhost:{site.port}"


def test_the_command_refuses_a_port_out_of_range():
    with pytest.raises(CommandError, match="--port 70000: a port is a number from 1 to 65535."):
        call_command("websearch_mcp", port=70000)
