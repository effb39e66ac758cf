"""read_page through the MCP protocol: what it reads, and the addresses, sizes and times it refuses.

The fake site listens on loopback, so reading it at all needs BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS or
BOOCHAT_TOOLS_ALLOWED_NETWORKS; a second site on 127.0.0.2 is "allowed" while 127.0.0.1 is not."""

from __future__ import annotations

import gzip
import socket
import tracemalloc

import pytest

from tests.fakes.server import Response
from tests.fakes.web_pages import FakeWebSite, https_site
from tests.tools.websearch_client import call, text

REFUSED = "read_page only reads public addresses"


@pytest.fixture
def site():
    with FakeWebSite() as fake:
        yield fake


@pytest.fixture
def private_allowed(settings):
    settings.BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS = True


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS = False
    settings.BOOCHAT_TOOLS_ALLOWED_NETWORKS = []


# -- what it reads ----------------------------------------------------------------------------------


def test_an_html_page_is_read_as_text(site, private_allowed):
    answer = call("read_page", url=f"{site.url}/article")
    assert not answer.is_error
    assert text(answer) == (
        f"URL: {site.url}/article\nTitle: The Kettle Guide\n\n"
        "# Boiling water\n\n"
        f"A kettle boils water quickly. See [the longer guide]({site.url}/more?x=1).\n\n"
        "## Steps\n\n"
        "- Fill it\n- Switch it on\n\n"
        "Café & tea"
    )
    request = site.requests_to("/article")[0]
    assert request.headers["host"] == f"127.0.0.1:{site.port}"


def test_markup_is_read_for_its_text(site, private_allowed):
    site.pages["/messy"] = Response(200, (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
        "<title>Caf\xe9</title><body><header>Site <nav>menu<ul><li>a</ul></nav></header>"
        "<h3>Recipe</h3><p>One<p>Two <a href='#top'>top</a> <a href='mailto:x@example.org'>mail</a>"
        "<pre>def f():\n    return 1</pre><table><tr><th>Cups<th>Water<tr><td>1<td>250 ml</table>"
        "<aside aria-hidden=true>decor</aside><p>Last<img alt='a kettle' src=k.png><br>line"
    ).encode("cp1252"), content_type="text/html")
    answer = text(call("read_page", url=f"{site.url}/messy"))
    assert answer == (
        f"URL: {site.url}/messy\nTitle: Café\n\nSite\n\n### Recipe\n\nOne\n\n"
        f"Two [top]({site.url}/messy#top) mail\n\n```\ndef f():\n    return 1\n```\n\n"
        "| Cups | Water\n| 1 | 250 ml\n\nLast [image: a kettle]\nline"
    )


@pytest.mark.parametrize(("path", "expected"), [
    ("/notes.txt", "plain notes\nline two"),
    ("/data.json", '{"answer":42}'),
])
def test_plain_text_and_json_are_passed_as_text(site, private_allowed, path, expected):
    answer = call("read_page", url=f"{site.url}{path}")
    assert (answer.is_error, text(answer)) == (False, f"URL: {site.url}{path}\n\n{expected}")


def test_other_types_are_refused_by_name(site, private_allowed):
    answer = call("read_page", url=f"{site.url}/paper.pdf")
    assert answer.is_error and f"{site.url}/paper.pdf is application/pdf" in text(answer)
    site.pages["/blob"] = Response(200, b"\x00\x01", content_type="")
    answer = call("read_page", url=f"{site.url}/blob")
    assert answer.is_error and "is of no stated type" in text(answer)


def test_an_error_status_is_named(site, private_allowed):
    answer = call("read_page", url=f"{site.url}/missing")
    assert answer.is_error and f"{site.url}/missing answered HTTP 404 Not Found" in text(answer)


def test_long_text_is_cut_at_the_character_cap_and_read_on_with_start(site, private_allowed, settings):
    settings.BOOCHAT_READ_PAGE_MAX_CHARS = 100
    site.pages["/long.txt"] = Response(200, b"".join(b"%03d " % n for n in range(100)), content_type="text/plain")
    first = text(call("read_page", url=f"{site.url}/long.txt"))
    assert first.startswith(f"URL: {site.url}/long.txt\n\n000 001 ")
    assert "024 " in first and "025 " not in first
    assert first.endswith("[Cut at 100 of 400 characters: read_page with start=100 reads on.]")
    second = text(call("read_page", url=f"{site.url}/long.txt", start=100))
    assert "025 " in second and "024 " not in second and "start=200" in second
    last = text(call("read_page", url=f"{site.url}/long.txt", start=300))
    assert last.endswith("099 ") and "Cut at" not in last


