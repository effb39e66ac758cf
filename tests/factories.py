from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

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


def make_tool_server(url: str, **overrides: Any) -> Any:
    """A tool server row (tools.models.ToolServer); `groups` takes Group objects."""
    from tools.models import ToolServer

    groups = overrides.pop("groups", [])
    slug = overrides.pop("slug", "lab")
    server = ToolServer.objects.create(slug=slug, url=url, **{"name": slug.title(), **overrides})
    server.groups.set(groups)
    return server


def add_message(*, session: Any, **fields: Any) -> Any:
    """A message at the end of the chat's latest branch, as a send would add it."""
    from boochat.models import Message

    fields.setdefault("parent", session.messages.order_by("-id").first())
    return Message.objects.create(session=session, **fields)


def add_usage(user: Any, key: Any = None, hours: int = 24) -> None:
    """A day of gateway use, a few requests an hour, for the Usage page's chart and tables."""
    from boochat.models import UsageRecord

    now = timezone.now()
    UsageRecord.objects.bulk_create([
        UsageRecord(at=now - timedelta(hours=hour, minutes=5), user=user, key=key if hour % 3 else None,
                    source="gateway" if hour % 3 else "chat", endpoint="chat/completions",
                    model_id="sam-desktop/qwen3-8b" if hour % 2 else "sam-desktop/qwen3-30b",
                    served_by="sam-desktop/qwen3-8b", prompt_tokens=300 + (hour * 137) % 900,
                    completion_tokens=80 + (hour * 53) % 400, cached_tokens=(hour * 31) % 200, status=200)
        for hour in range(hours) if hour % 7 != 5])
