"""The access log without secrets: query parameters that carry keys or tokens (`?api_key=…`, some
clients send them so) are written as `[redacted]`."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

# Names that end so: key, api_key, apikey, x-api-key, token, access_token, client_secret, password, ...
SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|pwd|signature|auth|credentials?)$")
REDACTED = "[redacted]"


def redact_query(target: str) -> str:
    """`target` (a path with its query string) with the values of secret-looking parameters replaced."""
    path, question_mark, query = target.partition("?")
    if not question_mark:
        return target
    parts = []
    for part in query.split("&"):
        name, equals, _ = part.partition("=")
        if equals and SECRET_NAME.search(unquote_plus(name).strip().lower()):
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class RedactSecrets(logging.Filter):
    """A filter for uvicorn's access logger, whose arguments hold the path with its query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(arg) if isinstance(arg, str) and "?" in arg else arg for arg in record.args)
        return True
