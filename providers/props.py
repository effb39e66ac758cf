"""llama-server's `/props` for one model: one request tells its context size and whether it takes
images (`modalities.vision`, fixture 02-a-props). What it says of images is kept for a long time:
it changes only when the host's configuration does."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from django.core.cache import cache

from providers.http import sync_client
from providers.routing import Route

logger = logging.getLogger(__name__)

_VISION_SECONDS = 7 * 24 * 3600
_PROPS_SECONDS = 60  # a model reloaded with other settings is read again within a minute


def _props_key(route: Route) -> str:
    return f"props:1:{route.ref}:{route.props_url}"


def vision_key(model_id: str) -> str:
    return f"vision:1:{model_id}"


def fetch_props(route: Route, *, timeout: float | None = None) -> dict[str, Any] | None:
    """The model's `/props` (None where the kind has none or the host did not answer). Through
    llama-swap this loads the model: callers ask only when it is loaded or about to be used."""
    if route.props_url is None:
        return None
    # One request serves the context size, image support and reasoning controls read together (a
    # chat page asks for all of them at once).
    if (answered := cache.get(_props_key(route))) is not None:
        return answered
    try:
        with sync_client(timeout=timeout or route.models_timeout) as client:
            response = client.get(route.props_url, headers=route.headers)
        props = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        logger.info("no props from %s", route.ref)
        return None
    if not isinstance(props, dict):
        return None
    modalities = props.get("modalities")
    vision = modalities.get("vision") if isinstance(modalities, dict) else None
    if isinstance(vision, bool):
        cache.set(vision_key(str(route.ref)), vision, timeout=_VISION_SECONDS)
    cache.set(_props_key(route), props, timeout=_PROPS_SECONDS)
    return props
