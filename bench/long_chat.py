"""Benchmark: the page of a chat of 10,000 messages (5,000 turns, Markdown answers) on one branch.

Run with `.venv/bin/python bench/long_chat.py`. Times GET /chat/<id>/ through Django's test client
(the full middleware stack, the branch, rendering) and prints the page's size and its queries, then
the same for the page of turns before it ("Show earlier").
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from harness import setup_django

setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from boochat.models import ChatSession, Message, MessageState  # noqa: E402
from providers.models import Provider  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

TURNS, REQUESTS = 5_000, 5
ANSWER = ("Here is **one way** to do it:\n\n```python\ndef total(values):\n    return sum(values)\n```\n\n"
          "- it reads every value once\n- it returns `0` for an empty list\n\nSee $x^2$ for more.")


def usage(turn: int) -> dict[str, int] | None:
    """What the host reported for the answer (BooChat asks for it); none with BENCH_NO_USAGE=1, as
    in an imported chat, where the page estimates the branch's tokens from all its messages."""
    if os.environ.get("BENCH_NO_USAGE") == "1":
        return None
    return {"prompt_tokens": 60 * turn + 20, "completion_tokens": 60, "total_tokens": 60 * turn + 80}


def main() -> None:
    settings.STATIC_ROOT = tempfile.mkdtemp(prefix="boochat-static-")
    call_command("collectstatic", interactive=False, verbosity=0)
    host = FakeLlamaSwap([FakeModel("qwen3-8b", n_ctx=32768, context_length=32768)]).start()
    try:
        Provider.objects.create(slug="sam-desktop", name="sam-desktop", base_url=host.url, is_default=True)
        user = get_user_model().objects.create_user("bench")
        session = ChatSession.objects.create(user=user, model_id="sam-desktop/qwen3-8b", title="long")
        parent = None
        for turn in range(TURNS):
            parent = Message.objects.create(session=session, parent=parent, role="user", content=f"Question {turn}?")
            parent = Message.objects.create(session=session, parent=parent, role="assistant", content=ANSWER,
                                            state=MessageState.COMPLETE, model_id="sam-desktop/qwen3-8b",
                                            provider="sam-desktop", usage=usage(turn))
        client = Client()
        client.force_login(user)
        url = session.get_absolute_url()
        timings = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        rendered = response.content.decode().count('<article id="message-')
        print(f"chat page, {2 * TURNS:,} messages on one branch, {REQUESTS} requests"
              f"{', no usage counts' if usage(1) is None else ''}")
        print(f"  p50 {statistics.median(timings):8.1f} ms   max {max(timings):8.1f} ms   "
              f"{len(response.content) / 1024:,.0f} KiB   {len(queries)} queries   "
              f"{rendered} messages rendered")
        earlier = response.context_data.get("earlier_url") if response.context_data else None
        if earlier:
            started = time.perf_counter()
            partial = client.get(earlier, headers={"HX-Request": "true"})
            print(f"  show earlier (htmx): {(time.perf_counter() - started) * 1000:8.1f} ms   "
                  f"{len(partial.content) / 1024:,.0f} KiB")
    finally:
        host.stop()


if __name__ == "__main__":
    main()
