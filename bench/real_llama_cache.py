"""Against two real llama-servers (not in CI): the prompt tokens the hosts say they reused, for a
pool routed by `cache` and by `round_robin`.

Start the servers first (`/work/shared/llama/`: `start.sh` runs llama-server on 127.0.0.1:18080 and
:18081 with the alias `qwen3-8b`; `LLAMA_URLS` names others), then `python bench/real_llama_cache.py`
and `stop.sh`. BooChat runs as `make serve` does (counts in Redis when REDIS_URL or a local one
answers). For each strategy, SESSIONS agent sessions of TURNS turns go through the gateway: a system
prompt they all share, a task of their own, then each turn the answer and a tool's output. Each
turn the sessions send at once (`BOOCHAT_BENCH_ONE_AT_A_TIME=1`: one request at a time, session 0's
turn, session 1's, ...; SESSIONS is odd so that round robin's turns do not line up with the sessions,
as they would with an even count). Each run's system prompt starts with a name of its own:
nothing an earlier run cached helps it. For the second and later turns it prints the member, the prompt tokens, and
`timings.cache_n` (= `usage.prompt_tokens_details.cached_tokens`) against what a perfect router
could have reused (the previous turn's prompt and answer). The prompts stay small: start.sh's
second server has a 1,024-token context shared by its four slots, and a host whose KV cache is full
fails the request ("Context size has been exceeded"; the pool then sends it to the other member).
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from harness import STACK, local_redis_url, running_app, setup_django

setup_django()

from boochat.gateway.keys import create_key  # noqa: E402
from providers.models import ModelOverride, PoolStrategy, Provider, ProviderKind  # noqa: E402

URLS = os.environ.get("LLAMA_URLS", "http://127.0.0.1:18080,http://127.0.0.1:18081").split(",")
MODEL = os.environ.get("LLAMA_MODEL", "qwen3-8b")
SESSIONS, TURNS = 5, 4
ONE_AT_A_TIME = os.environ.get("BOOCHAT_BENCH_ONE_AT_A_TIME") == "1"
SYSTEM = "You are a coding agent in a large repository. Read the files, run the tests, fix the bug. " * 2


def tool_output(session: int, turn: int) -> str:
    return f"Tool output of turn {turn} for task {session}: " + " ".join(f"test_{session}_{k} passed" for k in range(4))


def run(base: str, pool: str, strategy: str, headers: dict[str, str]) -> list[dict]:
    run_id = uuid.uuid4().hex[:8]  # nothing an earlier run left in the hosts' caches helps this one
    conversations = [[{"role": "system", "content": f"Run {run_id} ({strategy}). {SYSTEM}"},
                      {"role": "user", "content": f"Task {n}: make the failing test in module_{n}.py pass."}]
                     for n in range(SESSIONS)]
    previous: list[int] = [0] * SESSIONS
    rows = []
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client, ThreadPoolExecutor(SESSIONS) as sending:
        def send(messages: list[dict]) -> httpx.Response:
            response = client.post("/v1/chat/completions", json={
                "model": pool, "messages": messages, "max_tokens": 8, "temperature": 0})
            return response.raise_for_status()

        for turn in range(TURNS):
            responses = ([send(messages) for messages in conversations] if ONE_AT_A_TIME
                         else list(sending.map(send, conversations)))
            for n, (messages, response) in enumerate(zip(conversations, responses, strict=True)):
                answer = response.json()
                usage, timings = answer["usage"], answer.get("timings", {})
                cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
                if turn:
                    rows.append({"session": n, "turn": turn + 1, "member": response.headers["X-BooChat-Served-By"],
                                 "prompt": usage["prompt_tokens"], "cached": cached, "cache_n": timings.get("cache_n"),
                                 "ideal": previous[n]})
                previous[n] = usage["prompt_tokens"] + usage["completion_tokens"]
                messages += [{"role": "assistant", "content": answer["choices"][0]["message"]["content"] or ""},
                             {"role": "user", "content": tool_output(n, turn)}]
    return rows


def main() -> None:
    for url in URLS:
        try:
            httpx.get(f"{url}/health", timeout=2).raise_for_status()
        except httpx.HTTPError as exc:
            raise SystemExit(f"{url} does not answer /health ({exc}): start the servers first (start.sh).") from None
    members = []
    for index, url in enumerate(URLS):
        provider = Provider.objects.create(slug=f"real-{index}", name=url, kind=ProviderKind.LLAMA_SERVER, base_url=url)
        members.append(f"{provider.slug}/{MODEL}")
    strategies = [PoolStrategy.CACHE, PoolStrategy.ROUND_ROBIN]
    for strategy in strategies:
        pool = Provider.objects.create(slug=f"pool-{strategy.replace('_', '-')}", name=strategy, kind=ProviderKind.POOL,
                                       strategy=strategy)
        ModelOverride.objects.create(provider=pool, model=MODEL, members=members)
    _, key = create_key(name="bench")
    env = {"BOOCHAT_LOG_LEVEL": "WARNING"}
    redis = local_redis_url()
    if redis:
        env.update(REDIS_URL=redis, BOOCHAT_CACHE_PREFIX=f"bench-{uuid.uuid4().hex[:8]}")
    else:
        import harness

        harness.WORKERS = 1
    results = {}
    with running_app(**env) as base:
        for strategy in strategies:
            results[strategy] = run(base, f"pool-{strategy.replace('_', '-')}/{MODEL}", strategy,
                                    {"Authorization": f"Bearer {key}"})
    print(f"Real llama-servers {', '.join(URLS)} ({STACK}{', counts in Redis' if redis else ''}); "
          f"{SESSIONS} sessions × {TURNS} turns, {'one request at a time' if ONE_AT_A_TIME else 'the sessions at once'}")
    for strategy, rows in results.items():
        print(f"  {strategy}:")
        for row in rows:
            print(f"    session {row['session']} turn {row['turn']}: {row['member']:16} prompt {row['prompt']:4} "
                  f"cached_tokens {row['cached']:4} (timings.cache_n {row['cache_n']}) of {row['ideal']} reusable")
        cached, ideal = sum(r["cached"] for r in rows), sum(r["ideal"] for r in rows)
        second = [r for r in rows if r["turn"] == 2]
        print(f"  {strategy}: turns 2+: {cached} of {ideal} reusable prompt tokens reused ({cached / ideal:.0%}); "
              f"second turns: {sum(r['cached'] for r in second)} of {sum(r['ideal'] for r in second)}")


if __name__ == "__main__":
    main()
