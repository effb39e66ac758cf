"""Benchmark: what a tool call costs through tools.catalog.call_tool, and /models/ beside a dead tool server.

(a) `echo` called through the catalog (permission check, a new MCP session, the call, the session
closed), sequentially, over streamable HTTP, the older HTTP+SSE, and in memory (the way the built-in
web search is reached), against the SDK server of tests/fakes/mcp_server.py on 127.0.0.1;
(b) /models/ with one tool server that accepts connections and never answers: the page must not wait
on it (its list is refreshed in the background), cold (nothing cached) or warm.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from harness import percentile, record, setup_django

setup_django()

from asgiref.sync import async_to_sync  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from tests.fakes.mcp_server import FakeMcpServer, build_server  # noqa: E402
from tests.fakes.server import FakeHost, Response  # noqa: E402
from tools import catalog, client  # noqa: E402
from tools.models import ToolServer  # noqa: E402

CALLS = 100


class Unanswering(FakeHost):
    async def handle(self, request):  # noqa: ANN001, ANN201
        return Response(404)


def timed_calls(call: object) -> list[float]:
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    print(f"  {name:<26} p50 {statistics.median(times):7.1f} ms  p99 {percentile(times, 99):7.1f} ms")
    record("tool calls", f"{name} p50", boochat=statistics.median(times))


def main() -> None:
    settings.STATIC_ROOT = tempfile.mkdtemp(prefix="boochat-static-")
    call_command("collectstatic", interactive=False, verbosity=0)  # as `make serve` does
    user = get_user_model().objects.create_user("bench")
    print(f"A tool call through the catalog, {CALLS} sequential calls of echo:")
    for transport in ("streamable_http", "sse"):
        with FakeMcpServer(transport) as server:
            ToolServer.objects.create(slug=transport.replace("_", "-"), name=transport, url=server.url,
                                      transport=transport)
            name = f"{transport.replace('_', '-')}__echo"
            assert async_to_sync(catalog.call_tool)(user, name, {"text": "hi"}).text == "hi"
            report(transport, timed_calls(lambda name=name: async_to_sync(catalog.call_tool)(user, name,
                                                                                               {"text": "hi"})))
    memory = client.Connection("memory", "In memory", client.BUILTIN, build=build_server)
    async_to_sync(client.call_tool)(memory, "echo", {"text": "hi"}, timeout=10)
    report("in memory (client only)", timed_calls(
        lambda: async_to_sync(client.call_tool)(memory, "echo", {"text": "hi"}, timeout=10)))

    dead = Unanswering()
    dead.hang = True
    with dead:
        ToolServer.objects.create(slug="dead", name="Dead", url=f"{dead.url}/mcp")
        browser = Client()
        browser.force_login(user)
        browser.get("/models/")  # imports and templates, once per process
        cold = []
        for _ in range(5):
            cache.clear()
            started = time.perf_counter()
            assert browser.get("/models/").status_code == 200
            cold.append((time.perf_counter() - started) * 1000)
        warm = timed_calls(lambda: browser.get("/models/"))
    print("/models/ with a tool server that never answers:")
    print(f"  cold cache: p50 {statistics.median(cold):7.1f} ms   warm: p50 {statistics.median(warm):7.1f} ms "
          f"p99 {percentile(warm, 99):7.1f} ms")
    record("/models/, one dead tool server", "warm p99", boochat=percentile(warm, 99))


if __name__ == "__main__":
    main()
