"""What a model can do beyond plain text chat, so that the chat offers (and sends) only that.

Images, in this order: an admin override (ModelOverride.accepts_images) → what its llama-server's
`/props` said (`modalities.vision`) → its kind (DeepSeek's chat models take none). Unknown is None:
images go only to models known to take them.

Reasoning controls:
- DeepSeek: `reasoning_effort` (low / high / max) and thinking on or off (`thinking.type`), per its
  API documentation.
- llama-server (directly or through llama-swap): its `/props`, read only while the model is loaded
  (through llama-swap the request would load it): `chat_template_caps.supports_reasoning_effort`, and
  a chat template that reads `enable_thinking` can be told to think or not through
  `chat_template_kwargs`. What props said is kept for a day; a model not loaded yet offers neither.
- Other kinds: neither (their models vary too much to guess).

Tool calls (tool_support): an admin override (ModelOverride.calls_tools) → `/props`
`chat_template_caps.supports_tools`, read as for reasoning → DeepSeek yes → unknown (not offered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from providers.catalog import load_catalog
from providers.models import ProviderKind
from providers.props import fetch_props, vision_key
from providers.routing import RoutingError, parse_model_ref, registry, resolve, route_for

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
    if provider.kind == ProviderKind.POOL:  # the member a request would go to now
        try:
            return _image_support(str(resolve(model_id).ref), ask_host=ask_host, timeout=timeout)
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


# -- reasoning controls ----------------------------------------------------------------------------

_CACHE_SECONDS = 24 * 3600
_UNKNOWN_SECONDS = 60  # not loaded yet: look again soon


@dataclass(frozen=True)
class Reasoning:
    efforts: tuple[str, ...] = ()  # the reasoning_effort values the host takes; none: no control
    thinking: str = ""  # how thinking is turned on or off: "deepseek", "template", or "" (it cannot be)

    def wire(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The request fields for a chat's `reasoning_effort` and `thinking` ("on"/"off") where the
        model takes them; nothing for the others."""
        sent: dict[str, Any] = {}
        if parameters.get("reasoning_effort") in self.efforts:
            sent["reasoning_effort"] = parameters["reasoning_effort"]
        if (thinking := parameters.get("thinking")) in ("on", "off"):
            if self.thinking == "deepseek":
                sent["thinking"] = {"type": "enabled" if thinking == "on" else "disabled"}
            elif self.thinking == "template":
                sent["chat_template_kwargs"] = {"enable_thinking": thinking == "on"}
        return sent


DEEPSEEK = Reasoning(("low", "high", "max"), "deepseek")
NONE = Reasoning()


def from_props(props: dict[str, Any]) -> Reasoning:
    caps = props.get("chat_template_caps")
    template = props.get("chat_template")
    effort = isinstance(caps, dict) and caps.get("supports_reasoning_effort") is True
    return Reasoning(("low", "medium", "high") if effort else (),
                     "template" if isinstance(template, str) and "enable_thinking" in template else "")


def reasoning_for(model_id: str) -> Reasoning:
    """The reasoning controls of a model (any id form)."""
    ref, provider = parse_model_ref(model_id, registry.get())
    if provider.kind == ProviderKind.POOL:  # the member a request would go to now
        return reasoning_for(str(resolve(model_id).ref))
    if provider.kind == ProviderKind.DEEPSEEK:
        return DEEPSEEK
    if provider.kind not in LLAMA_KINDS:
        return NONE
    key = f"reasoning:1:{ref}"
    if (cached := cache.get(key)) is not None:
        return Reasoning(tuple(cached[0]), cached[1])
    listed = next((m for m in load_catalog(providers=[provider]).models if m.id == str(ref)), None)
    props = fetch_props(route_for(provider, ref)) if listed is not None and listed.loaded and provider.enabled else None
    found = from_props(props) if props is not None else NONE
    cache.set(key, (found.efforts, found.thinking), timeout=_CACHE_SECONDS if props is not None else _UNKNOWN_SECONDS)
    return found


# -- tool calls ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolSupport:
    calls: bool | None  # None: not known (not offered)
    source: str  # override / host / kind / unknown


def tool_support(model_id: str) -> ToolSupport:
    """Whether a model calls tools, in this order: an admin override (ModelOverride.calls_tools) →
    what its llama-server's `/props` said (`chat_template_caps.supports_tools`, read only while the
    model is loaded, as for reasoning) → its kind (DeepSeek's chat API takes tools). Unknown is not
    offered; a pool answers for the member a request would go to now."""
    try:
        ref, provider = parse_model_ref(model_id, registry.get())
        if provider.kind == ProviderKind.POOL:
            return tool_support(str(resolve(model_id).ref))
    except RoutingError:
        return ToolSupport(None, "unknown")
    override = registry.get().calls_tools.get((provider.slug, ref.model))
    if override is not None:
        return ToolSupport(override, "override")
    if provider.kind == ProviderKind.DEEPSEEK:
        return ToolSupport(True, "kind")
    if provider.kind not in LLAMA_KINDS or not provider.enabled:
        return ToolSupport(None, "unknown")
    key = f"tools:1:{ref}"
    if isinstance(cached := cache.get(key), bool):
        return ToolSupport(cached, "host")
    listed = next((m for m in load_catalog(providers=[provider]).models if m.id == str(ref)), None)
    try:
        props = fetch_props(route_for(provider, ref)) if listed is not None and listed.loaded else None
    except RoutingError:
        props = None
    caps = props.get("chat_template_caps") if props is not None else None
    if not isinstance(caps, dict) or not isinstance(caps.get("supports_tools"), bool):
        return ToolSupport(None, "unknown")
    cache.set(key, caps["supports_tools"], timeout=_CACHE_SECONDS)
    return ToolSupport(caps["supports_tools"], "host")
