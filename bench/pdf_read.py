"""Benchmark: reading the text of PDFs that would hold a worker (a bomb of compressed whitespace,
10,000 tiny pages) and of a plain one, as the chat's send reads them.

Prints, per PDF: its size, seconds to an answer (text, cut text or refusal), and the worker's resident
memory before, at its peak and after. Run with `.venv/bin/python bench/pdf_read.py`.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

from harness import setup_django

setup_django()

from boochat.chat.attachments import AttachmentError, read_upload  # noqa: E402
from tests.files import many_pages, pdf, pdf_of_pages, text_page, whitespace_bomb  # noqa: E402


def dense_operators(expanded_bytes: int = 30 * 1024 * 1024) -> bytes:
    """Pages of tiny text operators (within the expanded-bytes budget): slow to parse, so time runs out."""
    import zlib

    operator = b"BT /F1 9 Tf 72 720 Td (word) Tj ET\n"
    page = zlib.compress(operator * (expanded_bytes // 4 // len(operator)), 9), b"/Filter /FlateDecode "
    return pdf_of_pages([text_page("Before the operators")] + [page] * 4)


CASES: list[tuple[str, Callable[[], bytes]]] = [
    ("one page of text", lambda: pdf("Quarterly figures")),
    ("10,000 tiny pages", many_pages),
    ("bomb: 4 pages x 70 MB of whitespace", whitespace_bomb),
    ("bomb after a page of text", lambda: whitespace_bomb(first_page_text="Before the bomb")),
    ("4 pages x 7.5 MB of text operators", dense_operators),
]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    print(f"{'PDF':<38} {'size':>8} {'answer':>8} {'RSS before':>11} {'peak':>8} {'after':>8}  outcome")
    for label, make in CASES:
        data = make()
        before = rss_mb()
        started = time.perf_counter()
        try:
            text = read_upload("bench.pdf", data).text
            outcome = f"{len(text):,} chars" + (f", ends {text[-70:]!r}" if "cut at page" in text else "")
        except AttachmentError as exc:
            outcome = f"refused ({exc.status}): {exc}"
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size = len(data)
        del data
        print(f"{label:<38} {size // 1024:>6}KB {elapsed:>7.2f}s {before:>9.0f}MB {peak:>6.0f}MB "
              f"{rss_mb():>6.0f}MB  {outcome}", flush=True)


if __name__ == "__main__":
    main()
