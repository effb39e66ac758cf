"""Benchmark: rendering an answer (Markdown, highlighted code, MathML, sanitizing), by answer size.

Run with `.venv/bin/python bench/markdown_render.py`. It decides how the chat shows a streaming
answer (docs/performance.md): rendering the whole answer again for every chunk that arrives costs
the sum over all prefixes, which grows with the square of the answer's length.
"""

from __future__ import annotations

import statistics
import time

from harness import setup_django

setup_django()

from boochat.markdown import render_markdown  # noqa: E402

SECTION = ("Some prose with `inline code`, **bold** and $x^2 + y^2 = r^2$.\n\n- a point\n- another\n\n"
           "```python\n" + "".join(f"values = [n * {i} for n in range(10)]  # line {i}\n" for i in range(15)) + "```\n\n"
           "| a | b |\n|---|---|\n| 1 | 2 |\n\n")
CHUNK_CHARS = 4  # about a token's worth: llama-server sends one token per SSE event


def render_ms(text: str, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        render_markdown.__wrapped__(text)  # not the cache: the cost of a new text
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    print(f"{'answer':>10} {'render once':>12} {'re-render per chunk (estimated total)':>40}")
    for sections in (1, 4, 16, 32):
        text = SECTION * sections
        once = render_ms(text)
        chunks = len(text) // CHUNK_CHARS
        # Rendering every prefix costs about half the full render per chunk on average.
        print(f"{len(text):>9}B {once:>10.1f}ms {chunks * once / 2 / 1000:>30.1f} s of CPU over {chunks} chunks")


if __name__ == "__main__":
    main()
