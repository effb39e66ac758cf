"""Benchmark: chat sends of this checkout and of another (a git worktree of another commit) in turns,
one send each in alternation, so that a shared machine's moods hit both alike.

    .venv/bin/python bench/send_turns.py /path/to/other/worktree [--sends 200]

Each checkout's app runs under gunicorn with one uvicorn worker (its own virtualenv, its own fake
host, SQLite in a temporary folder, or the database and Redis of DATABASE_URL and REDIS_URL: each
checkout then needs a database of its own, named by BOOCHAT_BENCH_DATABASES="url-here url-there").
Prints time to first byte p50 and p95 of each, and of the fake host asked directly. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

WARM_UP = 10


def serve(sends: int) -> None:
    """The app of the checkout this runs in (its own harness), a fake host and the chats to send to,
    printed as one JSON line; until stdin closes."""
    sys.path.insert(0, str(Path.cwd() / "bench"))
    from harness import logged_in, page_csrf_token, running_app, setup_django

    setup_django()
    import httpx

    from boochat.models import ChatSession
    from providers.models import Provider
    from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel

    host = FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768, loaded=True)]).start()
    Provider.objects.create(slug="bench", name="Bench host", base_url=host.url, is_default=True)
    user, session_key = logged_in("bench")
    try:
        with running_app() as base:
            page = httpx.get(f"{base}/chat/", cookies={"sessionid": session_key})
            chats = ChatSession.objects.bulk_create(
                ChatSession(user=user, model_id="bench/qwen3-8b", title="bench") for _ in range(sends + WARM_UP))
            print(json.dumps({"host": host.url, "cookies": {"sessionid": session_key, "csrftoken": page.cookies["csrftoken"]},
                              "csrf": page_csrf_token(page.text), "urls": [f"{base}/chat/{c.pk}/send" for c in chats]}), flush=True)
            sys.stdin.read()
    finally:
        host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", nargs="?", type=Path, help="the other checkout (with its own .venv)")
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.sends)
        return
    import httpx
    from harness import ROOT, percentile, ttfb

    checkouts = {"this": ROOT, "other": args.other.resolve()}
    databases = dict(zip(checkouts, os.environ.get("BOOCHAT_BENCH_DATABASES", "").split(), strict=False))
    apps, found = {}, {}
    for name, root in checkouts.items():
        env = {**os.environ, "BOOCHAT_BENCH_WORKERS": "1", "BOOCHAT_CACHE_PREFIX": f"bench-{name}"}
        if name in databases:
            env["DATABASE_URL"] = databases[name]
        apps[name] = subprocess.Popen([str(root / ".venv/bin/python"), str(Path(__file__).resolve()), "--serve", "--sends",
                                       str(args.sends)], cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        found[name] = json.loads(apps[name].stdout.readline())  # type: ignore[union-attr]
    body = {"model": "qwen3-8b", "stream": True, "messages": [{"role": "user", "content": "Hello, who are you?"}]}
    times: dict[str, list[float]] = {"direct": [], "this": [], "other": []}
    clients = {name: httpx.Client(timeout=60, cookies=app["cookies"]) for name, app in found.items()}
    try:
        with httpx.Client(timeout=60) as direct:
            for i in range(args.sends + WARM_UP):
                times["direct"].append(ttfb(direct, f"{found['this']['host']}/v1/chat/completions", json=body))
                for name in ("this", "other") if i % 2 else ("other", "this"):
                    times[name].append(ttfb(clients[name], found[name]["urls"][i], data={"content": "Hello, who are you?"},
                                            headers={"X-BooChat-Stream": "1", "X-CSRFToken": found[name]["csrf"]}))
    finally:
        for app in apps.values():
            app.stdin.close()  # type: ignore[union-attr]
            app.wait(30)
    direct_p50 = statistics.median(times["direct"][WARM_UP:])
    print(f"chat sends in turns, {args.sends} each, one uvicorn worker each "
          f"({'DATABASE_URL' if databases else 'SQLite'}{' + Redis' if os.environ.get('REDIS_URL') else ''})")
    print(f"  fake host directly: TTFB p50 {direct_p50:.2f} ms")
    for name, root in checkouts.items():
        kept = times[name][WARM_UP:]
        print(f"  {name:6} {str(root):40} TTFB p50 {statistics.median(kept):6.2f} ms (+{statistics.median(kept) - direct_p50:.2f}),"
              f" p95 {percentile(kept, 95):6.2f} ms")


if __name__ == "__main__":
    main()
