"""Whether a model takes images, in this order: an admin override (ModelOverride.accepts_images) →
what its llama-server's `/props` said (`modalities.vision`) → its kind (DeepSeek's chat models take
none). Unknown is None: images go only to models known to take them."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache

from providers.catalog import load_catalog
from providers.models import ProviderKind
from providers.props import fetch_props, vision_key
from providers.routing import RoutingError, parse_model_ref, registry, route_for

LLAMA_KINDS = (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER)
KIND_DEFAULT: dict[str, bool | None] = {ProviderKind.DEEPSEEK: False}
_DECISION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ImageSupport:
    accepts: bool | None
    source: str  # override / host / kind / unknown
    askable: bool  # unknown, but its host can tell (llama-server's /props) when the model is used

    @property
    def state(self) -> str:
        """yes / no / ask (its host is asked at the send) / unknown, for the page."""
        if self.accepts is not None:
            return "yes" if self.accepts else "no"
        return "ask" if self.askable else "unknown"


def _decision_key(model_id: str) -> str:
    return f"images:1:{model_id}"


def image_support(model_id: str, *, ask_host: bool = False, timeout: float | None = None) -> ImageSupport:
    """What is known of `model_id` and images. The host's `/props` is asked when the model is loaded
    (as for its context size), or with `ask_host` (at a send with images: the model is about to be
    loaded anyway, so the request may wait for that, up to `timeout`). The answer is kept for
    known_to_take_images()."""
    support = _image_support(model_id, ask_host=ask_host, timeout=timeout)
    try:
        composite = str(parse_model_ref(model_id)[0])
    except RoutingError:
        return support
    cache.set(_decision_key(composite), support.accepts, timeout=_DECISION_SECONDS)
    return support


def _image_support(model_id: str, *, ask_host: bool, timeout: float | None) -> ImageSupport:
    try:
        ref, provider = parse_model_ref(model_id)
    except RoutingError:
        return ImageSupport(None, "unknown", False)
    composite = str(ref)
    override = registry.get().accepts_images.get((provider.slug, ref.model))
    if override is not None:
        return ImageSupport(override, "override", False)
    known = cache.get(vision_key(composite))
    if isinstance(known, bool):
        return ImageSupport(known, "host", False)
    if provider.kind in LLAMA_KINDS and provider.enabled:
        listed = next((m for m in load_catalog(providers=[provider]).models if m.id == composite), None)
        if ask_host or (listed is not None and listed.loaded):
            try:
                route = route_for(provider, ref)
            except RoutingError:
                return ImageSupport(None, "unknown", False)
            fetch_props(route, timeout=timeout if ask_host else None)
            known = cache.get(vision_key(composite))
            if isinstance(known, bool):
                return ImageSupport(known, "host", False)
        return ImageSupport(None, "unknown", True)
    default = KIND_DEFAULT.get(provider.kind)
    return ImageSupport(default, "kind" if default is not None else "unknown", False)


def known_to_take_images(composite_id: str) -> bool:
    """True only if image_support() said lately that the model takes images. No database and no
    host: safe while an answer streams (compaction builds prompts from async code)."""
    return cache.get(_decision_key(composite_id)) is True
