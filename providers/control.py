"""Loading and unloading models on a host, and what it runs now (docs/wire.md, "Fleet control").

- llama-swap: `GET /running` (model, state starting / ready / stopping); `POST
  /api/models/unload/<model>`; `GET /unload` for all; a model loads ahead of use on any request
  through `/upstream/<model>/`, here `GET /upstream/<model>/health`, which answers once it is ready.
- llama-server in router mode (several models, one process each): `GET /models` (status.value
  loaded / loading / unloaded / sleeping; a failed load stays `unloaded` with `failed` and
  `exit_code`), `POST /models/load` and `POST /models/unload` with `{"model": id}`, both answered at
  once and done in the background. A single-model llama-server has none of these.

Only models the host lists are acted on, and every path segment is percent-encoded, so a model name
never reaches another path of the host. A llama-swap load can take minutes: it waits in its host's
own queue (one at a time per host and process, at most BOOCHAT_MAX_WAITING_LOADS per host), and
identical loads are merged. The page follows the host's state until each action shows there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.core.cache import cache

from providers.catalog import ListingError, ProviderStatus, cache_key, parse_model_list
from providers.http import sync_client
from providers.ids import InvalidModelId, validate_model_name
from providers.models import ProviderKind
from providers.routing import Endpoint

logger = logging.getLogger(__name__)
CONTROLLED_KINDS = (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER)
NOTE_SECONDS = 120  # how long what an action came to stays on the page
_queues: dict[str, ThreadPoolExecutor] = {}
_queues_lock = threading.Lock()


class ControlError(Exception):
    """The host could not be asked, or refused; the message says which and why."""


class Refused(ControlError):
    """BooChat refuses the action itself, before the host is asked; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Running:
    model: str
    state: str  # starting / ready / stopping (llama-swap); loading / loaded / sleeping / failed (router)
    exit_code: int | None = None  # a failed router load's

    @property
    def settled(self) -> bool:
        return self.state in ("ready", "loaded", "sleeping", "failed")


@dataclass(frozen=True)
class Note:
    text: str
    error: bool
    pending: bool


def offered(status: ProviderStatus) -> bool:
    """Whether the host has load and unload endpoints: llama-swap always, llama-server in router mode."""
    return status.kind == ProviderKind.LLAMA_SWAP or (status.kind == ProviderKind.LLAMA_SERVER and status.router)


def _name(endpoint: Endpoint) -> str:
    return f"{endpoint.provider_name} ({endpoint.provider})"


def _said(response: httpx.Response) -> str:
    text = response.text.strip()[:300]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


def _path(model: str) -> str:
    """The model as URL path segments, each percent-encoded (llama-swap peers' ids contain `/`)."""
    return "/".join(quote(segment, safe="") for segment in model.split("/"))


def _request(endpoint: Endpoint, method: str, path: str, *, body: dict[str, str] | None = None,
             timeout: float | None = None) -> httpx.Response:
    headers = {**endpoint.headers, **({"Content-Type": "application/json"} if body is not None else {})}
    try:
        with sync_client(timeout=timeout or endpoint.models_timeout) as client:
            return client.request(method, f"{endpoint.base_url}{path}", headers=headers,
                                  content=json.dumps(body).encode() if body is not None else None)
    except httpx.HTTPError as exc:
        raise ControlError(f"{_name(endpoint)} could not be reached: {type(exc).__name__}") from None


def _get_json(endpoint: Endpoint, path: str) -> Any:
    response = _request(endpoint, "GET", path)
    if response.status_code != 200:
        raise ControlError(f"{_name(endpoint)} answered {path} with {_said(response)}")
    try:
        return response.json()
    except ValueError:
        raise ControlError(f"{_name(endpoint)} did not answer {path} with JSON") from None


def _check(endpoint: Endpoint) -> None:
    if endpoint.kind not in CONTROLLED_KINDS:
        raise Refused(f"{_name(endpoint)} is not a llama-swap or llama-server host.", 404)


