"""HTTP clients for talking to providers."""

from __future__ import annotations

from functools import cache
from ssl import SSLContext
from typing import Any

import httpx


@cache
def tls_context() -> SSLContext:
    # Loading the CA bundle costs tens of milliseconds: do it once per process, not per client.
    return httpx.create_ssl_context()


def async_client(**options: Any) -> httpx.AsyncClient:
    """A client for provider calls. It ignores HTTP(S)_PROXY variables: providers are reached
    directly at their configured URLs, never through whatever proxy the environment names."""
    return httpx.AsyncClient(verify=tls_context(), trust_env=False, **options)
