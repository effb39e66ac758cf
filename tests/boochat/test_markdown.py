"""Answers rendered on the server: highlighted code, MathML, tables; nothing of the host's runs."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from boochat.management.commands.code_css import code_css
from boochat.markdown import render_markdown, sanitize
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
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


@pytest.mark.parametrize("latex", [r'\text{<img/src="https://evil.example/x.png">}', r"\mbox{<img/src=https://evil.example/x.png>}",
                                   r"\textrm{<b>x</b>&<i>y</i>}"])
def test_markup_in_the_text_of_maths_is_shown_as_text(latex):
    # latex2mathml passes \text{...} through as it is; a live <img> would load from the host's URL.
    html = render_markdown(f"${latex}$")
    assert "<math" in html and "<mtext>" in html
    assert "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;img/src=" in html or "&lt;b&gt;x&lt;/b&gt;&amp;&lt;i&gt;y&lt;/i&gt;" in html


def test_a_markdown_image_is_a_link_to_it_not_an_image_that_loads():
    html = render_markdown("See ![the chart](https://evil.example/x.png?q=secret) and ![](https://evil.example/y.png)")
    assert "<img" not in html
    assert '<a href="https://evil.example/x.png?q=secret" rel="noopener noreferrer nofollow">the chart</a>' in html
    assert '<a href="https://evil.example/y.png" rel="noopener noreferrer nofollow">https://evil.example/y.png</a>' in html


DANGEROUS_TAGS = ["script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "param", "img", "image",
                  "picture", "source", "track", "video", "audio", "svg", "use", "animate", "set", "foreignObject", "link",
                  "meta", "base", "form", "input", "textarea", "select", "option", "label", "template", "slot", "noscript",
                  "noembed", "noframes", "xmp", "plaintext", "listing", "marquee", "portal", "fencedframe", "canvas",
                  "dialog", "html", "head", "body", "title"]
DANGEROUS_ATTRIBUTES = ["onclick", "onerror", "onload", "onmouseover", "onfocus", "onbegin", "style", "src", "srcset",
                        "srcdoc", "href", "xlink:href", "action", "formaction", "form", "background", "poster", "data",
                        "codebase", "ping", "target", "id", "name", "autofocus", "contenteditable", "popover", "is",
                        "hx-get", "hx-post", "hx-on:click", "data-hx-get"]


@pytest.mark.parametrize("tag", DANGEROUS_TAGS)
def test_the_sanitizer_keeps_no_dangerous_tag(tag):
    # The renderer writes none of these: the sanitizer is the last line, whatever reaches it.
    html = sanitize(f'<{tag} src="https://evil.example/x" href="https://evil.example/x">x</{tag}>'
                    f"<p><{tag}/>y</p><math><{tag}>z</{tag}></math>")
    assert f"<{tag.lower()}" not in html.lower()


# Tags the renderer writes, each where it can stand (a cell in a table, MathML in <math>).
KEPT_TAGS = {"div": "{}", "span": "{}", "p": "{}", "pre": "{}", "code": "{}", "button": "{}", "a": "{}", "table": "{}",
             "td": "<table><tr>{}</tr></table>", "math": "{}", "mi": "<math>{}</math>", "mtext": "<math>{}</math>",
             "mstyle": "<math>{}</math>"}


@pytest.mark.parametrize(("tag", "attribute"), [
    (tag, attribute) for tag in KEPT_TAGS for attribute in DANGEROUS_ATTRIBUTES
    # MathML's own `form` (an operator's place: prefix, infix, postfix) is kept; HTML's is not.
    if not (attribute == "form" and tag.startswith("m"))
])
def test_the_sanitizer_keeps_no_dangerous_attribute(tag, attribute):
    html = sanitize(KEPT_TAGS[tag].format(f'<{tag} {attribute}="javascript:alert(1)">x</{tag}>'))
    assert f"<{tag}" in html
    assert not re.search(rf"\s{re.escape(attribute)}=", html) and "javascript" not in html and "alert" not in html


def test_links_keep_only_safe_targets():
    html = sanitize('<a href="javascript:alert(1)">a</a><a href="data:text/html,x">b</a><a href="https://example.org/">c</a>')
    assert "javascript" not in html and "data:" not in html
    assert '<a href="https://example.org/" rel="noopener noreferrer nofollow">c</a>' in html


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


@pytest.mark.django_db
def test_a_tables_column_alignment_survives_the_content_security_policy(user_client, django_user_model):
    chat = ChatSession.objects.create(user=django_user_model.objects.get(username="alice"), model_id="sam-desktop/qwen3-8b")
    add_message(session=chat, role="user", content="Prices?")
    add_message(session=chat, role="assistant", content="| item | price |\n|:--|--:|\n| tea | 3.50 |", model_id=chat.model_id)
    body = user_client.get(chat.get_absolute_url()).content.decode()
    assert '<th class="align-left">item</th>' in body and '<td class="align-right">3.50</td>' in body
    assert "style=" not in body  # the page's CSP allows no inline style: a class carries the alignment


def test_task_lists_show_their_boxes_without_form_controls():
    html = render_markdown("- [ ] write the test\n- [x] read the issue\n- plain item")
    assert '<ul class="contains-task-list">' in html
    assert '<li class="task-list-item"><span class="task-box">☐</span> write the test</li>' in html
    assert '<li class="task-list-item"><span class="task-box">☑</span> read the issue</li>' in html
    assert "<input" not in html and "[ ]" not in html and "[x]" not in html


def test_bare_urls_become_links_but_not_inside_code_or_links():
    html = render_markdown("See https://example.org/docs/a_(b). Or www.example.com, and `https://in.code` "
                           "[named](https://named.example) <https://angle.example>")
    assert '<a href="https://example.org/docs/a_(b)" rel="noopener noreferrer nofollow">https://example.org/docs/a_(b)</a>.' in html
    assert '<a href="http://www.example.com" rel="noopener noreferrer nofollow">www.example.com</a>,' in html
    assert "<code>https://in.code</code>" in html
    assert html.count("named.example") == 1 and html.count("<a ") == 4


def test_a_bare_url_cannot_carry_markup_or_script():
    html = render_markdown('https://evil.example/?q="><script>alert(1)</script> javascript:alert(1)')
    assert "<script" not in html and 'href="javascript' not in html
