from __future__ import annotations

from typing import Any

from providers.models import Provider, ProviderKind


def make_provider(**overrides: Any) -> Provider:
    slug = overrides.pop("slug", "sam-desktop")
    fields = {
        "name": slug,
        "kind": ProviderKind.LLAMA_SWAP,
        "base_url": "http://127.0.0.1:9",
        "enabled": True,
        "is_default": False,
        **overrides,
    }
    return Provider.objects.create(slug=slug, **fields)


def add_message(*, session: Any, **fields: Any) -> Any:
    """A message at the end of the chat's latest branch, as a send would add it."""
    from boochat.models import Message

    fields.setdefault("parent", session.messages.order_by("-id").first())
    return Message.objects.create(session=session, **fields)
