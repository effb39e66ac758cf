"""The one upstream client for streams and proxied requests (providers.http)."""

import asyncio
import threading

from providers.http import send
from tests.fakes.server import FakeHost, Response


class SetsCookies(FakeHost):
    """A host behind a load balancer that pins clients with a cookie, as cloud APIs do."""

    async def handle(self, request):
        return Response.json({"ok": True}, headers={"Set-Cookie": "lb=worker-7; Path=/"})


def test_a_cookie_a_host_sets_is_never_sent_on_a_later_request():
    # The client is shared by every user's requests: a cookie kept from one would go with the others.
    with SetsCookies() as host:
        async def twice():  # by name: aiohttp keeps no cookies from an IP address
            for _ in range(2):
                response = await send("POST", f"http://localhost:{host.port}/v1/chat/completions", body=b"{}", headers={},
                                      connect_timeout=5, read_timeout=5)
                await response.read()

        thread = threading.Thread(target=asyncio.run, args=(twice(),))  # Playwright may hold this thread's loop
        thread.start()
        thread.join(10)
        assert len(host.requests) == 2
        assert "cookie" not in host.requests[1].headers
