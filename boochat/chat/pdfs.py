"""A PDF's text, read by pypdf in a child process within a budget of pages, expanded bytes, memory and
time. Past the budget the text read so far is kept and the reason given: a PDF bomb (a few hundred KB
of compressed whitespace that expand to gigabytes, or ten thousand tiny pages) costs the worker nothing
but the wait, and its memory goes with the child.

This file is also the child's program (run as `python -I pdfs.py`): it imports nothing of BooChat or
Django, so the child starts in a fraction of a second and loads only pypdf.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import IO, Any

# Reasons reading stops before the last page, as the child and the parent name them.
CUT_PAGES = "pages"
CUT_EXPANDED = "expanded"
CUT_CHARS = "chars"
CUT_MEMORY = "memory"
CUT_TIME = "time"
CUT_UNREADABLE = "unreadable"  # a page pypdf cannot read, after pages it could
CUT_READER_LIMIT = "reader-limit"  # one of pypdf's own limits (objects in a page, depth of the page tree...)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PdfBudget:
    """What reading one PDF may take; `seconds` is wall-clock time, the child is killed past it."""

    pages: int
    expanded_bytes: int
    memory_bytes: int
    chars: int
    seconds: float


@dataclass(frozen=True)
class PdfText:
    """What was read: the pages' text, how many pages there are and were read, and why reading stopped
    early (`cut`), or why nothing could be read at all (`error`: "encrypted", "unreadable", "no-reader")."""

    pages: list[str]
    page_count: int
    cut: str = ""
    error: str = ""


def read_pdf_text(data: bytes, budget: PdfBudget) -> PdfText:
    """Read `data`'s text in a child process within `budget`; the child is gone when this returns."""
    if budget.seconds <= 0:
        return PdfText(pages=[], page_count=0, cut=CUT_TIME)
    command = [sys.executable, "-I", __file__, json.dumps(asdict(budget))]
    try:
        # No environment: the PDF is hostile input, and the worker's environment holds its secrets.
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={})
    except OSError as exc:  # no process to be had just now (EAGAIN, ENOMEM)
        logger.warning("could not start the PDF reader: %s", exc)
        return PdfText(pages=[], page_count=0, error="no-reader")
    with child:
        try:
            output, errors = child.communicate(data, timeout=budget.seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            child.kill()
            output, errors = child.communicate()  # what the child wrote before it was killed is kept
            timed_out = True
    return _parse(output, errors, returncode=child.returncode, timed_out=timed_out)


def _parse(output: bytes, errors: bytes, *, returncode: int, timed_out: bool) -> PdfText:
    pages: list[str] = []
    page_count, cut, error, done = 0, "", "", False
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:  # the last line, cut short by a kill
            break
        if "text" in event:
            pages.append(event["text"])
        page_count = event.get("page_count", page_count)
        cut = event.get("cut", cut)
        error = event.get("error", error)
        done = done or event.get("done", False)
    if not done and not cut and not error:
        # Killed past the deadline, or gone past its address-space limit (Python cannot always raise
        # MemoryError there: an allocation inside zlib or the interpreter just aborts).
        cut = CUT_TIME if timed_out else CUT_MEMORY
        if not timed_out:
            logger.info("the PDF reader exited with %s: %r", returncode, errors[-500:])
    return PdfText(pages=pages, page_count=page_count, cut=cut, error=error)


# The child's side: everything below runs in the child process only.

def _limit_child(budget: PdfBudget) -> None:
    """The child's own limits: its address space, CPU seconds in case the parent is gone, and no files
    written or processes started (text extraction needs neither)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (budget.memory_bytes, budget.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    cpu = math.ceil(budget.seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _write(out: IO[bytes], **event: Any) -> None:
    out.write(json.dumps(event).encode() + b"\n")
    out.flush()


def _clean(text: str) -> str:
    # NUL cannot be stored in PostgreSQL text, nor lone surrogates in UTF-8: neither is readable text.
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _limit_reached(exc: Exception) -> str:
    # pypdf names its decompression limits (the ones set from the budget) only in the message.
    return CUT_EXPANDED if "while decompressing" in str(exc) else CUT_READER_LIMIT


def _read(data: bytes, budget: PdfBudget, out: IO[bytes]) -> None:
    import io

    from pypdf import PdfReader, overwrite_configuration
    from pypdf.errors import LimitReachedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a broken PDF warns for every object
    # No single stream may expand past the whole budget: pypdf stops decompressing there.
    limit = budget.expanded_bytes
    overwrite_configuration(zlib_maximum_output_length=limit, lzw_maximum_output_length=limit,
                            run_length_maximum_output_length=limit, brotli_maximum_output_length=limit,
                            jbig2_maximum_output_length=limit, array_based_stream_maximum_output_length=limit)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            _write(out, error="encrypted")
            return
        page_count = len(reader.pages)
    except LimitReachedError as exc:
        _write(out, cut=_limit_reached(exc))
        return
    except MemoryError:
        _write(out, cut=CUT_MEMORY)
        return
    except Exception:  # pypdf raises many kinds of errors on malformed input
        _write(out, error="unreadable")
        return
    _write(out, page_count=page_count)
    expanded = chars = 0
    for number in range(page_count):
        if number >= budget.pages:
            _write(out, cut=CUT_PAGES)
            return
        try:
            page = reader.pages[number]
            contents = page.get_contents()
            expanded += len(contents.get_data()) if contents is not None else 0
            if expanded > budget.expanded_bytes:
                _write(out, cut=CUT_EXPANDED)
                return
            text = _clean(page.extract_text() or "")
        except LimitReachedError as exc:
            _write(out, cut=_limit_reached(exc))
            return
        except MemoryError:
            _write(out, cut=CUT_MEMORY)
            return
        except Exception:
            _write(out, cut=CUT_UNREADABLE)
            return
        _write(out, text=text)
        chars += len(text)
        if chars > budget.chars and number + 1 < page_count:
            _write(out, cut=CUT_CHARS)
            return
    _write(out, done=True)


def main() -> None:
    """The child: the budget as JSON in argv, the PDF on stdin, one JSON line per event on stdout."""
    budget = PdfBudget(**json.loads(sys.argv[1]))
    _limit_child(budget)
    _read(sys.stdin.buffer.read(), budget, sys.stdout.buffer)


if __name__ == "__main__":
    main()
