"""An answer's Markdown while it streams: each finished top-level block rendered once, as it is in the
whole answer, and the unfinished tail left as text.

Rendering the whole answer again for each chunk costs the sum over all its prefixes (the square of its
length; docs/performance.md). Here each part of the answer is rendered once, by the renderer and
sanitizer of the final render, so what a reader sees rendered is what the saved answer shows.

When a block is finished: markdown-it's block parser over the complete lines of the tail gives its
top-level blocks with their line ranges (`map`); every block before the last is final once the last has
started, because CommonMark decides where a block ends from the lines up to the next one (a list's
blank line, a setext underline, a lazy continuation, a table's delimiter row, an open fence all belong
to the last block). A line not yet complete counts only if it begins with a letter after a blank line:
that starts a paragraph whatever follows, so the block before it is shown without waiting for its end.
Three constructs reach further back, and are checked for:
- a reference definition makes earlier `[label]`s links: a part that looked up a label not yet defined
  is not cut, and the answer stays text from there to its end (the final render has every definition);
- a definition's title may go on over the next lines, so no cut right after one;
- display maths opened by `$$` or `\\[` closes at any later line (the plugins scan to the end), so a
  cut stands only if the blocks before it parse the same with closers appended.
A part is rendered with the reference definitions of the parts before it, so links resolve as in the
whole. The work stays linear in the answer's length: the tail is parsed only when a line has ended (or
begun after a blank one), and all parsing is kept within PARSE_BUDGET characters per character
received (a look waits while over it); each character is rendered once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markdown_it.token import Token

from boochat.markdown import parse_blocks, render_part

# Characters parsed, at most, per character received: finding blocks costs ~1/30 of rendering them
# (docs/performance.md), so this stays within about one more render of the answer.
PARSE_BUDGET = 32
# Lines that close display maths opened earlier, whatever came between (dollarmath: a line ending in $$;
# texmath: \] anywhere).
_CLOSERS = "\n$$\n\\]\n"
_LINE_END = re.compile(r"\r\n|\r|\n")
_BLANK = re.compile(r"[ \t]*(?:\r\n|\r|\n)?")
_ENDS_BLANK = re.compile(r"(?:\r\n|\r|\n)[ \t]*(?:\r\n|\n)\Z")
# After a blank line, a line that begins with a letter starts a paragraph and belongs to nothing before
# it, whatever it goes on with: the blocks before are final as soon as it begins.
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class FinishedPart:
    """Finished blocks: their sanitized HTML and the source they were rendered from."""

    html: str
    source: str


class _LookedUp(dict[str, Any]):
    """Reference definitions that note the labels looked up in vain."""

    def __init__(self, known: dict[str, Any]) -> None:
        super().__init__(known)
        self.missing: set[str] = set()

    def get(self, label: str, default: Any = None) -> Any:
        if label and label not in self:
            self.missing.add(label)
        return super().get(label, default)


def _shape(blocks: list[Token]) -> list[tuple[str, list[int] | None]]:
    return [(block.type, block.map) for block in blocks]


def _first_line(blocks: list[Token], i: int) -> int | None:
    lines = blocks[i].map if i < len(blocks) else None
    return lines[0] if lines else None


class StreamedMarkdown:
    """Feed it an answer's text as it arrives; it returns the blocks that are finished, rendered once."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._tail_length = 0
        self._references: dict[str, Any] = {}
        self.held = False  # a label not yet defined: the rest waits for the final render
        self._line_ended = False  # a line ended since the tail was last parsed
        self.received = 0  # characters fed
        self.parsed = 0  # characters the block parser read to find finished blocks
        self.rendered = 0  # characters rendered

    @property
    def tail(self) -> str:
        """The text not rendered yet."""
        return "".join(self._pieces)

    def feed(self, text: str) -> FinishedPart | None:
        """Take the next text; return the blocks it finished, if any."""
        if not text:
            return None
        self._pieces.append(text)
        self._tail_length += len(text)
        self.received += len(text)
        if self.held:
            return None
        self._line_ended = self._line_ended or "\n" in text or "\r" in text
        # A look parses the tail twice at most (with closers appended, below).
        if not self._line_ended or self.parsed + 2 * self._tail_length + len(_CLOSERS) > PARSE_BUDGET * self.received:
            return None
        tail = self.tail
        self._pieces = [tail]
        cut = self._cut(tail)
        # After a blank line, look again as soon as the next line begins (above).
        self._line_ended = not cut and _ENDS_BLANK.search(tail[-64:]) is not None
        if not cut:
            return None
        source = tail[:cut]
        references = _LookedUp(self._references)
        html = render_part(source, {"references": references})
        self.rendered += len(source)
        if references.missing:
            self.held = True
            return None
        self._references = dict(references)
        self._pieces = [tail[cut:]]
        self._tail_length = len(tail) - cut
        return FinishedPart(html, source)

    def finish(self) -> FinishedPart:
        """The answer ended: the tail rendered (with the reference definitions of all before it)."""
        source, self._pieces, self._tail_length = self.tail, [], 0
        self.rendered += len(source)
        return FinishedPart(render_part(source, {"references": dict(self._references)}), source)

    def _cut(self, tail: str) -> int:
        """Where the finished blocks of `tail` end (0: none are)."""
        line_starts = [0] + [match.end() for match in _LINE_END.finditer(tail)]
        if tail.endswith("\r"):  # perhaps the first half of a \r\n
            line_starts.pop()
        complete = tail[:line_starts[-1]]
        if len(line_starts) > 1 and _LETTER.match(tail, line_starts[-1]) and _BLANK.fullmatch(tail, line_starts[-2], line_starts[-1]):
            complete = tail + "\n"  # the line begun is a paragraph: no need to wait for its end
            line_starts.append(len(tail))
        blocks = self._top_level(complete)
        if len(blocks) < 2:
            return 0
        probed = self._top_level(complete + _CLOSERS) if "$$" in complete or "\\[" in complete else blocks
        shape, closed = _shape(blocks), _shape(probed)
        last = len(blocks) - 1
        for i in range(last, 0, -1):
            lines = blocks[i].map
            if lines is None:  # texmath's \[ blocks carry no line range
                continue
            if i == last and not self._blank_before(blocks[i - 1], lines[0], tail, line_starts):
                continue
            if closed[:i] != shape[:i] or _first_line(probed, i) != lines[0]:
                continue  # maths closed further on would take in blocks before the cut
            return line_starts[lines[0]]
        return 0

    def _top_level(self, source: str) -> list[Token]:
        self.parsed += len(source)
        return [token for token in parse_blocks(source) if token.level == 0 and token.nesting != -1]

    @staticmethod
    def _blank_before(previous: Token, line: int, tail: str, line_starts: list[int]) -> bool:
        """Only blank lines between `previous` and the block at `line` (no reference definition)."""
        if previous.map is None:
            return False
        return all(_BLANK.fullmatch(tail, line_starts[n], line_starts[n + 1]) for n in range(previous.map[1], line))
