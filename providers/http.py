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


# Provider clients ignore HTTP(S)_PROXY variables: providers are reached directly at their
# configured URLs, never through whatever proxy the environment names.
def async_client(**options: Any) -> httpx.AsyncClient:
    """A client for provider calls from async code."""
    return httpx.AsyncClient(verify=tls_context(), trust_env=False, **options)


def sync_client(**options: Any) -> httpx.Client:
    """A client for provider calls from synchronous code."""
    return httpx.Client(verify=tls_context(), trust_env=False, **options)
