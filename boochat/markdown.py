"""Answers are Markdown: rendered on the server, then sanitized (nothing from a model runs).

Code blocks are highlighted by Pygments (token classes styled by static/css/code.css) and get a
language label and a copy button (static/js/ui.js copies); task lists show their boxes and bare
URLs are links, as on GitHub; `$…$`, `$$…$$`, `\\(…\\)` and `\\[…\\]`
become MathML, which browsers render natively; tables scroll inside their own box on a phone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from xml.etree.ElementTree import tostring

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore, normalize
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.gfm_autolink import gfm_autolink_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from mdit_py_plugins.texmath import texmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# What the renderer below writes beyond nh3's defaults. The host's own HTML never gets here as
# markup: markdown-it escapes it ("html": False); this list only decides what of ours survives.
MATHML_TAGS = {"math", "mrow", "mi", "mn", "mo", "mtext", "mspace", "ms", "mfrac", "msqrt", "mroot", "msub", "msup",
               "msubsup", "munder", "mover", "munderover", "mmultiscripts", "mprescripts", "none", "mtable", "mtr",
               "mtd", "mstyle", "mpadded", "mphantom", "menclose", "semantics", "annotation"}
MATHML_ATTRIBUTES = {"display", "mathvariant", "mathsize", "stretchy", "fence", "separator", "lspace", "rspace",
                     "accent", "accentunder", "movablelimits", "largeop", "symmetric", "minsize", "maxsize", "form",
                     "displaystyle", "scriptlevel", "columnalign", "columnspacing", "rowspacing", "columnlines",
                     "rowlines", "frame", "width", "height", "depth", "voffset", "linethickness", "notation",
                     "linebreak", "encoding"}
TOKEN_CLASSES = set(STANDARD_TYPES.values()) - {""}
# No <img>: an image would load from wherever the host's answer points (a pixel that reports the
# conversation in its URL); the renderer writes a Markdown image as a link to it instead.
_TAGS = (nh3.ALLOWED_TAGS - {"img"}) | MATHML_TAGS | {"button"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items() if tag in _TAGS},
    **{tag: MATHML_ATTRIBUTES for tag in MATHML_TAGS},
    "button": {"type", "aria-label"},
    "pre": {"tabindex"},
    "div": {"tabindex", "role", "aria-label"},
}
_CLASSES = {
    "div": {"code-block", "code-head", "table-wrap", "math-display"},
    "span": TOKEN_CLASSES | {"code-lang", "task-box"},
    "button": {"copy-code"},
    "pre": {"highlight"},
    "code": {"math-error"},
    "th": {"align-left", "align-center", "align-right"},
    "td": {"align-left", "align-center", "align-right"},
    "ul": {"contains-task-list"},
    "li": {"task-list-item"},
}
_formatter = HtmlFormatter(nowrap=True)
_CHARACTER_REFERENCE = re.compile(r"&amp;(#x[0-9A-Fa-f]+;|#[0-9]+;)")
MAX_HIGHLIGHTED_CHARS = 100_000  # past this a block is shown plain: highlighting it would hold the page


def _lexer(language: str) -> Any:
    try:
        return get_lexer_by_name(language) if language else None
    except ClassNotFound:
        return None


def render_code(code: str, info: str) -> str:
    """A fenced block: label, copy button, and the code highlighted when its language is known."""
    language = info.split(maxsplit=1)[0][:40] if info.strip() else ""
    lexer = _lexer(language) if len(code) <= MAX_HIGHLIGHTED_CHARS else None
    body = highlight(code, lexer, _formatter) if lexer is not None else escape(code)
    label = escape(language or "text")
    return (f'<div class="code-block"><div class="code-head"><span class="code-lang">{label}</span>'
            f'<button type="button" class="copy-code" aria-label="Copy {label} code">Copy</button></div>'
            f'<pre class="highlight" tabindex="0"><code>{body}</code></pre></div>\n')


def render_math(latex: str, *, display: bool) -> str:
    """LaTeX as MathML, the formula's own text escaped; what latex2mathml cannot read is shown as the source."""
    # Imported at the first formula: latex2mathml takes 11 MB in each worker that loads it.
    from latex2mathml.converter import convert_to_element

    try:
        element = convert_to_element(latex.strip(), display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds of errors on malformed input
        mathml = f'<code class="math-error">{escape(latex)}</code>'
    else:
        # latex2mathml writes its symbols as character references ("&#x0003C;") into the elements' text,
        # and its convert() unescapes the whole output, markup in \text{...} with it. Serialized here,
        # all text is escaped, then only those references are restored (they stay characters, never tags).
        mathml = _CHARACTER_REFERENCE.sub(r"&\1", tostring(element, encoding="unicode"))
    return f'<div class="math-display">{mathml}</div>\n' if display else mathml


def _fence(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    return render_code(token.content, token.info)


def _code_block(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return render_code(tokens[idx].content, "")


def _math_inline(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return render_math(tokens[idx].content, display=False)


def _math_display(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return render_math(tokens[idx].content, display=True)


def _image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = str(token.attrGet("src") or "")
    return f'<a href="{escape(src)}">{escape(alt or src)}</a>'


def _html_inline(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # The task list plugin writes its box as an <input>, which the sanitizer removes (no form controls
    # in answers): a list item's box is shown as a character instead. Nothing else makes these tokens
    # ("html": False), and anything that does is shown as text.
    content = tokens[idx].content
    if content.startswith('<input class="task-list-item-checkbox"'):
        return '<span class="task-box">☑</span>' if 'checked="checked"' in content else '<span class="task-box">☐</span>'
    return escape(content)


def _table_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # Focusable, so a table wider than a phone can be scrolled from the keyboard too.
    return '<div class="table-wrap" tabindex="0" role="region" aria-label="Table">' + self.renderToken(tokens, idx, options, env)


def _table_close(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return self.renderToken(tokens, idx, options, env) + "</div>\n"


def _cell_open(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # A column's alignment (`|--:|`) as a class: the Content-Security-Policy drops style attributes.
    token = tokens[idx]
    align = str(token.attrs.pop("style", "")).removeprefix("text-align:")
    if align in ("left", "center", "right"):
        token.attrSet("class", f"align-{align}")
    return self.renderToken(tokens, idx, options, env)


def _build() -> MarkdownIt:
    # Raw HTML in the source is not passed through at all; nh3 then removes anything unsafe left.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(["table", "strikethrough"])
    # No digits or spaces inside the dollars: "$5 and $6" stays prices.
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False, allow_labels=False, double_inline=True)
    md.use(texmath_plugin, delimiters="brackets")
    md.use(tasklists_plugin)
    md.use(gfm_autolink_plugin)  # bare URLs (https://…, www.…) and e-mail addresses, as GitHub links them
    md.add_render_rule("fence", _fence)
    md.add_render_rule("th_open", _cell_open)
    md.add_render_rule("td_open", _cell_open)
    md.add_render_rule("code_block", _code_block)
    for name in ("math_inline", "math_inline_double"):
        md.add_render_rule(name, _math_display if name.endswith("double") else _math_inline)
    for name in ("math_block", "math_block_eqno", "math_block_label"):
        md.add_render_rule(name, _math_display)
    md.add_render_rule("image", _image)
    md.add_render_rule("html_inline", _html_inline)
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("table_close", _table_close)
    return md


_markdown = _build()


def sanitize(html: str) -> str:
    """Only the tags, attributes and classes the renderer writes; links get rel=noopener."""
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, allowed_classes=_CLASSES,
                     link_rel="noopener noreferrer nofollow")


@lru_cache(maxsize=2048)
def render_markdown(text: str) -> SafeString:
    return mark_safe(sanitize(_markdown.render(text)))  # noqa: S308


def render_part(text: str, env: dict[str, Any]) -> str:
    """Whole blocks of a longer answer, rendered as they are in the whole (`env["references"]`: the
    reference definitions of the text before them)."""
    return sanitize(_markdown.render(text, env))


def parse_blocks(text: str) -> list[Token]:
    """The blocks of `text` as the renderer finds them, with their line ranges (no inline parsing)."""
    state = StateCore(text, _markdown, {})
    normalize(state)
    tokens: list[Token] = []
    _markdown.block.parse(state.src, _markdown, state.env, tokens)
    return tokens
