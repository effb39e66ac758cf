"""Benchmark: what the chat page makes a browser download, gzipped as WhiteNoise serves it.

Target (issue 28): the chat page's HTML + CSS + JS (htmx included) at most 150 KB gzipped. The page is a
chat of 20 turns (code, a table, maths) with 50 chats in the list; its stylesheets, scripts and the icon
sprite are read from collectstatic's output, as `make serve` serves them.
Run with `.venv/bin/python bench/page_weight.py`.
"""

from __future__ import annotations

import gzip
import re
import tempfile
from pathlib import Path

from harness import record, setup_django

setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from boochat.models import ChatSession  # noqa: E402
from providers.models import Provider  # noqa: E402
from tests.factories import add_message  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

TARGET_KB = 150
ANSWER = ("Here is one:\n\n```python\nimport math\n\n\ndef circle_area(radius: float) -> float:\n"
          "    return math.pi * radius ** 2\n```\n\nThe formula is $A = \\pi r^2$.\n\n"
          "| radius | area |\n|---|---|\n| 1 | 3.14 |\n| 2 | 12.57 |\n")


def gzipped(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9))


def main() -> None:
    settings.STATIC_ROOT = tempfile.mkdtemp(prefix="boochat-static-")
    call_command("collectstatic", interactive=False, verbosity=0)
    with FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768)]) as host:
        Provider.objects.create(slug="sam-desktop", name="Sam's desktop", base_url=host.url, is_default=True)
        user = get_user_model().objects.create_user("bench")
        for n in range(49):
            ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title=f"An earlier chat about topic {n}")
        chat = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="Circles")
        for n in range(20):
            add_message(session=chat, role="user", content=f"Question {n}: the area of a circle?")
            add_message(session=chat, role="assistant", content=ANSWER, provider="sam-desktop", wire_model="qwen3-8b",
                        model_id="sam-desktop/qwen3-8b", tokens_per_second=42.0)
        client = Client()
        client.force_login(user)
        response = client.get(chat.get_absolute_url())
        assert response.status_code == 200, response.status_code
        html = response.content

    text = html.decode()
    urls = sorted(set(re.findall(r'<(?:link rel="stylesheet"|script) (?:href|src)="([^"]+)"', text))
                  | {href.split("#")[0] for href in re.findall(r'<use href="([^"]+)"', text)})
    rows = [("chat page HTML", len(html), gzipped(html))]
    for url in urls:
        data = (Path(settings.STATIC_ROOT) / url.removeprefix(settings.STATIC_URL)).read_bytes()
        rows.append((url.removeprefix(settings.STATIC_URL), len(data), gzipped(data)))
    width = max(len(name) for name, _, _ in rows)
    print(f"{'file':<{width}}  {'bytes':>8}  {'gzip':>8}")
    for name, raw, packed in rows:
        print(f"{name:<{width}}  {raw:>8,}  {packed:>8,}")
    total_raw, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total':<{width}}  {total_raw:>8,}  {total:>8,}  ({total / 1024:.1f} KB gzipped; target ≤ {TARGET_KB} KB)")
    record("page weight", "chat page, gzipped (HTML + CSS + JS + icons)", boochat=total / 1024, unit="KB",
           target=f"≤ {TARGET_KB} KB", met=total / 1024 <= TARGET_KB)


if __name__ == "__main__":
    main()
