from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from pygments.formatters import HtmlFormatter
from pygments.token import Text

# Both pass WCAG AA (4.5:1) for every token colour on their own background: Pygments' default (its
# colours were chosen for that) and GitHub's dark theme.
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"


def _rules(style: str, scope: str) -> str:
    formatter = HtmlFormatter(style=style)
    text = formatter.style.style_for_token(Text)["color"]
    colour = f" color: #{text};" if text else ""
    background = f"{scope} {{ background: {formatter.style.background_color};{colour} }}\n"
    return background + "\n".join(formatter.get_token_style_defs(scope)) + "\n"


def code_css() -> str:
    """The stylesheet of highlighted code for the light and dark themes, the page's theme deciding
    (`data-theme` on <html>: light, dark, or system, which follows prefers-color-scheme)."""
    light, dark = "[data-theme=light] .highlight", "[data-theme=dark] .highlight"
    system = "[data-theme=system] .highlight"
    return (
        "/* Highlighted code (Pygments token classes). Made by `manage.py code_css`: do not edit. */\n"
        + _rules(LIGHT_STYLE, light) + _rules(DARK_STYLE, dark)
        + "@media (prefers-color-scheme: light) {\n" + _rules(LIGHT_STYLE, system) + "}\n"
        + "@media (prefers-color-scheme: dark) {\n" + _rules(DARK_STYLE, system) + "}\n"
    )


class Command(BaseCommand):
    help = "Print static/css/code.css: the colours of highlighted code in answers, light and dark."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(code_css(), ending="")
