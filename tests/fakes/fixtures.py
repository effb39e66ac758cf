"""Read the captured upstream responses in tests/fixtures (copied from shared/fixtures)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@cache
def http_fixture(name: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a `.http` capture (framing already removed)."""
    head, _, body = fixture_bytes(name).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in lines[1:])
    return status, headers, body


@cache
def recorded_answer(name: str, request: str) -> Any:
    """The JSON body of the first answer to `request` ("GET /props") in a recorded session."""
    for exchange in ("\n" + fixture_bytes(name).decode()).split("\n### ")[1:]:
        request_line, _, rest = exchange.partition("\n")
        if request_line.strip() == request:
            return json.loads(rest.partition("\r\n\r\n")[2])
    raise KeyError(f"{request!r} is not recorded in {name}")


def json_fixture(name: str) -> Any:
    path = FIXTURES / name
    if path.suffix == ".http":
        return json.loads(http_fixture(name)[2])
    return json.loads(path.read_bytes())


def sse_events(name: str) -> list[bytes]:
    """The events of a captured stream, each with its terminating blank line (`data: ...\\n\\n`)."""
    body = http_fixture(name)[2] if name.endswith(".http") else fixture_bytes(name)
    return [event + b"\n\n" for event in body.split(b"\n\n") if event.strip()]


def decode_chunked(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2 :]
