"""Which reasoning controls a model takes, so that the chat offers (and sends) only those.

- DeepSeek: `reasoning_effort` (low / high / max) and thinking on or off (`thinking.type`), per its
  API documentation.
- llama-server (directly or through llama-swap): its `/props`, read only while the model is loaded
  (through llama-swap the request would load it): `chat_template_caps.supports_reasoning_effort`, and
  a chat template that reads `enable_thinking` can be told to think or not through
  `chat_template_kwargs`. What props said is kept for a day; a model not loaded yet offers neither.
- Other kinds: neither (their models vary too much to guess).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from providers.catalog import load_catalog
from providers.context import fetch_props
from providers.models import ProviderKind
from providers.routing import parse_model_ref, registry, resolve, route_for

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
    if provider.kind not in (ProviderKind.LLAMA_SWAP, ProviderKind.LLAMA_SERVER):
        return NONE
    key = f"reasoning:1:{ref}"
    if (cached := cache.get(key)) is not None:
        return Reasoning(tuple(cached[0]), cached[1])
    listed = next((m for m in load_catalog(providers=[provider]).models if m.id == str(ref)), None)
    props = fetch_props(route_for(provider, ref)) if listed is not None and listed.loaded and provider.enabled else None
    found = from_props(props) if props is not None else NONE
    cache.set(key, (found.efforts, found.thinking), timeout=_CACHE_SECONDS if props is not None else _UNKNOWN_SECONDS)
    return found
