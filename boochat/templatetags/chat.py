from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from boochat.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    """Render an answer's Markdown to sanitized HTML."""
    return render_markdown(text or "")


@register.filter(name="get_item")
def get_item(mapping: dict, key: str) -> object:
    """`mapping[key]` in a template (the arena form's chosen models)."""
    return mapping.get(key, "") if isinstance(mapping, dict) else ""
