from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.safestring import SafeString

from boochat.markdown import render_markdown
from boochat.models import ChatSession, Folder

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    """Render an answer's Markdown to sanitized HTML."""
    return render_markdown(text or "")


@register.filter(name="get_item")
def get_item(mapping: dict, key: str) -> object:
    """`mapping[key]` in a template (the arena form's chosen models)."""
    return mapping.get(key, "") if isinstance(mapping, dict) else ""


@register.filter(name="model_name")
def model_name(model_id: str) -> str:
    """A composite id without its host: `sam-desktop/box2/gpt-oss-20b` is `box2/gpt-oss-20b`."""
    return str(model_id or "").partition("/")[2] or str(model_id or "")


@register.filter(name="by_recency")
def by_recency(sessions: Iterable[ChatSession]) -> list[tuple[str, list[ChatSession]]]:
    """The chat list under Pinned, Today, Previous 7 days and Older (days in BOOCHAT_TIME_ZONE)."""
    today = timezone.localdate()
    groups: dict[str, list[ChatSession]] = {"Pinned": [], "Today": [], "Previous 7 days": [], "Older": []}
    for session in sessions:
        day = timezone.localdate(session.updated_at)
        label = ("Pinned" if session.pinned else "Today" if day == today
                 else "Previous 7 days" if day >= today - timedelta(days=7) else "Older")
        groups[label].append(session)
    return [(label, chats) for label, chats in groups.items() if chats]


@register.filter(name="by_folder")
def by_folder(sessions: Iterable[ChatSession], folders: Iterable[Folder]) -> list[tuple[str, list[ChatSession]]]:
    """The chat list grouped: each folder (in name order, empty ones too) with its chats, then the
    chats in no folder under by_recency's headings."""
    folders = list(folders)
    filed: dict[int, list[ChatSession]] = {folder.pk: [] for folder in folders}
    loose = []
    for session in sessions:
        if session.folder_id in filed:
            filed[session.folder_id].append(session)
        else:
            loose.append(session)
    return [(f"📁 {folder.name}", filed[folder.pk]) for folder in folders] + by_recency(loose)


@register.filter(name="short")
def short(text: object, width: int = 40) -> str:
    """`text` cut at a word to at most `width` characters, with an ellipsis when cut."""
    return textwrap.shorten(str(text), width=width, placeholder="…")
