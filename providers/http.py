"""HTTP clients for talking to providers.

Relaying (chat streams, the gateway, titles and summaries) goes through `send()`, which uses
aiohttp: measured on this machine, httpx's AsyncClient falls to ~150 requests/s at 50 concurrent
requests where aiohttp serves ~2,500 against the same fake host (encode/httpx#3215). The model
lists and /props probes, a few calls per minute, keep httpx (`async_client`, `sync_client`).

Provider clients ignore HTTP(S)_PROXY variables: providers are reached directly at their
configured URLs, never through whatever proxy the environment names.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from functools import cache
from ssl import SSLContext
from typing import Any

import aiohttp
import httpx


@cache
def tls_context() -> SSLContext:
    # Loading the CA bundle costs tens of milliseconds: do it once per process, not per client.
    return httpx.create_ssl_context()


def async_client(**options: Any) -> httpx.AsyncClient:
    """A client for provider calls from async code (model lists)."""
    return httpx.AsyncClient(verify=tls_context(), trust_env=False, **options)


def sync_client(**options: Any) -> httpx.Client:
    """A client for provider calls from synchronous code."""
    return httpx.Client(verify=tls_context(), trust_env=False, **options)


# -- relaying ---------------------------------------------------------------------------------------


class TransportError(Exception):
    """The host could not be reached, or broke off. `kind` says how: "connect" (refused, no route),
    "connect_timeout", "read_timeout" (no bytes for the read timeout) or "broken" (anything else)."""

    def __init__(self, kind: str, cause: BaseException):
        super().__init__(f"{kind}: {type(cause).__name__}")
        self.kind = kind
        self.cause_name = type(cause).__name__


def _transport_error(exc: BaseException) -> TransportError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportError("connect_timeout", exc)
    if isinstance(exc, asyncio.TimeoutError):
        return TransportError("read_timeout", exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError("connect", exc)
    return TransportError("broken", exc)


_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class UpstreamResponse:
    """An open answer from a host: status and headers now, the body as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers  # case-insensitive
        self._watch: Callable[[bytes], None] | None = None
        self._on_close: Callable[[], None] | None = None

    def attach(self, *, watch: Callable[[bytes], None], on_close: Callable[[], None]) -> None:
        """Show `watch` the body as it is read; call `on_close` once when the response is closed, or
        when it is dropped unclosed (a request counted on a host is never left counted)."""
        self._watch, self._on_close = watch, on_close
        weakref.finalize(self, on_close)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (chunked framing removed, nothing decoded)."""
        try:
            async for chunk in self._response.content.iter_any():
                if self._watch is not None:
                    self._watch(chunk)
                yield chunk
        except _FAILURES as exc:
            # aiohttp raises a broken connection's error before it hands out the bytes that arrived
            # ahead of the break (aio-libs/aiohttp#3026); a host that crashed mid-answer still sent
            # them, so they are passed on first.
            arrived = self._unread()
            if arrived:
                yield arrived
            raise _transport_error(exc) from None

    def _unread(self) -> bytes:
        content = self._response.content
        buffered = list(getattr(content, "_buffer", ()))
        if buffered:
            buffered[0] = buffered[0][getattr(content, "_buffer_offset", 0):]
        return b"".join(buffered)

    async def read(self) -> bytes:
        """The whole body."""
        try:
            body = await self._response.read()
        except _FAILURES as exc:
            raise _transport_error(exc) from None
        if self._watch is not None:
            self._watch(body[-4096:])
        return body

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read to its end, else closed
        (so a host that is still generating sees the client leave and stops)."""
        self._response.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()
_keepers: set[asyncio.Task[None]] = set()


def _session() -> aiohttp.ClientSession:
    """One pooled session per event loop (a worker has one loop; tests make many)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ssl=tls_context(), keepalive_timeout=30, enable_cleanup_closed=True)
        # Bytes are relayed as the host sends them: never ask for compression (aiohttp would ask for
        # gzip) and never decompress. No cookie jar: the session carries every user's requests, and
        # a cookie a host sets (a cloud API's load balancer does) must not go with anyone else's.
        session = _sessions[loop] = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, trust_env=False, skip_auto_headers=("User-Agent",),
            headers={"Accept-Encoding": "identity"}, cookie_jar=aiohttp.DummyCookieJar(),
        )
        keeper = loop.create_task(_close_with_loop(session))
        _keepers.add(keeper)
        keeper.add_done_callback(_keepers.discard)
    return session


async def _close_with_loop(session: aiohttp.ClientSession) -> None:
    # Runs until its loop shuts down (asyncio.run, asgiref and uvicorn cancel what is left), then
    # closes the session's connections while the loop can still do so.
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


async def send(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str],
               connect_timeout: float | None, read_timeout: float | None) -> UpstreamResponse:
    """Send a request and return once the status and headers are in; raise TransportError."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout)
    try:
        response = await _session().request(method, url, data=body, headers=headers, timeout=timeout,
                                             allow_redirects=False)
    except _FAILURES as exc:
        raise _transport_error(exc) from None
    return UpstreamResponse(response)
