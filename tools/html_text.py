"""A web page's HTML turned into the text a model reads: the title, headings, paragraphs, list items and
links (as `[text](url)`), without scripts, styles, navigation or hidden parts.

Python's own `html.parser` does it: it never fails on broken markup, needs no new dependency, and the
job is text for a model, not a faithful layout, so a full parser (lxml, BeautifulSoup) would buy
nothing here. Markup that the parser sees as unclosed is treated as closed at the end of the page.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

# Elements whose whole content is left out: code, styling, chrome around the article, embedded media.
DROPPED = frozenset({
    "script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object", "embed",
    "nav", "select", "button", "dialog",
})
# Elements that start and end a block of text.
BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "figure",
    "figcaption", "form", "fieldset", "table", "thead", "tbody", "tfoot", "dl", "dt", "dd", "ul", "ol",
    "address", "details", "summary", "hr", "body",
})
HEADINGS = {f"h{level}": "#" * level for level in range(1, 7)}
# Elements that never have an end tag, so they must not open a dropped region.
VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextParser(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.title = ""
        self.out: list[str] = []
        self._dropped: list[str] = []  # the open dropped elements, innermost last
        self._in_title = False
        self._pre = 0
        self._links: list[tuple[str, int]] = []  # (href, where its text starts in self.out)

    # -- tags ------------------------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.title:
            self._in_title = True
            return
        if self._dropped:
            if tag not in VOID:
                self._dropped.append(tag)
            return
        attributes = dict(attrs)
        if tag in DROPPED or "hidden" in attributes or attributes.get("aria-hidden") == "true":
            if tag not in VOID:
                self._dropped.append(tag)
            return
        if tag in HEADINGS:
            self._block(HEADINGS[tag] + " ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in BLOCKS:
            self._block()
        elif tag in {"br", "tr"}:
            self.out.append("\n")
        elif tag == "pre":
            self.out.append("\n\n```\n")
            self._pre += 1
        elif tag in {"td", "th"}:
            self.out.append(" | ")
        elif tag == "a" and (href := attributes.get("href")):
            self._links.append((href, len(self.out)))
        elif tag == "img" and (alt := (attributes.get("alt") or "").strip()):
            self.out.append(f" [image: {alt}] ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <img/>: nothing to close afterwards.
        if tag in VOID:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._dropped:
            if tag in self._dropped:
                # Close it and anything left open inside it.
                del self._dropped[len(self._dropped) - 1 - self._dropped[::-1].index(tag):]
            return
        if tag in HEADINGS or tag in BLOCKS:
            self._block()
        elif tag == "pre" and self._pre:
            self._pre -= 1
            self.out.append("\n```\n\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            text = _SPACES.sub(" ", "".join(self.out[start:])).strip()
            target = urljoin(self.base_url, href)
            if text and target.startswith(("http://", "https://")) and target != text:
                del self.out[start:]
                self.out.append(f"[{text}]({target})")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._dropped:
            self.out.append(data if self._pre else _SPACES.sub(" ", data))

    # -- text --------------------------------------------------------------------------------------------

    def _block(self, prefix: str = "") -> None:
        self.out.append("\n\n" + prefix)

    def text(self) -> str:
        lines, fenced = [], False
        for line in "".join(self.out).split("\n"):
            if line == "```":
                fenced = not fenced
            elif not fenced:
                line = line.strip(" ")
                if line in {"-", "|"} or set(line) == {"#"}:
                    continue  # an empty list item, table cell or heading
            lines.append(line.rstrip() if fenced else line)
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(html: str, *, base_url: str) -> tuple[str, str]:
    """The page's title and readable text; links relative to `base_url` are made absolute."""
    parser = _TextParser(base_url)
    parser.feed(html)
    parser.close()
    return _SPACES.sub(" ", parser.title).strip(), parser.text()
