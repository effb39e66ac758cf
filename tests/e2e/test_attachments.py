"""Images and files in the prompt, in Chromium: picked or pasted, shown as thumbnails, sent to the
host as image_url parts, still there after a reload; refused with the reason before any send."""

import base64

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from boochat.models import ChatSession
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel
from tests.files import png

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def host():
    with FakeLlamaSwap([FakeModel("qwen3-vl", n_ctx=32768, vision=True, loaded=True),
                        FakeModel("qwen3-8b", n_ctx=32768, loaded=True)], swap=False, reply=["A red square."]) as fake:
        make_provider(slug="sam-desktop", name="Sam's desktop", base_url=fake.url, is_default=True)
        yield fake


def open_chat(page, base, model_id):
    chat = ChatSession.objects.create(user=User.objects.get(username="alice"), model_id=model_id, title="Pictures")
    page.goto(f"{base}{chat.get_absolute_url()}")
    return chat


def sends(host):
    return [r.json() for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]


def test_an_attached_image_reaches_the_host_and_stays_after_a_reload(asgi_page, asgi_server, host):
    page = asgi_page
    open_chat(page, asgi_server.url, "sam-desktop/qwen3-vl")
    image = png(40, 30)
    page.get_by_label("Attach files").set_input_files([{"name": "square.png", "mimeType": "image/png", "buffer": image}])
    expect(page.get_by_role("list", name="Files to send").get_by_role("img", name="square.png")).to_be_visible()
    # A second one pasted into the message box.
    page.get_by_label("Message").evaluate("""(box, data) => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
        box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true}));
    }""", base64.b64encode(png(8, 8, rgb=(0, 90, 200))).decode())
    expect(page.get_by_role("list", name="Files to send").get_by_role("img")).to_have_count(2)
    page.get_by_label("Message").fill("What colour is it?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("article.message.assistant").last.locator(".markdown")).to_have_text("A red square.")
    expect(page.get_by_role("list", name="Files to send")).to_be_hidden()  # the composer starts empty again

    (turn,) = sends(host)
    parts = turn["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What colour is it?"}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(image).decode()
    assert parts[2]["image_url"]["url"].startswith("data:image/png;base64,")

    page.reload()
    shown = page.locator("article.message.user").get_by_role("img", name="square.png")
    expect(shown).to_be_visible()
    assert shown.evaluate("img => img.complete && img.naturalWidth") == 40  # the stored image, drawn


def test_a_wrong_or_oversized_file_is_refused_with_the_reason_and_nothing_is_sent(asgi_page, asgi_server, host, settings):
    settings.BOOCHAT_MAX_IMAGE_BYTES = 4096
    page = asgi_page
    open_chat(page, asgi_server.url, "sam-desktop/qwen3-vl")
    attach = page.get_by_label("Attach files")
    attach.set_input_files([{"name": "cat.png", "mimeType": "image/png", "buffer": b"\x7fELF\x02\x01" + bytes(range(256))}])
    expect(page.get_by_role("alert")).to_have_text("cat.png is not an image (PNG, JPEG, GIF, WebP), a PDF or a text file.")
    attach.set_input_files([{"name": "huge.png", "mimeType": "image/png", "buffer": png(padding=10_000)}])
    expect(page.get_by_role("alert")).to_have_text("huge.png is 9 KB: images are limited to 4 KB.")
    expect(page.get_by_role("list", name="Files to send")).to_be_hidden()
    assert page.get_by_label("Attach files").evaluate("input => input.files.length") == 0
    assert sends(host) == []


def test_a_model_that_takes_no_images_says_so_before_the_send(asgi_page, asgi_server, host):
    page = asgi_page
    open_chat(page, asgi_server.url, "sam-desktop/qwen3-8b")
    expect(page.locator("#attach-hint")).to_contain_text("qwen3-8b takes no images")
    page.get_by_label("Attach files").set_input_files([{"name": "a.png", "mimeType": "image/png", "buffer": png()}])
    expect(page.get_by_role("alert")).to_have_text(
        "qwen3-8b does not take images (its host says so): choose a model that does, or remove the image.")
    page.get_by_label("Attach files").set_input_files([{"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n"}])
    expect(page.get_by_role("list", name="Files to send")).to_contain_text("notes.md")  # text files still go
    assert sends(host) == []
