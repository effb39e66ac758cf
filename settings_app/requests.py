"""The request every view here gets: from a logged-in user (LoginRequiredMiddleware), with
`request.htmx` (django-htmx's middleware); and the JSON object a request body holds."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    user: User  # anonymous requests never reach these views
    htmx: HtmxDetails


class BadJsonBody(ValueError):
    """A request body that is not one JSON object; `str()` says what it is instead ("is not valid JSON")."""


def json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object a request body holds (the settings API's, the gateway's); BadJsonBody if it is not one."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadJsonBody("is not valid JSON") from None
    except RecursionError:
        raise BadJsonBody("is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise BadJsonBody("must be a JSON object")
    return body