def _router_models(endpoint: Endpoint) -> dict[str, Running]:
    """A router's `GET /models`, every model with its state; a single-model server is refused."""
    payload = _get_json(endpoint, "/models")
    rows = payload.get("data") if isinstance(payload, dict) else None
    rows = [r for r in rows or [] if isinstance(r, dict) and isinstance(r.get("id"), str)]
    # Only router mode says a model's status; a single-model server lists its one model without it.
    if not any(isinstance(r.get("status"), dict) for r in rows):
        raise Refused(f"{_name(endpoint)} is a single-model llama-server: it cannot load or unload models "
                      "(start it in router mode, without -m, to do that from here).", 409)
    models = {}
    for row in rows:
        status = row.get("status") if isinstance(row.get("status"), dict) else {}
        state = str(status.get("value", "unknown"))
        exit_code = status.get("exit_code") if isinstance(status.get("exit_code"), int) else None
        if state == "unloaded" and status.get("failed") is True:
            state = "failed"
        models[row["id"]] = Running(row["id"], state, exit_code)
    return models


def running(endpoint: Endpoint) -> list[Running]:
    """The models the host runs now with their state, and (router) the ones whose load failed."""
    _check(endpoint)
    if endpoint.kind == ProviderKind.LLAMA_SERVER:
        return [r for r in _router_models(endpoint).values() if r.state != "unloaded"]
    payload = _get_json(endpoint, "/running")
    rows = payload.get("running") if isinstance(payload, dict) else None
    return [Running(r["model"], str(r.get("state", "ready"))) for r in rows or []
            if isinstance(r, dict) and isinstance(r.get("model"), str)]


def _listed(endpoint: Endpoint, model: str, *, running_too: bool) -> dict[str, Running]:
    """The host's own list, asked now; refuses a model it does not list (400)."""
    try:
        validate_model_name(model)
    except InvalidModelId as exc:
        raise Refused(f"{model!r} is not a model name: {exc}.", 400) from None
    if endpoint.kind == ProviderKind.LLAMA_SERVER:
        models = _router_models(endpoint)
    else:
        try:
            entries, _ = parse_model_list(_get_json(endpoint, "/v1/models"))
        except ListingError as exc:
            raise ControlError(f"{_name(endpoint)}: {exc}") from None
        models = {e["id"]: Running(e["id"], "ready" if e["loaded"] else "") for e in entries}
        if running_too:  # llama-swap runs models its config leaves out of /v1/models (`unlisted`)
            models.update({r.model: r for r in running(endpoint)})
    if model not in models:
        raise Refused(f"{_name(endpoint)} does not list a model {model!r}; nothing was sent.", 400)
    return models


def _key(endpoint: Endpoint, model: str, what: str) -> str:
    digest = hashlib.sha256(model.encode()).hexdigest()[:16]
    return f"control:2:{cache_key(endpoint)}:{digest}:{what}"


def _note(endpoint: Endpoint, model: str, text: str, *, error: bool = False, expect: str = "",
          pending: bool = False, seconds: float = NOTE_SECONDS) -> None:
    entry = {"text": text, "error": error, "expect": expect, "pending": pending, "at": time.time(),
             "until": time.time() + seconds}
    cache.set(_key(endpoint, model, "note"), entry, timeout=int(seconds) + NOTE_SECONDS)


def _changed(endpoint: Endpoint, response: httpx.Response, done: str) -> str:
    cache.delete(cache_key(endpoint))  # the model list's loaded state is read again
    if response.status_code >= 400:
        raise ControlError(f"{_name(endpoint)} refused: {_said(response)}")
    logger.info("%s: %s (%s)", endpoint.provider, done, _said(response))
    return f"{done}. {endpoint.provider_name} said {_said(response)}."


def _follow_timeout(endpoint: Endpoint) -> float:
    return endpoint.timeout.read or 600.0


def unload(endpoint: Endpoint, model: str) -> str:
    """Unload one model the host lists or runs."""
    _check(endpoint)
    _listed(endpoint, model, running_too=True)
    if endpoint.kind == ProviderKind.LLAMA_SWAP:
        return _changed(endpoint, _request(endpoint, "POST", f"/api/models/unload/{_path(model)}"), f"Unloaded {model}")
    _changed(endpoint, _request(endpoint, "POST", "/models/unload", body={"model": model}), f"Unloading {model}")
    # The router answers at once and stops the model in the background: follow it until it is gone.
    note = f"Unloading {model} on {endpoint.provider_name}…"
    _note(endpoint, model, note, expect="unloaded", pending=True, seconds=_follow_timeout(endpoint))
    return note