# -- addresses ---------------------------------------------------------------------------------------


def test_loopback_is_refused_by_default(site):
    answer = call("read_page", url=f"{site.url}/article")
    assert answer.is_error
    assert f"127.0.0.1 is a loopback address; {REFUSED}" in text(answer)
    assert site.requests == []


def test_a_name_resolving_to_a_private_address_is_refused(site):
    answer = call("read_page", url=f"http://localhost:{site.port}/article")
    assert answer.is_error
    assert "localhost resolves to" in text(answer) and f"which is a loopback address; {REFUSED}" in text(answer)
    assert site.requests == []


@pytest.mark.parametrize(("url", "problem"), [
    ("http://0.0.0.0/", "unspecified"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.1.1:8080/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://100.64.0.1/", "non-public"),
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00::1]/", "private"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 around 127.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 around 169.254.169.254
    ("http://2130706433/", "loopback"),  # 127.0.0.1 written as one number
])
def test_non_public_addresses_are_refused_by_kind(url, problem):
    answer = call("read_page", url=url)
    assert answer.is_error and f"is a {problem} address; {REFUSED}" in text(answer)


@pytest.mark.parametrize("url", ["ftp://example.com/file", "file:///etc/passwd", "javascript:alert(1)", "example.com"])
def test_only_http_and_https_are_read(url):
    answer = call("read_page", url=url)
    assert answer.is_error and "only http and https pages are read" in text(answer)


def test_credentials_in_the_url_are_refused(site, private_allowed):
    answer = call("read_page", url=f"http://user:secret@127.0.0.1:{site.port}/article")
    assert answer.is_error and "user name or password" in text(answer) and "secret" not in text(answer)
    assert site.requests == []


def test_private_addresses_are_read_when_allowed(site, settings):
    settings.BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS = True
    assert not call("read_page", url=f"http://localhost:{site.port}/notes.txt").is_error
    assert site.requests_to("/notes.txt")[0].headers["host"] == f"localhost:{site.port}"


