"""How django-axes names a login attempt in its log lines (AXES_CLIENT_STR_CALLABLE): its own
format, with every value escaped, so that a username cannot start a forged line of its own."""

from __future__ import annotations

from django.http import HttpRequest

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_for_log(value: object) -> str:
    """`value` as one printable line: control and other unprintable characters as `\\n`, `\\x1b`,
    `\\u2028`, and backslashes and double quotes escaped, so an escape reads back unambiguously."""
    return "".join(_ESCAPES.get(char) or (char if char.isprintable() else char.encode("unicode_escape").decode("ascii"))
                   for char in str(value))


def client_str(username: str | None, ip_address: str | None, user_agent: str | None, path_info: str | tuple[str, ...],
               request: HttpRequest) -> str:
    """`{username: "…", ip_address: "…", user_agent: "…", path_info: "…"}`, axes' verbose format."""
    if isinstance(path_info, (tuple, list)):
        path_info = path_info[0] if path_info else ""
    fields = {"username": username, "ip_address": ip_address, "user_agent": user_agent, "path_info": path_info}
    return "{" + ", ".join(f'{key}: "{escape_for_log(value if value is not None else "")}"'
                           for key, value in fields.items()) + "}"
