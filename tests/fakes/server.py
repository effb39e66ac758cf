"""A small real HTTP/1.1 server on 127.0.0.1 for fake upstream hosts.

It runs its own asyncio loop in a background thread, so many instances (and hundreds of slow
streams) fit in one test process. It writes responses byte by byte as told, which the fakes need to
replay captured llama-server bytes exactly and, later, to inject faults. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 404: "Not Found",
           405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class RecordedRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, **kwargs: Any) -> Response:
        return cls(status, json.dumps(data, separators=(",", ":")).encode(), **kwargs)


@dataclass
class Stream:
    """A chunked response; each item of `chunks` is one network write (one HTTP chunk)."""

    chunks: Iterable[bytes] | AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    delay: float = 0.0  # seconds before each chunk after the first
    drop_after: int | None = None  # close the connection mid-body after this many chunks
    # After this many chunks, wait until `released` is set (a model that has not written more yet).
    hold_after: int | None = None
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class Raw:
    """Bytes written as they are (status line and framing included), then the connection closes."""

    data: bytes


class FakeHost:
    """Base class: subclasses implement `handle`. Use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.hang = False  # accept connections and read requests, but never answer
        self.first_byte_delay = 0.0  # seconds before a POST is answered at all (a model swap)
        self.disconnects: list[RecordedRequest] = []  # streams the client left before they ended
        self.host = "127.0.0.1"  # any loopback address (127.0.0.2 is one too on Linux)
        self.tls: ssl.SSLContext | None = None  # set before start() to serve HTTPS
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> FakeHost:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve_connection, self.host, 0, backlog=2048, ssl=self.tls)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"{type(self).__name__}", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.disconnects:
                return True
            time.sleep(0.01)
        return False

    async def handle(self, request: RecordedRequest) -> Response | Stream | Raw:
        raise NotImplementedError

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                if self.hang:
                    await asyncio.Event().wait()
                if self.first_byte_delay and request.method == "POST" and not await self._still_there(reader):
                    self.disconnects.append(request)
                    break
                reply = await self.handle(request)
                keep_open = await self._write(reply, request, reader, writer)
                if not keep_open or request.headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client left, or the fake is stopping: nothing to report
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _still_there(self, reader: asyncio.StreamReader) -> bool:
        """Wait first_byte_delay seconds (a model swap); False if the client left meanwhile."""
        client_gone = asyncio.ensure_future(reader.read(1))
        await asyncio.wait({client_gone}, timeout=self.first_byte_delay)
        gone = _closed(client_gone)
        client_gone.cancel()
        with contextlib.suppress(BaseException):
            await client_gone
        return not gone

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return RecordedRequest(method, target, headers, body)

    async def _write(
        self, reply: Response | Stream | Raw, request: RecordedRequest,
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    ) -> bool:
        if isinstance(reply, Raw):
            writer.write(reply.data)
            await writer.drain()
            return False
        status_line = f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}\r\n"
        if isinstance(reply, Response):
            headers = {"Content-Type": reply.content_type, "Content-Length": str(len(reply.body)), **reply.headers}
            writer.write((status_line + _header_block(headers)).encode("latin-1") + reply.body)
            await writer.drain()
            return True
        headers = {"Content-Type": reply.content_type, "Transfer-Encoding": "chunked", "X-Accel-Buffering": "no"}
        writer.write((status_line + _header_block(headers)).encode("latin-1"))
        # The client going away shows as EOF on the read side while we stream.
        client_gone = asyncio.ensure_future(reader.read(1))
        chunks = _aiter(reply.chunks)
        try:
            sent = 0
            started = asyncio.get_running_loop().time()
            async for chunk in chunks:
                if reply.drop_after is not None and sent >= reply.drop_after:
                    writer.transport.abort()  # the host dies mid-answer: no terminating chunk
                    return False
                if sent == reply.hold_after:
                    while not reply.released.is_set() and not _closed(client_gone):
                        await asyncio.wait({client_gone}, timeout=0.02)
                    started = asyncio.get_running_loop().time() - sent * reply.delay  # the schedule goes on from here
                if sent and reply.delay:  # on a fixed schedule, like a model generating at a steady rate
                    wait = started + sent * reply.delay - asyncio.get_running_loop().time()
                    if wait > 0:
                        await asyncio.wait({client_gone}, timeout=wait)
                sent += 1
                if _closed(client_gone):
                    raise ConnectionResetError
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.disconnects.append(request)
            return False
        finally:
            # Closed now, not whenever the collector gets to it: an answer's generator frees its slot
            # (tests.fakes.slots) the moment its client left, as llama-server does.
            await chunks.aclose()
            client_gone.cancel()
            with contextlib.suppress(BaseException):
                await client_gone  # the reader must be free before the next request is read
        return True


def _closed(read: asyncio.Future[bytes]) -> bool:
    """Whether a pending read of the request side has seen the client close (EOF or reset)."""
    if not read.done():
        return False
    return read.cancelled() or read.exception() is not None or read.result() == b""


def _header_block(headers: dict[str, str]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"


async def _aiter(chunks: Iterable[bytes] | AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    if hasattr(chunks, "__aiter__"):
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            if hasattr(chunks, "aclose"):
                await chunks.aclose()
    else:
        for chunk in chunks:
            yield chunk
