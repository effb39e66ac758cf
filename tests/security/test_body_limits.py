"""Bodies past their limit are refused at the edge, before they are read: a declared Content-Length
gets 413 at once, a chunked body is cut once past the limit, the connection is closed, and nothing
piles up in the temporary directory. Against one app process (gunicorn + uvicorn) for the module,
through raw sockets; its access log keeps keys in query strings out."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import _database_url

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
# The server's attachment limits: one file of up to 1 MB, so a send's limit is 1 MB plus the text.
SERVER_ENV = {"BOOCHAT_MAX_ATTACHMENTS": "1", "BOOCHAT_MAX_IMAGE_BYTES": str(MB), "BOOCHAT_MAX_FILE_BYTES": str(MB),
              "BOOCHAT_MAX_IMPORT_BYTES": str(2 * MB), "BOOCHAT_MAX_BODY_BYTES": str(MB)}
SEND_LIMIT = MB + 200_000 * 12 + 64 * 1024
FIRST_SEND_LIMIT = SEND_LIMIT + 20_000 * 12  # a new chat's first message: its system prompt too
IMPORT_LIMIT = 2 * MB + 64 * 1024
ANONYMOUS_LIMIT = 64 * 1024


def _children(pid):
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found] + [grand for child in found for grand in _children(int(child))]


def held_in(folder, pid):
    """Bytes in `folder`: its files, and the files the server's processes hold open there (a spooled
    body is a file without a name, seen only through its descriptor)."""
    sizes = {}
    for path in folder.rglob("*"):
        if path.is_file():
            sizes[str(path)] = path.stat().st_size
    for process in [pid, *_children(pid)]:
        try:
            descriptors = list(Path(f"/proc/{process}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
                if target.startswith(str(folder)):
                    sizes[f"{process}:{descriptor.name}"] = descriptor.stat().st_size
            except OSError:
                pass
    return sum(sizes.values())


class PeakWatcher:
    """The most the server held in its temporary directory while the block ran."""

    def __init__(self, server):
        self.server, self.peak, self._stop = server, 0, threading.Event()

    def __enter__(self):
        def watch():
            while not self._stop.is_set():
                self.peak = max(self.peak, held_in(self.server.tmpdir, self.server.pid))
                self._stop.wait(0.005)

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, held_in(self.server.tmpdir, self.server.pid))


@pytest.fixture(scope="module")
def server(django_db_setup, collected_static, tmp_path_factory):
    """One app process for the module, on the test database, its temporary files in a folder of
    their own."""
    folder = tmp_path_factory.mktemp("edge")
    tmpdir = folder / "tmp"
    tmpdir.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": _database_url(), "BOOCHAT_BIND": f"127.0.0.1:{port}",
           "BOOCHAT_ALLOWED_HOSTS": "127.0.0.1", "BOOCHAT_SECRET_KEY": settings.SECRET_KEY,
           "BOOCHAT_STATIC_ROOT": str(collected_static), "BOOCHAT_WORKERS": "1", "TMPDIR": str(tmpdir),
           **SERVER_ENV}
    log_path = folder / "app.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:boochat.gunicorn_conf", "boochat.asgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app process did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield SimpleNamespace(port=port, tmpdir=tmpdir, pid=process.pid, log_path=log_path)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture
def logged_in(django_user_model):
    """The Cookie header of a logged-in user's session."""
    browser = Client()
    browser.force_login(django_user_model.objects.create_user("alice"))
    return f"Cookie: {settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


def answers(port):
    try:
        return request(port, head("GET", "/healthz", ["Connection: close"]), timeout=1)[0].startswith(b"HTTP/1.1 200")
    except ConnectionRefusedError:
        return False


def request(port, head, chunks=(), *, timeout=10):
    """Send a request's head and then `chunks`, and read until the server closes the connection.
    Returns (answer, closed); a server that stops reading makes the sending fail, which is fine."""
    answer, closed = b"", False
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            try:
                sock.sendall(head)
                for chunk in chunks:
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                answer += data
    except ConnectionResetError:  # closed with some of the body unread: the kernel answers with a reset
        closed = True
    except TimeoutError:
        pass
    return answer, closed


