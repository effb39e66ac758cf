"""Answers rendered on the server: highlighted code, MathML, tables; nothing of the host's runs."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from boochat.management.commands.code_css import code_css
from boochat.markdown import render_markdown
from boochat.models import ChatSession
from tests.factories import add_message

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def test_code_blocks_are_highlighted_with_a_label_and_a_copy_button():
    html = render_markdown("```python\ndef f(x):\n    return x  # done\n```")
    assert '<span class="code-lang">python</span>' in html
    assert '<button type="button" class="copy-code" aria-label="Copy python code">Copy</button>' in html
    assert '<span class="k">def</span>' in html and '<span class="nf">f</span>' in html
    assert '<span class="c1"># done</span>' in html


def test_an_unknown_language_is_shown_plain_and_labelled():
    html = render_markdown("```no-such-language\nx = 1\n```")
    assert '<span class="code-lang">no-such-language</span>' in html
    assert "<code>x = 1\n</code>" in html


def test_host_html_is_escaped_in_text_code_labels_and_maths():
    html = render_markdown(f"{HOSTILE}\n\n```py\"><script>x</script>\n{HOSTILE}\n```\n\n$\\text{{{HOSTILE}}}$\n\n"
                           f"| {HOSTILE} |\n|---|\n| x |")
    assert "<script" not in html and "<img" not in html  # latex2mathml leaves \\text raw; nh3 drops it
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_classes_and_attributes_come_only_from_the_renderer():
    # Markdown cannot carry attributes; an HTML attribute in the source is text, not markup.
    html = render_markdown('<span class="k" onclick="x">hi</span> [link](javascript:alert(1))')
    assert "<span" not in html and "<a " not in html and "href" not in html


def test_inline_and_display_maths_become_mathml():
    html = render_markdown("Euler: $e^{i\\pi}+1=0$.\n\n$$\n\\frac{a}{b}\n$$\n\nAlso \\(x^2\\).")
    assert '<math display="inline"><mrow><msup><mi>e</mi>' in html
    assert '<div class="math-display"><math display="block"><mrow><mfrac>' in html
    assert html.count("<math") == 3


def test_prices_are_not_maths():
    assert "<math" not in render_markdown("It costs $5 and $6 today.")


def test_tables_scroll_in_their_own_box():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |")
    assert re.search(r'<div class="table-wrap" tabindex="0" role="region" aria-label="Table"><table>\s*<thead>', html)


def test_the_code_stylesheet_is_the_one_code_css_makes():
    # static/css/code.css is generated: a style changed in code_css must be regenerated.
    committed = Path(settings.BASE_DIR, "static", "css", "code.css").read_text()
    assert committed == code_css()
    assert "[data-theme=dark] .highlight .k {" in committed and "prefers-color-scheme: dark" in committed


@pytest.mark.django_db
def test_the_chat_page_shows_the_rendered_answer(user_client, django_user_model):
    chat = ChatSession.objects.create(user=django_user_model.objects.get(username="alice"), model_id="x/y")
    add_message(session=chat, role="assistant", content=f"```js\nlet a = 1;\n```\n\n$a^2$ {HOSTILE}")
    body = user_client.get(reverse("chat_session", args=[chat.pk])).content.decode()
    assert '<span class="kd">let</span>' in body and "<msup><mi>a</mi><mn>2</mn></msup>" in body
    assert "<script>alert" not in body and "&lt;img src=x" in body
