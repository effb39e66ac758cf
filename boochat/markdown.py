"""Answers are Markdown: rendered on the server, then sanitized (nothing from a model runs)."""

from __future__ import annotations

from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Raw HTML in the source is not passed through at all; nh3 then removes anything unsafe left.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])


@lru_cache(maxsize=2048)
def render_markdown(text: str) -> SafeString:
    return mark_safe(nh3.clean(_markdown.render(text), link_rel="noopener noreferrer nofollow"))  # noqa: S308
