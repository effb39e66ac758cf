"""Text as the databases can store it and error messages can quote it. PostgreSQL refuses U+0000 in
text, and no database can encode a lone surrogate (what JSON's `"\\ud800"` escape decodes to): such input
is refused where it arrives, naming the field, the same on every database."""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
QUOTED_CHARS = 60  # of a value an error message quotes


class UnstorableText(ValueError):
    """Text no database can store; the message names the field and the character."""


def unstorable(value: str) -> str | None:
    """What in `value` cannot be stored (a NUL or a lone surrogate), or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character (U+0000)"
    return f"a lone surrogate (U+{ord(found.group()):04X})"


def check_text(field: str, value: str) -> str:
    """`value`, or UnstorableText saying what in `field` cannot be stored."""
    if problem := unstorable(value):
        raise UnstorableText(f"{field} contains {problem}, which cannot be stored.")
    return value


def check_json_text(data: Any) -> None:
    """UnstorableText naming the first key or string of parsed JSON `data` that cannot be stored (as a
    path: `favorite_models[2]`)."""
    stack: list[tuple[str, Any]] = [("the body", data)]
    while stack:  # not recursive: a body nested as deep as the JSON parser allows is walked too
        where, value = stack.pop()
        if isinstance(value, str):
            check_text(where, value)
        elif isinstance(value, dict):
            for key in value:
                check_text(f"a key of {where}", key)
            stack.extend((cut(key) if where == "the body" else f"{where}.{cut(key)}", item)
                         for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in reversed(list(enumerate(value))))


def cut(text: str) -> str:
    """`text` as an error message may show it: at most QUOTED_CHARS characters of it."""
    return text if len(text) <= QUOTED_CHARS else f"{text[:QUOTED_CHARS]}…"


def quoted(value: Any) -> str:
    """`value` as an error message may quote it: a long string cut, a list or an object only named."""
    if isinstance(value, str):
        return repr(value) if len(value) <= QUOTED_CHARS else f"{value[:QUOTED_CHARS]!r}… ({len(value)} characters)"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return repr(value)
