"""The Content-Security-Policy header on every page (Django 5.2 has none of its own)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Pages load scripts, styles and images only from BooChat itself (BOOCHAT_CSP to change)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if settings.BOOCHAT_CSP:
            response.headers.setdefault("Content-Security-Policy", settings.BOOCHAT_CSP)
        return response
