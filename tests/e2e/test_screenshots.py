"""The README's pictures, taken from the fake hosts: `make screenshots` writes them to
docs/screenshots/; an ordinary test run takes them too (the pages must render) but keeps them in a
temporary folder."""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.gateway.keys import create_key
from boochat.models import ArenaAnswer, ArenaRun, ChatSession, GatewayKey, Message
from settings_app.models import Favorite
from tests.factories import add_usage

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Write a function for the area of a circle, and the formula."
ANSWER = [
    "Here is one:\n\n", "```python\nimport math\n\n\ndef circle_area(radius: float) -> float:\n",
    "    \"\"\"The area of a circle of this radius.\"\"\"\n", "    if radius < 0:\n",
    "        raise ValueError(\"radius must be positive\")\n", "    return math.pi * radius ** 2\n```\n\n",
    "The formula is $A = \\pi r^2$; for $r = 2$:\n\n$$\nA = \\pi \\cdot 2^2 \\approx 12.57\n$$\n\n",
    "| radius | area |\n|---|---|\n| 1 | 3.14 |\n| 2 | 12.57 |\n",
]


@pytest.fixture
def folder(tmp_path):
    target = os.environ.get("BOOCHAT_SCREENSHOTS_DIR")
    path = Path(target) if target else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_screenshots(asgi_page, asgi_server, hosts, folder):
    page = asgi_page
    alice = User.objects.get(username="alice")
    for model_id in ("sam-desktop/qwen3-30b", "embedding/deepseek-r1-qwen3-8b", "deepseek/deepseek-v4-flash"):
        Favorite.objects.add(user=alice, model_id=model_id)
    for title in ("Tide tables in Brest", "Regex for ISO dates", "Sourdough hydration"):
        ChatSession.objects.create(user=alice, model_id="sam-desktop/qwen3-8b", title=title)

    hosts["sam-desktop"].reply = ANSWER
    page.goto(f"{asgi_server.url}/chat/?model=sam-desktop/qwen3-30b")
    page.get_by_role("button", name="Start chat").click()
    page.get_by_label("Message").fill(QUESTION)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.message.assistant .highlight")).to_be_visible(timeout=10000)
    expect(page.locator("#session-title")).not_to_have_text("New chat", timeout=5000)
    chat_url = page.url

    run = ArenaRun.objects.create(user=alice, prompt="In one paragraph: why is the sky blue?",
                                  analyzer_model_id="sam-desktop/qwen3-30b", analysis_state="complete",
                                  analysis="**qwen3-8b · sam-desktop** names Rayleigh scattering and its λ⁻⁴ law; "
                                           "**deepseek-v4-flash** adds why sunsets are red. Both are correct.")
    answers = {
        "sam-desktop/qwen3-8b": "Sunlight scatters off air molecules, and short wavelengths scatter most "
                                "(Rayleigh: $I \\propto \\lambda^{-4}$), so blue light reaches us from every direction.",
        "deepseek/deepseek-v4-flash": "Air molecules scatter blue light far more than red. At sunset light crosses "
                                  "more air, the blue is scattered away, and the sky turns red.",
    }
    for position, (model_id, content) in enumerate(answers.items()):
        provider, wire = model_id.split("/", 1)
        ArenaAnswer.objects.create(run=run, position=position, model_id=model_id, provider=provider, wire_model=wire,
                                   content=content, state="complete", ttft_ms=180 + 400 * position,
                                   tokens_per_second=61.5 - 20 * position, duration_ms=1400 + 900 * position,
                                   usage={"completion_tokens": 58 + position * 9, "prompt_tokens": 21})

    laptop, _ = create_key(name="opencode on the laptop", user=alice)
    create_key(name="nightly script", user=alice, scope=["sam-desktop/*"])
    add_usage(alice, laptop)

    pages = {"chat": chat_url, "home": f"{asgi_server.url}/", "models": f"{asgi_server.url}/models/",
             "arena": f"{asgi_server.url}{run.get_absolute_url()}", "keys": f"{asgi_server.url}/settings/keys/",
             "usage": f"{asgi_server.url}/settings/usage/", "connect": f"{asgi_server.url}/settings/connect/"}
    sizes = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for device, size in sizes.items():
            page.set_viewport_size(size)
            for name, url in pages.items():
                page.goto(url)
                page.wait_for_load_state("load")
                if name == "models":
                    expect(page.locator("#favorites li.model")).to_have_count(3)
                if name == "arena":
                    expect(page.locator(".arena-column")).to_have_count(2)
                if name == "keys":  # the one-time key as it shows once made
                    page.get_by_label("Name").fill("CI runner")
                    page.get_by_role("button", name="Make the key").click()
                    expect(page.locator("#new-key")).to_be_visible()
                if name in ("chat", "keys"):
                    page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
                page.screenshot(path=folder / f"{name}-{device}-{scheme}.png")
                GatewayKey.objects.filter(name="CI runner").delete()

    for name in pages:
        for device in sizes:
            for scheme in ("light", "dark"):
                assert (folder / f"{name}-{device}-{scheme}.png").stat().st_size > 10_000, (name, device, scheme)
    assert Message.objects.filter(role="assistant", content__contains="circle_area").exists()
