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