def head(method, path, headers=(), *, length=None, chunked=False):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(total, size=64 * 1024):
    """`total` bytes of body in HTTP chunks, without the final empty chunk: the body never ends."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield f"{piece:x}\r\n".encode() + b"x" * piece + b"\r\n"
        sent += piece


MULTIPART = "Content-Type: multipart/form-data; boundary=edge"
STREAM = "X-BooChat-Stream: 1"


@pytest.mark.parametrize("method, path, headers, length, answer", [
    ("POST", "/healthz", [], 3_000_000_000, ("text/plain", f"larger than {ANONYMOUS_LIMIT} bytes")),
    ("PATCH", "/api/settings", ["Content-Type: application/json"], 10 * MB,
     ("application/json", f"larger than {ANONYMOUS_LIMIT} bytes")),
    ("POST", "/chat/1/send", [MULTIPART, STREAM, "logged in"], 1024 * MB,
     ("application/json", f"larger than {SEND_LIMIT} bytes")),
    ("POST", "/chat/new", [MULTIPART, STREAM, "logged in"], 1024 * MB,
     ("application/json", f"larger than {FIRST_SEND_LIMIT} bytes (a question of 200,000 characters with 1 files")),
    ("POST", "/chat/import", [MULTIPART, "logged in"], 1024 * MB,
     ("text/plain", f"larger than {IMPORT_LIMIT} bytes (an export file of up to 2,097,152 bytes: BOOCHAT_MAX_IMPORT_BYTES")),
    ("PATCH", "/api/settings", ["Content-Type: application/json", "logged in"], 10 * MB,
     ("application/json", "with up to 500 favorites: BOOCHAT_MAX_FAVORITES")),
    ("POST", "/v1/chat/completions", ["Content-Type: application/json", "Authorization: Bearer not-a-key"], 1024 * MB,
     ("application/json", f'"message": "The request body is larger than {MB} bytes')),
])
def test_a_declared_length_past_the_limit_is_refused_before_the_body_is_read(server, logged_in, method, path, headers,
                                                                           length, answer):
    headers = [logged_in if header == "logged in" else header for header in headers]
    with PeakWatcher(server) as watcher:
        response, closed = request(server.port, head(method, path, headers, length=length))  # no body sent at all
    content_type, message = answer
    assert response.startswith(b"HTTP/1.1 413 "), response[:300]
    assert f"content-type: {content_type}".encode() in response.lower()
    assert message.encode() in response, response
    assert closed and watcher.peak == 0


@pytest.mark.parametrize("path, headers, limit", [
    ("/healthz", [], ANONYMOUS_LIMIT),
    ("/chat/1/send", [MULTIPART, STREAM, "logged in"], SEND_LIMIT),
])
def test_a_chunked_body_is_cut_once_past_the_limit_and_the_connection_closed(server, logged_in, path, headers, limit):
    headers = [logged_in if header == "logged in" else header for header in headers]
    sent = limit + 128 * 1024  # past the limit by two chunks, and the body never ends
    with PeakWatcher(server) as watcher:
        response, closed = request(server.port, head("POST", path, headers, chunked=True), chunked(sent))
    assert response.startswith(b"HTTP/1.1 413 "), response[:300]
    assert f"larger than {limit} bytes".encode() in response
    assert closed  # though the client never finished its body
    assert watcher.peak <= limit


def test_within_its_limit_a_logged_in_body_reaches_the_app_and_an_anonymous_one_does_not(server, logged_in):
    body = b"x" * (ANONYMOUS_LIMIT + 1)  # past the anonymous limit, far within a send's
    for headers, expected in ([MULTIPART, STREAM, logged_in], b"HTTP/1.1 403 "), ([MULTIPART, STREAM], b"HTTP/1.1 413 "):
        response, _ = request(server.port, head("POST", "/chat/1/send", [*headers, "Connection: close"],
                                                length=len(body)) + body)
        assert response.startswith(expected), response[:300]  # 403: Django's CSRF check, after the body was read
    chunks = [f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"]
    response, _ = request(server.port, head("POST", "/chat/1/send", [MULTIPART, STREAM, logged_in,
                                                                     "Connection: close"], chunked=True), chunks)
    assert response.startswith(b"HTTP/1.1 403 "), response[:300]


def test_keys_in_query_strings_are_redacted_in_the_access_log(server):
    path = "/healthz?api_key=sk-secret-1&key=sk-secret-2&access_token=sk-secret-3&x-api-key=sk-secret-4&token=sk-secret-5&page=2"
    response, _ = request(server.port, head("GET", path, ["Connection: close"]))
    assert response.startswith(b"HTTP/1.1 200 ")
    deadline = time.monotonic() + 10
    while "/healthz?api_key=" not in (log := server.log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in log.splitlines() if "/healthz?api_key=" in line)
    assert "sk-secret" not in log
    assert ("/healthz?api_key=[redacted]&key=[redacted]&access_token=[redacted]&x-api-key=[redacted]"
            "&token=[redacted]&page=2") in line
