"""Files in the prompt, through the plain-form and streaming doors: checked by content, kept with the
question, sent as image_url parts only to models known to take images, text files as text."""

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from boochat.chat.prompt import estimate_tokens
from boochat.models import Attachment, ChatSession, Message
from providers.models import ModelOverride, ProviderKind
from tests.factories import make_provider
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel
from tests.files import many_pages, pdf, pdf_of_pages, png, whitespace_bomb

pytestmark = pytest.mark.django_db
STREAM = {"X-BooChat-Stream": "1"}


@pytest.fixture
def vision_host():
    """A host with a vision model (started with an mmproj) and a text-only one, both loaded."""
    with FakeLlamaSwap([FakeModel("qwen3-vl", n_ctx=32768, vision=True, loaded=True),
                        FakeModel("qwen3-8b", n_ctx=32768, loaded=True)],
                       swap=False, reply=["A red square."]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        yield host


def chat(client, model_id):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(pk=client.session["_auth_user_id"])
    return ChatSession.objects.create(user=user, model_id=model_id)


def send(client, session, *files, text="What is in this?", headers=None):
    return client.post(reverse("chat_send", args=[session.pk]), {"content": text, "attachments": list(files)},
                       headers=headers or {})


def turns(host):
    return [r.json() for r in host.requests_to("/v1/chat/completions") if r.json().get("stream")]  # not titles


def test_an_image_goes_as_an_image_url_part_and_is_kept_with_the_question(user_client, vision_host):
    session = chat(user_client, "sam-desktop/qwen3-vl")
    image = png(4, 3)
    response = send(user_client, session, SimpleUploadedFile("photo.bin", image, content_type="text/plain"))
    assert response.status_code == 302
    (turn,) = turns(vision_host)
    question = turn["messages"][-1]
    assert question["content"][0] == {"type": "text", "text": "What is in this?"}
    assert question["content"][1] == {"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}}
    attachment = Attachment.objects.get()
    assert (attachment.kind, attachment.media_type, attachment.name, bytes(attachment.data)) == ("image", "image/png", "photo.bin", image)
    assert attachment.message.role == "user" and attachment.message.content == "What is in this?"

    page = user_client.get(session.get_absolute_url()).content.decode()
    url = reverse("chat_attachment", args=[attachment.pk])
    assert f'<img class="thumbnail" src="{url}" alt="photo.bin" loading="lazy">' in page
    served = user_client.get(url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png" and served.content == image
    assert served["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_the_next_turn_sends_the_image_again_and_a_text_only_model_gets_a_note(user_client, vision_host):
    session = chat(user_client, "sam-desktop/qwen3-vl")
    send(user_client, session, SimpleUploadedFile("a.png", png()))
    send(user_client, session, text="And now?")
    assert turns(vision_host)[1]["messages"][0]["content"][1]["type"] == "image_url"
    session.model_id = "sam-desktop/qwen3-8b"
    session.save()
    send(user_client, session, text="Still there?")
    assert turns(vision_host)[2]["messages"][0]["content"] == "What is in this?\n\n[Image not shown to this model: a.png]"


def test_a_model_whose_host_says_no_images_refuses_before_anything_is_sent(user_client, vision_host):
    session = chat(user_client, "sam-desktop/qwen3-8b")
    response = send(user_client, session, SimpleUploadedFile("a.png", png()), headers=STREAM)
    assert response.status_code == 400
    assert response.json()["error"] == ("Nothing was sent: qwen3-8b does not take images (its host says so): "
                                        "choose a model that does, or remove the image.")
    assert turns(vision_host) == [] and not Message.objects.exists()
    # The page says so before the send, too.
    page = user_client.get(session.get_absolute_url()).content.decode()
    assert 'data-images="no"' in page and "qwen3-8b takes no images, as far as BooChat knows." in page


def test_deepseek_takes_no_images_and_an_admin_override_wins(user_client, deepseek_host, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", deepseek_host.api_key)
    provider = make_provider(slug="deepseek", kind=ProviderKind.DEEPSEEK, base_url=deepseek_host.url,
                             api_key_env="DEEPSEEK_API_KEY", is_default=True)
    session = chat(user_client, "deepseek/deepseek-v4-flash")
    response = send(user_client, session, SimpleUploadedFile("a.png", png()), headers=STREAM)
    assert response.status_code == 400 and "its API takes none" in response.json()["error"]
    ModelOverride.objects.create(provider=provider, model="deepseek-v4-flash", accepts_images=True)
    assert send(user_client, session, SimpleUploadedFile("a.png", png()), headers=STREAM).status_code == 200


def test_an_unloaded_model_is_asked_at_the_send(user_client):
    with FakeLlamaSwap([FakeModel("gemma3-vision", n_ctx=32768, vision=True)]) as host:
        make_provider(slug="sam-desktop", base_url=host.url, is_default=True)
        session = chat(user_client, "sam-desktop/gemma3-vision")
        assert 'data-images="ask"' in user_client.get(session.get_absolute_url()).content.decode()
        assert host.requests_to("/upstream/gemma3-vision/props") == []  # a page never loads a model
        assert send(user_client, session, SimpleUploadedFile("a.png", png())).status_code == 302
        assert len(host.requests_to("/upstream/gemma3-vision/props")) == 1
        assert turns(host)[0]["messages"][-1]["content"][1]["type"] == "image_url"


@pytest.mark.parametrize(("name", "data", "status", "error"), [
    ("cat.png", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, 415,
     "cat.png is not an image (PNG, JPEG, GIF, WebP), a PDF or a text file."),
    ("big.png", png(padding=3000), 413, "big.png is 3 KB: images are limited to 2 KB (BOOCHAT_MAX_IMAGE_BYTES)."),
    ("broken.pdf", b"%PDF-1.7\nnot really a pdf", 400, "broken.pdf looks like a PDF but could not be read."),
    ("empty.txt", b"  \n", 400, "empty.txt is empty."),
    # Valid UTF-8 but for its NUL: a binary file, and PostgreSQL cannot store NUL in text.
    ("notes.txt", "Grüße\x00 aus Köln".encode(), 415, "notes.txt is not an image (PNG, JPEG, GIF, WebP), a PDF or a text file."),
])
def test_a_file_that_cannot_go_is_refused_and_nothing_is_sent(user_client, vision_host, settings, name, data, status, error):
    settings.BOOCHAT_MAX_IMAGE_BYTES = 2048
    session = chat(user_client, "sam-desktop/qwen3-vl")
    response = send(user_client, session, SimpleUploadedFile(name, data), headers=STREAM)
    assert response.status_code == status
    assert response.json()["error"] == f"Nothing was sent: {error}"
    assert turns(vision_host) == [] and not Message.objects.exists() and not Attachment.objects.exists()


def test_too_many_files_are_refused(user_client, vision_host, settings):
    settings.BOOCHAT_MAX_ATTACHMENTS = 2
    session = chat(user_client, "sam-desktop/qwen3-vl")
    files = [SimpleUploadedFile(f"{n}.txt", b"x") for n in range(3)]
    response = send(user_client, session, *files, headers=STREAM)
    assert response.status_code == 400
    assert "3 files attached: at most 2 go with one question" in response.json()["error"]
    assert turns(vision_host) == []


def test_text_files_and_pdfs_go_as_text_with_their_names(user_client, vision_host):
    session = chat(user_client, "sam-desktop/qwen3-8b")  # no images needed
    response = send(user_client, session, SimpleUploadedFile("data.csv", "a,b\n1,2\n".encode()),
                    SimpleUploadedFile("../../etc/report.pdf", pdf("Quarterly figures")), text="Summarize")
    assert response.status_code == 302
    content = turns(vision_host)[0]["messages"][-1]["content"]
    assert content.startswith('Summarize\n\n<file name="data.csv">\na,b\n1,2\n\n</file>\n\n<file name="report.pdf">\n')
    assert "Quarterly figures" in content
    names = list(Attachment.objects.values_list("name", "kind", "media_type"))
    assert names == [("data.csv", "text", "text/plain"), ("report.pdf", "text", "application/pdf")]
    page = user_client.get(session.get_absolute_url()).content.decode()
    assert '>report.pdf</a>' in page and "Quarterly figures" not in page  # the text goes to the model, the name shows


BOMB_PAGE = 40 * 1024 * 1024  # expanded; past BOOCHAT_PDF_MAX_EXPANDED_BYTES (32 MB) on its own


def test_a_pdf_bomb_is_cut_after_the_pages_read_and_the_answer_comes(user_client, vision_host, settings):
    settings.BOOCHAT_PDF_SECONDS = 600  # the expanded-bytes budget stops it, however busy the machine
    bomb = whitespace_bomb(pages=4, expanded_bytes=BOMB_PAGE, first_page_text="Before the bomb")
    assert len(bomb) < 200 * 1024
    session = chat(user_client, "sam-desktop/qwen3-8b")
    response = send(user_client, session, SimpleUploadedFile("bomb.pdf", bomb), text="Summarize")
    assert response.status_code == 302
    notice = "[PDF text cut at page 2 of 5: its pages expand to more than 32.0 MB (BOOCHAT_PDF_MAX_EXPANDED_BYTES).]"
    assert turns(vision_host)[0]["messages"][-1]["content"] == (
        f'Summarize\n\n<file name="bomb.pdf">\nBefore the bomb\n\n{notice}\n</file>')
    assert Message.objects.get(role="assistant").content == "A red square."
    # What the user opens from the file's chip is the text the model got, notice included.
    shown = user_client.get(reverse("chat_attachment", args=[Attachment.objects.get().pk]))
    assert shown.content.decode() == f"Before the bomb\n\n{notice}"


def test_a_pdf_bomb_with_no_page_within_the_budget_is_refused(user_client, vision_host):
    session = chat(user_client, "sam-desktop/qwen3-8b")
    bomb = whitespace_bomb(pages=4, expanded_bytes=BOMB_PAGE)
    response = send(user_client, session, SimpleUploadedFile("bomb.pdf", bomb), headers=STREAM)
    assert response.status_code == 413
    assert response.json()["error"] == ("Nothing was sent: bomb.pdf could not be read within BooChat's limits: its pages "
                                        "expand to more than 32.0 MB (BOOCHAT_PDF_MAX_EXPANDED_BYTES).")
    assert turns(vision_host) == [] and not Message.objects.exists() and not Attachment.objects.exists()


def test_ten_thousand_tiny_pages_are_read_up_to_the_page_budget(user_client, vision_host, settings):
    settings.BOOCHAT_PDF_SECONDS = 600
    session = chat(user_client, "sam-desktop/qwen3-8b")
    response = send(user_client, session, SimpleUploadedFile("pages.pdf", many_pages(10_000)), text="Count")
    assert response.status_code == 302
    content = turns(vision_host)[0]["messages"][-1]["content"]
    assert content.startswith('Count\n\n<file name="pages.pdf">\nPage 1\n\nPage 2\n\n')
    assert content.endswith("\n\nPage 500\n\n[PDF text cut at page 501 of 10,000: BooChat reads at most 500 pages "
                            "of a PDF (BOOCHAT_PDF_MAX_PAGES).]\n</file>")


def test_a_pdf_that_needs_more_memory_than_its_budget_is_cut_there(user_client, vision_host, settings):
    settings.BOOCHAT_PDF_SECONDS = 600
    settings.BOOCHAT_PDF_MAX_EXPANDED_BYTES = 1024 * 1024 * 1024  # so that memory runs out first
    settings.BOOCHAT_PDF_MAX_MEMORY_BYTES = 128 * 1024 * 1024
    session = chat(user_client, "sam-desktop/qwen3-8b")
    bomb = whitespace_bomb(pages=2, expanded_bytes=200 * 1024 * 1024, first_page_text="Before the bomb")
    assert send(user_client, session, SimpleUploadedFile("bomb.pdf", bomb)).status_code == 302
    assert turns(vision_host)[0]["messages"][-1]["content"].endswith(
        "Before the bomb\n\n[PDF text cut at page 2 of 3: reading it takes more than 128.0 MB of memory "
        "(BOOCHAT_PDF_MAX_MEMORY_BYTES).]\n</file>")


def test_a_pdf_not_read_in_time_is_refused(user_client, vision_host, settings):
    settings.BOOCHAT_PDF_SECONDS = 0  # the reader is stopped before it can start
    session = chat(user_client, "sam-desktop/qwen3-8b")
    response = send(user_client, session, SimpleUploadedFile("report.pdf", pdf("Quarterly figures")), headers=STREAM)
    assert response.status_code == 413
    assert response.json()["error"] == ("Nothing was sent: report.pdf could not be read within BooChat's limits: reading "
                                        "the PDFs of one question takes at most 0 s (BOOCHAT_PDF_SECONDS).")
    assert turns(vision_host) == [] and not Message.objects.exists()


def test_nul_characters_in_a_pdfs_text_are_dropped(user_client, vision_host):
    # PostgreSQL cannot store NUL in text: kept, the question's save would fail.
    nul_text = pdf_of_pages([b"BT /F1 24 Tf 72 720 Td (Total\\000 due) Tj ET"])
    session = chat(user_client, "sam-desktop/qwen3-8b")
    assert send(user_client, session, SimpleUploadedFile("bill.pdf", nul_text)).status_code == 302
    assert Attachment.objects.get().text == "Total due"
    assert turns(vision_host)[0]["messages"][-1]["content"].endswith('<file name="bill.pdf">\nTotal due\n</file>')


def test_attachments_are_private(user_client, client, django_user_model, vision_host):
    session = chat(user_client, "sam-desktop/qwen3-vl")
    send(user_client, session, SimpleUploadedFile("a.png", png()))
    other = django_user_model.objects.create_user("mallory")
    client.force_login(other)
    assert client.get(reverse("chat_attachment", args=[Attachment.objects.get().pk])).status_code == 404


def test_an_image_counts_in_the_context_estimate_not_its_base64():
    parts = [{"type": "text", "text": "abc"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 90_000}}]
    assert estimate_tokens([{"role": "user", "content": parts}]) == 1 + 4 + 1536
