"""Answers rendered while they stream: each finished block once, the same HTML as the whole answer's."""

import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from boochat.markdown import render_markdown
from boochat.markdown_blocks import PARSE_BUDGET, StreamedMarkdown

# Lines that start, continue, end or reach back into blocks: lists, quotes, fences, tables, setext
# underlines, indented code, display maths, reference definitions and their uses, task boxes.
LINES = ["", "", "", "Some text", "more *words*", "- item", "1. first", "2) second", "  indented", "    code", "> quoted",
         ">", "```", "```python", "~~~", "---", "===", "***", "# Heading", "| a | b |", "|---|---|", "| 1 | 2 |",
         "$$", "$$ x^2 $$", "\\[", "\\]", "\\[ a \\]", "(1)", "x = $y$", "[a]: /url", "[a]: /url 'title'", '"title"',
         "[a]", "see [a] and [b][a]", "[b]: </b>", "- [ ] task", "- [x] done", "  - nested", "<div>", "\t- tab",
         "1. [c]", "[c]:", "  /later"]


def stream(text, cuts):
    """Feed `text` cut at `cuts`; return the streamed HTML, the tail and the splitter."""
    blocks = StreamedMarkdown()
    html, start = [], 0
    for end in [*sorted(set(cuts)), len(text)]:
        part = blocks.feed(text[start:end])
        start = max(start, end)
        if part is not None:
            html.append(part.html)
    return "".join(html), blocks.finish().html, blocks


@st.composite
def chunked_answers(draw, lines=LINES):
    text = "\n".join(draw(st.lists(st.sampled_from(lines), max_size=30)))
    text += draw(st.sampled_from(["", "\n", "\n\n", " tail"]))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=40))
    return text, cuts


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_answers())
@example(("P\n\n$$\nx\n\nQ\n\nR\n$$\n", [2, 10, 14]))
@example(("[a]\n\nQ\n\n[a]: /u\n", []))
def test_streamed_blocks_and_the_tail_render_as_the_whole_answer(answer):
    text, cuts = answer
    html, tail, _ = stream(text, cuts)
    assert html + tail == render_markdown(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_answers(lines=[line for line in LINES if not re.search(r"(?<!\\)\[", line)]))
def test_without_reference_labels_blocks_stream_and_match_the_whole_answer(answer):
    text, cuts = answer
    html, tail, blocks = stream(text, cuts)
    assert html + tail == render_markdown(text)
    assert not blocks.held


def test_what_later_text_could_still_change_is_held_back():
    def streamed_sources(text):
        blocks = StreamedMarkdown()
        return [part.source for i in range(len(text)) if (part := blocks.feed(text[i]))]

    # Shown as each next block begins.
    assert streamed_sources("One.\n\n- a\n- b\n\nTwo\n\n| x |\n|---|\n\n```\ncode\n```\n\nEnd") == [
        "One.\n\n", "- a\n- b\n\n", "Two\n\n", "| x |\n|---|\n\n", "```\ncode\n```\n\n"]
    # A list may go on after a blank line; a setext underline may come; a fence is open.
    assert streamed_sources("- a\n\n  more\n") == []
    assert streamed_sources("Title\n") == [] and streamed_sources("```\ncode\n\nstill code\n") == []
    # `$$` opened and not closed yet: a later closing line would take in what follows it.
    assert streamed_sources("One.\n\n$$\nx\n\nTwo.\n\nThree") == ["One.\n\n"]
    # A label not defined yet may be defined further on: the rest waits for the whole answer.
    assert streamed_sources("See [1].\n\nTwo.\n\nThree.\n\n[1]: https://example.com\n") == []
    # A reference definition's title may go on over the next lines: no cut right after it.
    text = 'Intro\n\n[1]: /a\n"b\nc"\n\nSee [1].\n\nNext'
    assert streamed_sources(text) == ['Intro\n\n[1]: /a\n"b\nc"\n\nSee [1].\n\n']


SECTION = ("Some prose with `inline code`, **bold** and $x^2 + y^2 = r^2$.\n\n- a point\n- another\n\n"
           "```python\n" + "".join(f"values = [n * {i} for n in range(10)]  # line {i}\n" for i in range(15)) + "```\n\n"
           "| a | b |\n|---|---|\n| 1 | 2 |\n\n$$\n\\frac{1}{2}\n$$\n\n")


def test_each_character_is_rendered_once_and_parsing_stays_linear():
    long_code = "```text\n" + "".join(f"line {i}\n\n" for i in range(2000)) + "```\n\n"
    for text in (SECTION * 40, (long_code + SECTION * 3) * 2):
        blocks = StreamedMarkdown()
        parts = [part for i in range(0, len(text), 4) if (part := blocks.feed(text[i:i + 4]))]
        tail = blocks.finish()
        assert "".join(part.source for part in parts) + tail.source == text
        assert blocks.rendered == len(text)  # every character rendered once: in its part, or in the tail
        assert blocks.parsed <= PARSE_BUDGET * len(text)
        # Every code block was shown rendered before the answer ended.
        assert sum(part.html.count('<div class="code-block">') for part in parts) == text.count("```") // 2
