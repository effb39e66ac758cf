"""Files attached to a question: checked by their content (never by their name), kept with the
message, and put into what the model sees: images as OpenAI `image_url` parts with data URLs (only
for models known to take images), text files and PDFs as text with their name."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Prefetch

from boochat import database
from boochat.chat import pdfs
from boochat.models import Attachment, Message
from providers.capabilities import ImageSupport, image_support, known_to_take_images

MAX_TEXT_CHARS = 200_000  # all text files of one question together, as a typed question
# A high guess of what one image costs in the context (llama.cpp's vision encoders: 256 to ~1,500).
IMAGE_TOKENS = 1_536
HOST_ASK_SECONDS = 60  # a model swap before /props answers; the send would wait for it as well

class AttachmentError(ValueError):
    """A file that cannot be attached; the message is for people, `status` for the response."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """A checked file, not yet saved."""

    kind: str
    name: str
    media_type: str
    size: int
    data: bytes = b""
    text: str = ""


def image_type(data: bytes) -> str | None:
    """The image's media type from its first bytes (the formats llama.cpp's vision models read)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _display_name(name: str | None) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    return "".join(c for c in base if c.isprintable())[:200] or "file"


def pdf_text(name: str, data: bytes, *, deadline: float) -> str:
    """The text of a PDF's pages, read within the PDF budget (settings) and by `deadline` (monotonic
    time): cut with a notice where the budget ran out, or AttachmentError saying why there is none."""
    budget = pdfs.PdfBudget(pages=settings.BOOCHAT_PDF_MAX_PAGES, expanded_bytes=settings.BOOCHAT_PDF_MAX_EXPANDED_BYTES,
                            memory_bytes=settings.BOOCHAT_PDF_MAX_MEMORY_BYTES, chars=MAX_TEXT_CHARS,
                            seconds=deadline - time.monotonic())
    result = pdfs.read_pdf_text(data, budget)
    if result.error == "encrypted":
        raise AttachmentError(f"{name} is a password-protected PDF: its text cannot be read.")
    if result.error == "no-reader":
        raise AttachmentError(f"BooChat could not read {name} just now (the server is short of processes): send it again.", 503)
    if result.error:
        raise AttachmentError(f"{name} looks like a PDF but could not be read.")
    text = "\n\n".join(page.strip() for page in result.pages if page.strip())
    if result.cut and not text:
        raise AttachmentError(f"{name} could not be read within BooChat's limits: {_cut_reason(result.cut)}.", 413)
    if not text:
        raise AttachmentError(f"{name} has no text to read (a scanned PDF?): attach its pages as images instead.")
    if result.cut:
        cut_at = len(result.pages) + 1
        text += f"\n\n[PDF text cut at page {cut_at:,} of {result.page_count:,}: {_cut_reason(result.cut)}.]"
    return text


def _cut_reason(cut: str) -> str:
    return {
        pdfs.CUT_PAGES: f"BooChat reads at most {settings.BOOCHAT_PDF_MAX_PAGES:,} pages of a PDF (BOOCHAT_PDF_MAX_PAGES)",
        pdfs.CUT_EXPANDED: f"its pages expand to more than {_size(settings.BOOCHAT_PDF_MAX_EXPANDED_BYTES)} "
                           "(BOOCHAT_PDF_MAX_EXPANDED_BYTES)",
        pdfs.CUT_MEMORY: f"reading it takes more than {_size(settings.BOOCHAT_PDF_MAX_MEMORY_BYTES)} of memory "
                         "(BOOCHAT_PDF_MAX_MEMORY_BYTES)",
        pdfs.CUT_TIME: f"reading the PDFs of one question takes at most {settings.BOOCHAT_PDF_SECONDS} s (BOOCHAT_PDF_SECONDS)",
        pdfs.CUT_CHARS: f"it holds more than {MAX_TEXT_CHARS:,} characters of text",
        pdfs.CUT_UNREADABLE: "that page could not be read",
        pdfs.CUT_READER_LIMIT: "it goes past the PDF reader's own limits (objects in a page, pages in the document)",
    }[cut]


