"""Slow clients do not hold the server: a body trickling past BOOCHAT_BODY_TIMEOUT gets 408."""

import socket
import time
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def trickle(url, path, *, headers, body_sent, wait):
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n{headers}\r\n"
        sock.sendall(head.encode() + body_sent)
        time.sleep(wait)
        return sock.recv(65536).decode("latin-1")


@pytest.mark.parametrize("path, headers", [
    ("/v1/chat/completions", "Content-Type: application/json\r\nAuthorization: Bearer x\r\n"),
    ("/api/settings", "Content-Type: application/json\r\n"),
    ("/chat/1/send", "Content-Type: application/x-www-form-urlencoded\r\nX-BooChat-Stream: 1\r\n"),
])
def test_a_body_trickling_past_the_deadline_gets_408(asgi_server, settings, path, headers):
    settings.BOOCHAT_BODY_TIMEOUT = 1
    settings.BOOCHAT_GATEWAY_OPEN = True  # the key is not what is tested
    started = time.monotonic()
    answer = trickle(asgi_server.url, path, headers=headers, body_sent=b"{", wait=1.5)
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert "BOOCHAT_BODY_TIMEOUT" in answer and time.monotonic() - started < 5


def test_a_body_in_time_is_served(asgi_server, settings):
    settings.BOOCHAT_BODY_TIMEOUT = 2
    settings.BOOCHAT_GATEWAY_OPEN = True
    address = urlsplit(asgi_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\n\r\n{")
        time.sleep(0.5)
        sock.sendall(b"}")
        answer = ""
        while "'model' is required" not in answer and (chunk := sock.recv(65536)):
            answer += chunk.decode("latin-1")
    assert answer.startswith("HTTP/1.1 400") and "'model' is required" in answer  # read in full, then answered
