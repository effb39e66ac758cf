"""Profile: the CPU one chat send costs in-process, the queries it makes, and where the CPU goes.

One logged-in send, repeated, through Django's async test client (the same ASGI handler and
middleware as the server) against a fake llama-swap on 127.0.0.1 in a thread; each send streams a
one-token answer to its end, so the answer's save is counted too. CPU time of this process
(`time.process_time`), not wall time: the machine is shared. The fake host's thread runs in this
process, so the figure includes its small share (the same for every version). cProfile follows the
event loop's thread and the threads started while it runs (asgiref's, for the login check, the
view's ORM work and the save).
Run: `.venv/bin/python bench/send_profile.py [--sends 300] [--profile [--top 25]]`: the CPU and
queries per send; with --profile, also BooChat's functions by cumulative time and all by their own.
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import threading
import time
from typing import Any

from harness import setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.test import AsyncClient  # noqa: E402
from django.urls import reverse  # noqa: E402

from boochat.models import ChatSession  # noqa: E402
from providers.models import Provider  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

QUERIES: list[str] = []


def counted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    QUERIES.append(sql)
    return execute(sql, params, many, context)


def count_queries(connection: Any, **kwargs: Any) -> None:
    """Count the queries of every connection opened from here on: a send's queries run in a
    request's thread, on that thread's connection, which it opens for the send."""
    if counted not in connection.execute_wrappers:
        connection.execute_wrappers.append(counted)


profiles = [cProfile.Profile()]  # the event loop's thread, then asgiref's threads


def profile_thread(frame: Any, event: str, arg: Any) -> None:
    """Profile a thread started from here on (asgiref starts its thread at the first send, and keeps
    it, so its profile holds every send of the run, the warm-up's too)."""
    profiles.append(cProfile.Profile())
    profiles[-1].enable()


async def send(client: AsyncClient, url: str) -> None:
    response = await client.post(url, {"content": "hi"}, headers={"X-BooChat-Stream": "1"})
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert response.status_code == 200 and b"event: end" in body, body[-300:]


async def sends(client: AsyncClient, user: Any, count: int) -> list[float]:
    """The CPU of each of `count` sends, each the first message of a chat that has none yet (a
    long chat's history costs more to build: bench/long_chat.py)."""
    costs = []
    for _ in range(count):
        chat = await ChatSession.objects.acreate(user=user, model_id="bench/qwen3-8b", title="Bench")
        url = reverse("chat_send", args=[chat.pk])
        QUERIES.clear()  # the chat's INSERT is the benchmark's, not the send's
        started = time.process_time()
        await send(client, url)
        costs.append((time.process_time() - started) * 1e6)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--profile", action="store_true",
                        help="profile the sends (the CPU figure is then the profiler's too)")
    args = parser.parse_args()

    host = FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768, loaded=True)]).start()
    host.reply = ["Hi."]
    try:
        Provider.objects.create(slug="bench", name="Bench host", base_url=host.url, is_default=True)
        user = get_user_model().objects.create_user("bench")
        client = AsyncClient()
        client.force_login(user)

        if args.profile:
            threading.setprofile(profile_thread)
        asyncio.run(sends(client, user, 20))  # warm up: imports, caches, the host's model list
        costs = asyncio.run(sends(client, user, args.sends))
        connection_created.connect(count_queries, weak=False)
        asyncio.run(sends(client, user, 1))
        per_send = list(QUERIES)
        if args.profile:
            profiles[0].enable()
            asyncio.run(sends(client, user, args.sends))
            profiles[0].disable()
    finally:
        host.stop()

    print(f"CPU per send: p50 {statistics.median(costs):,.0f} µs, mean {statistics.fmean(costs):,.0f} µs "
          f"({args.sends} sends)")
    print(f"queries per send: {len(per_send)}")
    for sql in per_send:
        print("  ", sql[:150])
    if not args.profile:
        return
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        profile.disable()
        stats.add(profile)
    print(f"profiled: the event loop's thread ({args.sends} sends) and {len(profiles) - 1} other threads "
          f"(all {2 * args.sends + 21} sends)")
    stats.sort_stats("cumulative").print_stats(r"/(boochat|providers|tools)/", args.top)
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
