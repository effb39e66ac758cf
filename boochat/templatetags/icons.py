"""The `{% icon %}` tag: one symbol of the vendored Lucide sprite (static/icons.svg)."""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def icon(name: str, css_class: str = "") -> SafeString:
    """An icon that decorates its control: hidden from screen readers, which read the control's name."""
    return format_html('<svg class="icon{}" aria-hidden="true" focusable="false"><use href="{}#{}"></use></svg>',
                       f" {css_class}" if css_class else "", static("icons.svg"), name)
