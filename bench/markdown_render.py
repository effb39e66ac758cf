"""Benchmark: rendering an answer (Markdown, highlighted code, MathML, sanitizing), by answer size, and
what showing it rendered while it streams costs.

Run with `.venv/bin/python bench/markdown_render.py`. It decides how the chat shows a streaming
answer (docs/performance.md): rendering the whole answer again for every chunk that arrives costs
the sum over all prefixes, which grows with the square of the answer's length; rendering each
finished block once as it completes (boochat.markdown_blocks, fed the host's events as an answer's
job feeds them) costs about one render more than the final one. Times are CPU time of this process
(`time.process_time`), medians of a few rounds, so other load on the machine shifts them less.
"""

from __future__ import annotations

import json
import statistics
import time

from harness import setup_django

setup_django()

from boochat.chat.broker import AnswerBlocks  # noqa: E402
from boochat.markdown import render_markdown  # noqa: E402

SECTION = ("Some prose with `inline code`, **bold** and $x^2 + y^2 = r^2$.\n\n- a point\n- another\n\n"
           "```python\n" + "".join(f"values = [n * {i} for n in range(10)]  # line {i}\n" for i in range(15)) + "```\n\n"
           "| a | b |\n|---|---|\n| 1 | 2 |\n\n")
CHUNK_CHARS = 4  # about a token's worth: llama-server sends one token per SSE event


def render_ms(text: str, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        render_markdown.__wrapped__(text)  # not the cache: the cost of a new text
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def host_events(text: str) -> list[bytes]:
    """The answer as a host streams it: one SSE event per CHUNK_CHARS characters."""
    return [b"data: " + json.dumps({"id": "x", "choices": [{"index": 0, "delta": {"content": text[i:i + CHUNK_CHARS]}}]}).encode()
            for i in range(0, len(text), CHUNK_CHARS)]


def streamed(text: str, rounds: int = 5) -> tuple[float, float, int, float]:
    """Total ms of the job's work for the block events, the longest single event's ms, the parts,
    and the characters parsed per character of the answer."""
    events = host_events(text)
    totals, longest = [], []
    for _ in range(rounds):
        blocks, slowest = AnswerBlocks(), 0.0
        parts = 0
        started = time.process_time()
        for event in events:
            before = time.process_time()
            parts += blocks.feed(event) is not None
            slowest = max(slowest, time.process_time() - before)
        totals.append((time.process_time() - started) * 1000)
        longest.append(slowest * 1000)
    return statistics.median(totals), statistics.median(longest), parts, blocks.markdown.parsed / len(text)


def main() -> None:
    streamed(SECTION, rounds=1)  # Pygments' lexer and latex2mathml load at their first use
    print(f"{'answer':>8} {'render once':>12} {'re-render per chunk (est.)':>27} {'streamed blocks':>16}"
          f" {'longest event':>14} {'parts':>6} {'parsed/char':>12}")
    for sections in (1, 4, 16, 32):
        text = SECTION * sections
        once = render_ms(text)
        chunks = len(text) // CHUNK_CHARS
        # Rendering every prefix costs about half the full render per chunk on average.
        rerender = chunks * once / 2 / 1000
        total, longest, parts, parsed = streamed(text)
        print(f"{len(text):>7}B {once:>10.1f}ms {rerender:>20.1f} s CPU {total:>14.1f}ms {longest:>12.1f}ms {parts:>6}"
              f" {parsed:>12.1f}")


if __name__ == "__main__":
    main()