def unload_all(endpoint: Endpoint) -> str:
    _check(endpoint)
    if endpoint.kind == ProviderKind.LLAMA_SWAP:
        return _changed(endpoint, _request(endpoint, "GET", "/unload"), "Unloaded every model")
    models = [r.model for r in running(endpoint) if r.state != "failed"]
    for model in models:
        unload(endpoint, model)
    return f"Unloading every model on {endpoint.provider_name}: {', '.join(models) or 'none was loaded'}."


def _queue(endpoint: Endpoint) -> ThreadPoolExecutor:
    """The host's own load queue in this process: a hung host delays only its own loads."""
    with _queues_lock:
        key = cache_key(endpoint)
        if key not in _queues:
            _queues[key] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-load-{endpoint.provider}")
        return _queues[key]


def load(endpoint: Endpoint, model: str) -> str:
    """Start loading `model`; what it comes to shows in notes() and its state in running()."""
    _check(endpoint)
    listed = _listed(endpoint, model, running_too=False)
    state = listed[model].state
    if state in ("loaded", "loading", "sleeping", "ready"):
        return f"{model} is already {'loaded' if state == 'ready' else state} on {endpoint.provider_name}."
    if endpoint.kind == ProviderKind.LLAMA_SERVER:
        _changed(endpoint, _request(endpoint, "POST", "/models/load", body={"model": model}), f"Loading {model}")
        # {"success":true} only says the router started it; /models tells whether it loaded or failed.
        note = f"Loading {model} on {endpoint.provider_name}…"
        _note(endpoint, model, note, expect="loaded", pending=True, seconds=_follow_timeout(endpoint))
        return note
    timeout = _follow_timeout(endpoint)
    waiting = [m for m, claimed in cache.get_many([_key(endpoint, m, "claim") for m in listed]).items() if claimed]
    limit = settings.BOOCHAT_MAX_WAITING_LOADS
    if len(waiting) >= limit:
        raise Refused(f"{len(waiting)} load{'s' if len(waiting) != 1 else ''} already waiting on {_name(endpoint)} (at most {limit}); "
                      f"try again once one is done.", 503)
    if not cache.add(_key(endpoint, model, "claim"), True, timeout=int(timeout) + 60):
        return f"Loading {model} on {endpoint.provider_name} was already asked for; it is merged with that load."

    def send() -> None:
        try:
            response = _request(endpoint, "GET", f"/upstream/{_path(model)}/health", timeout=timeout)
            _note(endpoint, model, _changed(endpoint, response, f"Loaded {model}"))
        except ControlError as exc:
            logger.warning("Loading %s failed: %s", model, exc)
            _note(endpoint, model, f"Loading {model} failed: {exc}", error=True)
        finally:
            cache.delete(_key(endpoint, model, "claim"))

    note = f"Loading {model} on {endpoint.provider_name}…"
    _note(endpoint, model, note, pending=True, seconds=timeout + 60)
    _queue(endpoint).submit(send)
    return note


def notes(endpoint: Endpoint, models: list[str], now: list[Running]) -> list[Note]:
    """What the actions asked from here came to, oldest first; a router's are checked against `now`."""
    keys = {_key(endpoint, m, "note"): m for m in models}
    states = {r.model: r for r in now}
    found = []
    for key, entry in cache.get_many(list(keys)).items():
        model = keys[key]
        if entry["pending"] and entry["expect"]:
            entry = _settle(endpoint, model, entry, states.get(model))
        found.append(entry)
    return [Note(e["text"], e["error"], e["pending"]) for e in sorted(found, key=lambda e: e["at"])]


def _settle(endpoint: Endpoint, model: str, entry: dict[str, Any], now: Running | None) -> dict[str, Any]:
    """A router action's outcome, once the host's list shows it."""
    state = now.state if now else "unloaded"
    if entry["expect"] == "loaded" and state in ("loaded", "sleeping"):
        text, error = f"Loaded {model}.", False
    elif entry["expect"] == "loaded" and state == "failed":
        code = f" (exit code {now.exit_code})" if now and now.exit_code is not None else ""
        text, error = f"Loading {model} failed: {endpoint.provider_name} reports the load failed{code}.", True
    elif entry["expect"] == "unloaded" and state in ("unloaded", "failed"):
        text, error = f"Unloaded {model}.", False
    elif time.time() > entry["until"]:
        text, error = f"{model} is still {state} on {endpoint.provider_name}, not {entry['expect']}.", True
    else:
        return entry
    _note(endpoint, model, text, error=error)
    return {**entry, "text": text, "error": error, "pending": False}
