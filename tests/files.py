"""Small real files for attachment tests: a PNG, PDFs with text, made here (no binary fixtures)."""

import struct
import zlib


def png(width=2, height=2, rgb=(200, 40, 40), padding=0):
    """A valid PNG of one colour; `padding` adds a text chunk of that many bytes (to pass a size limit)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    extra = chunk(b"tEXt", b"Comment\x00" + b"x" * padding) if padding else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def text_page(text):
    """A page's content stream that shows `text` in Helvetica."""
    return b"BT /F1 24 Tf 72 720 Td (%s) Tj ET" % text.encode()


def whitespace_page(expanded_bytes):
    """A page's content stream of `expanded_bytes` spaces, FlateDecode-compressed (about 1,000 to 1)."""
    compressor, chunk = zlib.compressobj(9), b" " * (1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(expanded_bytes // len(chunk))]
    parts.append(compressor.compress(b" " * (expanded_bytes % len(chunk))))
    return b"".join(parts) + compressor.flush(), b"/Filter /FlateDecode "


def pdf_of_pages(pages):
    """A PDF whose pages have these content streams: bytes, or (bytes, extra dictionary entries)."""
    count = len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (4 + 2 * n) for n in range(count)), count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n, page in enumerate(pages):
        stream, entries = page if isinstance(page, tuple) else (page, b"")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * n))
        objects.append(b"<< %s/Length %d >>\nstream\n" % (entries, len(stream)) + stream + b"\nendstream")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf(text="Hello from a PDF"):
    """A one-page PDF whose text is `text` (pypdf reads it back)."""
    return pdf_of_pages([text_page(text)])


def whitespace_bomb(pages=4, expanded_bytes=70 * 1024 * 1024, first_page_text=None):
    """A PDF bomb: pages of compressed whitespace (a few hundred KB that expand to `expanded_bytes` each),
    after a page of text if `first_page_text` is given."""
    bomb = whitespace_page(expanded_bytes)
    return pdf_of_pages(([text_page(first_page_text)] if first_page_text else []) + [bomb] * pages)


def many_pages(count=10_000):
    """A PDF of `count` tiny pages, each saying its number."""
    return pdf_of_pages([text_page(f"Page {n}") for n in range(1, count + 1)])
