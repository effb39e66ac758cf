"""Benchmark: answers through Redis Streams against the in-process broker alone.

Two copies of the app run at once on one SQLite database (gunicorn + uvicorn workers), one with
REDIS_URL and one without; rounds of a 5,000-chunk answer on each, in turns, give the wall time Redis
Streams add to an answer (the job adds every event to the answer's stream as it relays it). Then the
Redis memory one answer's stream takes, against the bytes relayed, and the time it is kept.
Needs Redis: BOOCHAT_BENCH_REDIS_URL (default redis://127.0.0.1:6379/13); its keys get a prefix
of their own. Run with `make bench` or `.venv/bin/python bench/answer_streams.py`.
"""

from __future__ import annotations

import os
import re
import statistics
import time
import uuid

from harness import STACK, logged_in, page_csrf_token, record, running_app, setup_django

setup_django()

import httpx  # noqa: E402
import redis  # noqa: E402

from boochat.models import ChatSession, Message  # noqa: E402
from providers.models import Provider  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

CHUNKS = 5000
ROUNDS = 9
REDIS_URL = os.environ.get("BOOCHAT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def one_answer(client: httpx.Client, user: object, headers: dict[str, str]) -> tuple[float, int, bytes]:
    session = ChatSession.objects.create(user=user, model_id="bench/qwen3-8b", title="bench")
    started = time.perf_counter()
    with client.stream("POST", f"/chat/{session.pk}/send", data={"content": "go"}, headers=headers) as response:
        body = b"".join(response.iter_raw())
    return time.perf_counter() - started, int(response.headers["x-boochat-message"]), body


def main() -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    store = redis.Redis.from_url(REDIS_URL)
    try:
        store.ping()
    except redis.RedisError as exc:
        print(f"answers through Redis Streams: not measured, no Redis at {REDIS_URL} ({exc})")
        return
    host = FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768, loaded=True)], reply=["tok "] * CHUNKS).start()
    Provider.objects.create(slug="bench", name="Bench host", base_url=host.url, is_default=True)
    user, session_key = logged_in("bench")
    try:
        with running_app() as local, running_app(REDIS_URL=REDIS_URL, BOOCHAT_CACHE_PREFIX=prefix) as streams:
            clients = {name: httpx.Client(base_url=base, timeout=120, cookies={"sessionid": session_key})
                       for name, base in (("local", local), ("redis", streams))}
            headers = {name: {"X-BooChat-Stream": "1", "X-CSRFToken": page_csrf_token(c.get("/chat/").text)}
                       for name, c in clients.items()}
            for name in clients:  # warm-up
                one_answer(clients[name], user, headers[name])
            rounds = [(one_answer(clients["local"], user, headers["local"]), one_answer(clients["redis"], user, headers["redis"]))
                      for _ in range(ROUNDS)]
            _, answer_pk, body = rounds[-1][1]
            key = f"{prefix}:answer:{answer_pk}"
            deadline = time.monotonic() + 10
            while store.exists(key) and store.ttl(key) > 300 and time.monotonic() < deadline:
                time.sleep(0.05)  # the end is added after the answer's save
            memory, ttl, entries = store.memory_usage(key, samples=0) or 0, store.ttl(key), store.xlen(key)
            for client in clients.values():
                client.close()
    finally:
        host.stop()
        for leftover in store.scan_iter(f"{prefix}:*"):
            store.delete(leftover)

    ratio = statistics.median(r[0] / l[0] for l, r in rounds) - 1
    local_s, redis_s = statistics.median(l[0] for l, _ in rounds), statistics.median(r[0] for _, r in rounds)
    relayed = sum(len(block) for block in re.findall(rb"(?m)^data: .*$", body))
    text = len(Message.objects.get(pk=answer_pk).content.encode())
    print(f"answers through Redis Streams vs the in-process broker ({ROUNDS} rounds of a {CHUNKS}-chunk answer; app: {STACK}, SQLite)")
    print(f"  wall time of an answer, median:   in-process {local_s * 1000:8.1f} ms   with Redis Streams {redis_s * 1000:8.1f} ms")
    print(f"  added by Redis Streams (median of the rounds' ratios): {ratio:+.1%}")
    print(f"  one answer's stream: {entries} entries, {memory:,} bytes of Redis memory for {relayed:,} bytes of events "
          f"relayed ({memory / relayed:.2f}x) and {text:,} bytes of answer text ({memory / text:.1f}x)")
    print(f"  kept {ttl} s after the answer's end, then expired by Redis")
    record("answer streams", "Redis Streams' share of a 5000-chunk answer's wall time", boochat=ratio * 100, unit="%",
           target="<= 2 %", met=ratio <= 0.02)
    record("answer streams", "Redis memory per answer / bytes relayed", boochat=memory / relayed, unit="x",
           target="<= 1.1x", met=memory / relayed <= 1.1)


if __name__ == "__main__":
    main()
