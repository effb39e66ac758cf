"""Benchmark: importing one chat of 100,000 linear messages (a BooChat export of about 4 MB).

Prints, on the database DATABASE_URL names (a fresh SQLite file without it):
- in process: seconds to read and save 10,000 to 100,000 messages, with the message cap raised;
- through the app (gunicorn + uvicorn workers): the time the default cap takes to refuse the file,
  and, with the cap raised to take it, the time the import takes while another user loads the chat
  page without pause, with that user's slowest and median page.
Run with `.venv/bin/python bench/imports.py` (PostgreSQL: DATABASE_URL=postgres://…/<empty database>).
"""

from __future__ import annotations

import json
import statistics
import threading
import time

from harness import STACK, logged_in, page_csrf_token, record, running_app, setup_django

setup_django()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402

from boochat.chat import imports  # noqa: E402
from boochat.models import ChatSession  # noqa: E402

SIZES = (10_000, 20_000, 50_000, 100_000)


def export(count: int) -> bytes:
    """One chat of `count` messages, each following the one before, as BooChat exports it."""
    messages = [{"id": n, "parent": n - 1 if n else None, "role": "assistant" if n % 2 else "user",
                 "content": f"message {n}"} for n in range(count)]
    return json.dumps({"format": "boochat.chat/1", "title": "Long", "model": "a/b", "messages": messages}).encode()


def session_of(name: str) -> str:
    return logged_in(name)[1]


def in_process() -> None:
    user = get_user_model().objects.create_user("direct")
    for count in SIZES:
        raw = export(count)
        with override_settings(BOOCHAT_MAX_IMPORT_MESSAGES=count, BOOCHAT_IMPORT_TIMEOUT=600):
            started = time.perf_counter()
            chats = imports.read_export(raw)
            read = time.perf_counter() - started
            imports.import_chats(user, chats)
            total = time.perf_counter() - started
        print(f"  {count:>7,} messages ({len(raw) / 1e6:.1f} MB): read {read:.2f} s, read and saved {total:.2f} s")
        record("imports", f"{count:,} messages imported, in process ({connection.vendor})", boochat=total, unit="s",
               target="< 30 s" if count == 100_000 else "", met=total < 30 if count == 100_000 else None)
    ChatSession.objects.filter(user=user).delete()


def through_app(cap: int | None) -> None:
    raw = export(100_000)
    env = {"BOOCHAT_MAX_IMPORT_MESSAGES": str(cap)} if cap else {}
    importer, reader = session_of(f"importer{cap}"), session_of(f"reader{cap}")
    with running_app(**env) as base, httpx.Client(base_url=base, timeout=120, cookies={"sessionid": importer}) as client, \
            httpx.Client(base_url=base, timeout=120, cookies={"sessionid": reader},
                         limits=httpx.Limits(max_keepalive_connections=0)) as other:  # each load may reach either worker
        token = page_csrf_token(client.get("/chat/").text)
        for _ in range(5):
            other.get("/chat/")  # warm both workers
        pages: list[float] = []
        done = threading.Event()

        def read_pages() -> None:
            while not done.is_set():
                started = time.perf_counter()
                assert other.get("/chat/").status_code == 200
                pages.append(time.perf_counter() - started)

        thread = threading.Thread(target=read_pages)
        thread.start()
        started = time.perf_counter()
        response = client.post("/chat/import", files={"file": ("export.json", raw, "application/json")},
                               headers={"X-CSRFToken": token})
        took = time.perf_counter() - started
        done.set()
        thread.join()
    what = "imported" if response.status_code == 302 else f"refused ({response.status_code})"
    print(f"  100,000 messages {what} in {took:.2f} s (cap {cap or settings.BOOCHAT_MAX_IMPORT_MESSAGES:,}); "
          f"another user's chat page meanwhile: {len(pages)} loads, median {statistics.median(pages) * 1000:.0f} ms, "
          f"slowest {max(pages) * 1000:.0f} ms")
    record("imports", f"100,000 messages {what}, {STACK}", boochat=took, unit="s", target="< 30 s", met=took < 30)
    record("imports", f"slowest page of another user meanwhile ({what})", boochat=max(pages) * 1000,
           target="< 1000 ms", met=max(pages) < 1)


def main() -> None:
    print(f"Imports on {connection.vendor}:")
    in_process()
    print(f"Through the app ({STACK}):")
    through_app(None)
    through_app(100_000)


if __name__ == "__main__":
    main()