def test_an_allowed_network_is_read_and_others_still_refused(settings):
    settings.BOOCHAT_TOOLS_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with FakeWebSite(host="127.0.0.2") as allowed, FakeWebSite() as other:
        assert text(call("read_page", url=f"{allowed.url}/notes.txt")).endswith("plain notes\nline two")
        answer = call("read_page", url=f"{other.url}/notes.txt")
        assert answer.is_error and f"127.0.0.1 is a loopback address; {REFUSED}" in text(answer)
        assert other.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(site, settings, monkeypatch):
    """A name that resolves to a public address when checked and to loopback a moment later (DNS
    rebinding) never reaches loopback: the request goes to the checked address, not a new look-up."""
    settings.BOOCHAT_READ_PAGE_TIMEOUT = 1
    answers = iter(["1.1.1.1", "127.0.0.1", "127.0.0.1"])
    resolve = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host not in {"rebind.example", b"rebind.example"}:
            return resolve(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    answer = call("read_page", url=f"http://rebind.example:{site.port}/notes.txt")
    # 1.1.1.1 does not serve the fake's port, or is not reachable from here: either way, not loopback.
    assert answer.is_error and "resolved" not in text(answer)
    assert site.requests == []
    assert next(answers) == "127.0.0.1"  # looked up once


# -- redirects ----------------------------------------------------------------------------------------


def test_redirects_are_followed_and_each_one_checked(settings):
    settings.BOOCHAT_TOOLS_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with FakeWebSite(host="127.0.0.2") as allowed, FakeWebSite() as inside:
        allowed.redirect("/moved", "/notes.txt", status=301)
        answer = call("read_page", url=f"{allowed.url}/moved")
        assert text(answer) == f"URL: {allowed.url}/notes.txt\n\nplain notes\nline two"

        allowed.redirect("/escape", f"{inside.url}/article")
        answer = call("read_page", url=f"{allowed.url}/escape")
        assert answer.is_error and f"127.0.0.1 is a loopback address; {REFUSED}" in text(answer)
        allowed.redirect("/escape-by-name", f"http://localhost:{inside.port}/article", status=307)
        answer = call("read_page", url=f"{allowed.url}/escape-by-name")
        assert answer.is_error and "localhost resolves to" in text(answer)
        assert inside.requests == []


def test_at_most_five_redirects_are_followed(site, private_allowed):
    for n in range(6):
        site.redirect(f"/hop{n}", f"/hop{n + 1}")
    site.pages["/hop6"] = site.pages["/notes.txt"]
    answer = call("read_page", url=f"{site.url}/hop0")
    assert answer.is_error and f"more than 5 redirects (the next to {site.url}/hop6)" in text(answer)
    assert len(site.requests) == 6
    assert not call("read_page", url=f"{site.url}/hop1").is_error  # five hops are fine

    site.redirect("/nowhere", "http://example.com:port/")
    answer = call("read_page", url=f"{site.url}/nowhere")
    assert answer.is_error and f"{site.url}/nowhere could not be read: Invalid URL in location header" in text(answer)
    site.redirect("/far", "http://example.com:99999/")
    answer = call("read_page", url=f"{site.url}/far")
    assert answer.is_error and "example.com cannot be resolved" in text(answer)


# -- size and time -------------------------------------------------------------------------------------


def test_a_page_that_never_ends_is_read_up_to_the_byte_cap(site, private_allowed, settings):
    settings.BOOCHAT_READ_PAGE_MAX_BYTES = 100_000
    settings.BOOCHAT_READ_PAGE_MAX_CHARS = 200_000
    answer = call("read_page", url=f"{site.url}/endless")
    assert not answer.is_error
    body = text(answer)
    assert body.endswith("[Only the first 100,000 bytes of the page were read.]")
    assert 100_000 <= len(body) < 100_200
    assert site.wait_for_disconnect()


def test_compressed_pages_are_expanded_and_capped_as_they_expand(site, private_allowed, settings):
    site.pages["/small.txt"] = Response(200, gzip.compress(b"squeezed text"), content_type="text/plain",
                                        headers={"Content-Encoding": "gzip"})
    assert text(call("read_page", url=f"{site.url}/small.txt")).endswith("\n\nsqueezed text")
    assert "gzip" in site.requests_to("/small.txt")[0].headers["accept-encoding"]

    # 50 MB of spaces in about 50 KB: read up to the cap, never expanded whole.
    settings.BOOCHAT_READ_PAGE_MAX_BYTES = 100_000
    site.pages["/bomb.txt"] = Response(200, gzip.compress(b"x" + b" " * 50_000_000), content_type="text/plain",
                                       headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        answer = call("read_page", url=f"{site.url}/bomb.txt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "[Only the first 100,000 bytes of the page were read.]\n[Cut at 15,000 of 100,000" in text(answer)
    assert peak < 10_000_000


def test_unknown_content_encodings_are_refused(site, private_allowed):
    site.pages["/br.txt"] = Response(200, b"...", content_type="text/plain", headers={"Content-Encoding": "br"})
    answer = call("read_page", url=f"{site.url}/br.txt")
    assert answer.is_error and "is sent with Content-Encoding br, which read_page does not read" in text(answer)


def test_a_page_that_answers_too_slowly_is_given_up(site, private_allowed, settings):
    settings.BOOCHAT_READ_PAGE_TIMEOUT = 1
    site.slow_seconds = 30
    answer = call("read_page", url=f"{site.url}/slow")
    assert answer.is_error
    assert f"{site.url}/slow was not read within 1 s (BOOCHAT_READ_PAGE_TIMEOUT)" in text(answer)


# -- TLS ------------------------------------------------------------------------------------------------


def test_https_sends_the_name_in_sni_and_checks_the_certificate_for_it(certificate, private_allowed):
    names: list[str | None] = []
    site = https_site(certificate)
    site.tls.sni_callback = lambda sock, name, ctx: names.append(name)
    with site:
        answer = call("read_page", url=f"https://localhost:{site.port}/article")
    # Connected to the checked address, yet the TLS handshake named the host, and the certificate was
    # checked (self-signed: refused) rather than skipped.
    assert names and set(names) == {"localhost"}
    assert answer.is_error and "CERTIFICATE_VERIFY_FAILED" in text(answer)


def test_a_bad_allowed_network_stops_start_up_with_its_name():
    from tests.test_settings import manage

    result = manage("check", env={"BOOCHAT_TOOLS_ALLOWED_NETWORKS": "10.20.0.0/16,intranet"})
    assert result.returncode != 0
    assert "BOOCHAT_TOOLS_ALLOWED_NETWORKS: 'intranet' is not a network or an address" in result.stderr
