"""The request every view here gets: from a logged-in user (LoginRequiredMiddleware), with
`request.htmx` (django-htmx's middleware)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    user: User  # anonymous requests never reach these views
    htmx: HtmxDetails
