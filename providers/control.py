"""Loading and unloading models on a host, and what it runs now (docs/wire.md, "Fleet control").

- llama-swap: `GET /running` (model, state starting / ready / stopping); `POST
  /api/models/unload/<model>`; `GET /unload` for all; a model loads ahead of use on any request
  through `/upstream/<model>/`, here `GET /upstream/<model>/health`, which answers once it is ready.
- llama-server in router mode (several models, one process each): `GET /models` (status.value
  loaded / loading / unloaded / failed), `POST /models/load` and `POST /models/unload` with
  `{"model": id}`.

Every action returns what the host said. A load can take minutes: it is sent from a background
thread and the page follows the host's state.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

import httpx
from django.core.cache import cache

from providers.catalog import cache_key
from providers.http import sync_client
from providers.models import ProviderKind
from providers.routing import Endpoint

logger = logging.getLogger(__name__)
CONTROLLED_KINDS = (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER)
_loads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="model-load")


class ControlError(Exception):
    """The host could not be asked, or refused; the message says which and why."""


@dataclass(frozen=True)
class Running:
    model: str
    state: str  # starting / ready / stopping (llama-swap); loading / loaded / unloaded / failed (router)

    @property
    def settled(self) -> bool:
        return self.state in ("ready", "loaded", "unloaded", "failed")


def _said(response: httpx.Response) -> str:
    text = response.text.strip()[:300]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


def _request(endpoint: Endpoint, method: str, path: str, *, body: dict[str, str] | None = None,
             timeout: float | None = None) -> httpx.Response:
    headers = {**endpoint.headers, **({"Content-Type": "application/json"} if body is not None else {})}
    try:
        with sync_client(timeout=timeout or endpoint.models_timeout) as client:
            return client.request(method, f"{endpoint.base_url}{path}", headers=headers,
                                  content=json.dumps(body).encode() if body is not None else None)
    except httpx.HTTPError as exc:
        raise ControlError(f"{endpoint.provider_name} ({endpoint.provider}) could not be reached: "
                           f"{type(exc).__name__}") from None


def _check(endpoint: Endpoint) -> None:
    if endpoint.kind not in CONTROLLED_KINDS:
        raise ControlError(f"{endpoint.provider_name} ({endpoint.provider}) is not a llama-swap or llama-server host.")


def running(endpoint: Endpoint) -> list[Running]:
    """The models the host runs now, with their state."""
    _check(endpoint)
    path = "/running" if endpoint.kind == ProviderKind.LLAMA_SWAP else "/models"
    response = _request(endpoint, "GET", path)
    if response.status_code != 200:
        raise ControlError(f"{endpoint.provider_name} ({endpoint.provider}) answered {path} with {_said(response)}")
    try:
        payload = response.json()
    except ValueError:
        raise ControlError(f"{endpoint.provider_name} ({endpoint.provider}) did not answer {path} with JSON") from None
    if endpoint.kind == ProviderKind.LLAMA_SWAP:
        rows = payload.get("running") if isinstance(payload, dict) else None
        return [Running(r["model"], str(r.get("state", "ready"))) for r in rows or []
                if isinstance(r, dict) and isinstance(r.get("model"), str)]
    rows = payload.get("data") if isinstance(payload, dict) else None
    return [Running(r["id"], str((r.get("status") or {}).get("value", "unknown"))) for r in rows or []
            if isinstance(r, dict) and isinstance(r.get("id"), str)
            and (r.get("status") or {}).get("value") not in (None, "unloaded")]


def _changed(endpoint: Endpoint, response: httpx.Response, done: str) -> str:
    cache.delete(cache_key(endpoint))  # the model list's loaded state is read again
    if response.status_code >= 400:
        raise ControlError(f"{endpoint.provider_name} ({endpoint.provider}) refused: {_said(response)}")
    logger.info("%s: %s (%s)", endpoint.provider, done, _said(response))
    return f"{done}. {endpoint.provider_name} said {_said(response)}."


def unload(endpoint: Endpoint, model: str) -> str:
    _check(endpoint)
    if endpoint.kind == ProviderKind.LLAMA_SWAP:
        response = _request(endpoint, "POST", f"/api/models/unload/{quote(model, safe='/')}")
    else:
        response = _request(endpoint, "POST", "/models/unload", body={"model": model})
    return _changed(endpoint, response, f"Unloaded {model}")


def unload_all(endpoint: Endpoint) -> str:
    _check(endpoint)
    if endpoint.kind == ProviderKind.LLAMA_SWAP:
        return _changed(endpoint, _request(endpoint, "GET", "/unload"), "Unloaded every model")
    for model in running(endpoint):
        unload(endpoint, model.model)
    return f"Unloaded every model on {endpoint.provider_name}."


def _load_note_key(endpoint: Endpoint) -> str:
    return f"control:1:{endpoint.provider}:load"


def load(endpoint: Endpoint, model: str) -> str:
    """Start loading `model`; the host answers once it is ready (last_load() tells), and its state
    shows meanwhile in running()."""
    _check(endpoint)

    def send() -> None:
        timeout = endpoint.timeout.read or 600.0
        try:
            if endpoint.kind == ProviderKind.LLAMA_SWAP:
                response = _request(endpoint, "GET", f"/upstream/{quote(model, safe='/')}/health", timeout=timeout)
            else:
                response = _request(endpoint, "POST", "/models/load", body={"model": model}, timeout=timeout)
            note = _changed(endpoint, response, f"Loaded {model}")
        except ControlError as exc:
            note = f"Loading {model} failed: {exc}"
            logger.warning("%s", note)
        cache.set(_load_note_key(endpoint), (note, False), timeout=600)

    note = f"Loading {model} on {endpoint.provider_name}…"
    cache.set(_load_note_key(endpoint), (note, True), timeout=int(endpoint.timeout.read or 600) + 60)
    _loads.submit(send)
    return note


def last_load(endpoint: Endpoint) -> tuple[str, bool]:
    """What the last load asked from here came to, and whether the host has still to answer it."""
    note, pending = cache.get(_load_note_key(endpoint)) or ("", False)
    return note, pending