def plain_text(data: bytes) -> str | None:
    """The file's text if it is UTF-8 text (code, Markdown, CSV, plain), else None."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def read_upload(name: str, data: bytes, *, deadline: float | None = None) -> Upload:
    """Check one file by its content: an image, a PDF (read by `deadline`, monotonic time; by default
    BOOCHAT_PDF_SECONDS from now) or text; anything else is refused."""
    if media_type := image_type(data):
        if len(data) > settings.BOOCHAT_MAX_IMAGE_BYTES:
            raise AttachmentError(f"{name} is {_size(len(data))}: images are limited to "
                                  f"{_size(settings.BOOCHAT_MAX_IMAGE_BYTES)} (BOOCHAT_MAX_IMAGE_BYTES).", 413)
        return Upload(Attachment.Kind.IMAGE, name, media_type, len(data), data=data)
    if len(data) > settings.BOOCHAT_MAX_FILE_BYTES:
        raise AttachmentError(f"{name} is {_size(len(data))}: files are limited to "
                              f"{_size(settings.BOOCHAT_MAX_FILE_BYTES)} (BOOCHAT_MAX_FILE_BYTES).", 413)
    if data.startswith(b"%PDF-"):
        if deadline is None:
            deadline = time.monotonic() + settings.BOOCHAT_PDF_SECONDS
        database.release_connection()  # reading it may take seconds: hold no connection meanwhile
        return Upload(Attachment.Kind.TEXT, name, "application/pdf", len(data), text=pdf_text(name, data, deadline=deadline))
    text = plain_text(data)
    if text is None:
        raise AttachmentError(f"{name} is not an image (PNG, JPEG, GIF, WebP), a PDF or a text file.", 415)
    if not text.strip():
        raise AttachmentError(f"{name} is empty.")
    return Upload(Attachment.Kind.TEXT, name, "text/plain", len(data), text=text)


def read_uploads(files: Iterable[UploadedFile]) -> list[Upload]:
    """Check every file of a question against the limits; the first one refused says why."""
    files = list(files)
    if len(files) > settings.BOOCHAT_MAX_ATTACHMENTS:
        raise AttachmentError(f"{len(files)} files attached: at most {settings.BOOCHAT_MAX_ATTACHMENTS} go with one "
                              "question (BOOCHAT_MAX_ATTACHMENTS).")
    uploads = []
    deadline = time.monotonic() + settings.BOOCHAT_PDF_SECONDS  # one budget for all the PDFs: the send waits for them
    for file in files:
        name = _display_name(file.name)
        limit = max(settings.BOOCHAT_MAX_IMAGE_BYTES, settings.BOOCHAT_MAX_FILE_BYTES)
        if file.size is not None and file.size > limit:  # refused before it is read
            raise AttachmentError(f"{name} is {_size(file.size)}: files are limited to {_size(limit)}.", 413)
        uploads.append(read_upload(name, file.read(limit + 1), deadline=deadline))
    if sum(len(u.text) for u in uploads) > MAX_TEXT_CHARS:
        raise AttachmentError(f"The attached files hold more than {MAX_TEXT_CHARS:,} characters of text together.", 413)
    return uploads


def refuse_images(model_id: str, support: ImageSupport) -> str:
    """Why images cannot go to this model, for the page and the send's error."""
    name = model_id.split("/", 1)[-1]
    if support.accepts is False:
        why = {"override": "as set in admin", "host": "its host says so", "kind": "its API takes none"}
        return f"{name} does not take images ({why.get(support.source, 'as far as BooChat knows')}): choose a model that does, or remove the image."
    if support.askable:
        return f"{name}'s host did not say whether it takes images: try again when it has loaded, or remove the image."
    return (f"BooChat does not know whether {name} takes images: an admin can say so in the provider's model "
            "settings (takes images). Remove the image, or choose a model that takes them.")


def check_images_allowed(model_id: str, uploads: list[Upload]) -> None:
    """AttachmentError unless the model is known to take images, when there are images. Its host may
    be asked now (loading the model, which the send is about to do anyway)."""
    if not any(u.kind == Attachment.Kind.IMAGE for u in uploads):
        return
    database.release_connection()  # the host may take a model swap to answer: hold no connection meanwhile
    support = image_support(model_id, ask_host=True, timeout=HOST_ASK_SECONDS)
    if support.accepts is not True:
        raise AttachmentError(refuse_images(model_id, support))


def save_attachments(message: Message, uploads: list[Upload]) -> list[Attachment]:
    return Attachment.objects.bulk_create([
        Attachment(message=message, kind=u.kind, name=u.name, media_type=u.media_type, size=u.size, data=u.data,
                   text=u.text)
        for u in uploads
    ])


def shown_with_messages() -> Prefetch[Any]:
    """The prefetch of a page's messages' attachments: names and types, not the bytes."""
    return Prefetch("attachments", queryset=Attachment.objects.defer("data", "text"))


def data_url(attachment: Attachment) -> str:
    return f"data:{attachment.media_type};base64,{base64.b64encode(bytes(attachment.data)).decode('ascii')}"


def prompt_content(message: Message, attachments: list[Attachment], *, model_id: str) -> str | list[dict[str, Any]]:
    """A question's content for the host: its text with the text files after it, and its images as
    image_url parts when the model takes them (else a note in their place)."""
    text = message.content
    for attachment in attachments:
        if not attachment.is_image:
            text += f'\n\n<file name="{attachment.name}">\n{attachment.text}\n</file>'
    images = [a for a in attachments if a.is_image]
    if not images:
        return text
    if not known_to_take_images(model_id):
        names = ", ".join(a.name for a in images)
        return text + f"\n\n[Image{'s' if len(images) > 1 else ''} not shown to this model: {names}]"
    return [{"type": "text", "text": text}] + [{"type": "image_url", "image_url": {"url": data_url(a)}} for a in images]


def content_tokens(content: Any) -> tuple[int, int]:
    """(characters of text, images) in a message's content, a string or a list of parts."""
    if not isinstance(content, list):
        return len(str(content or "")), 0
    chars = sum(len(str(part.get("text") or "")) for part in content if isinstance(part, dict) and part.get("type") == "text")
    return chars, sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, size // 1024)} KB"
