"""Fetching a web page for the read_page tool, with the rules that keep a model from reaching inside
the network BooChat runs in.

- Only http and https, without a user name or password in the URL.
- The host is resolved here, and every address it resolves to must be public: loopback, private,
  link-local, multicast, reserved and unspecified addresses are refused, IPv4 and IPv6 alike, and so
  are IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64) when that address is
  not public. BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS lifts the rule for an intranet that wants it, and
  BOOCHAT_TOOLS_ALLOWED_NETWORKS lifts it for the networks it lists only.
- The connection goes to the address that was checked, never to a second look-up of the name, so a
  name that answers differently a moment later (DNS rebinding) reaches nothing new; the request
  carries the real name in its Host header and, over TLS, in SNI and the certificate check.
- Redirects are followed by hand, at most MAX_REDIRECTS, each new address checked the same way.
- At most BOOCHAT_READ_PAGE_MAX_BYTES are read, counted after a compressed body is expanded (what
  came before the cap is kept, and says so), and the whole read, redirects included, ends after
  BOOCHAT_READ_PAGE_TIMEOUT seconds.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import zlib
from dataclasses import dataclass

import anyio
import httpx

from providers.http import async_client

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "application/json"})
HEADERS = {
    "User-Agent": "BooChat-read_page/1",
    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.1",
    # Expanded here, piece by piece, so the byte cap counts expanded bytes (a small compressed body can
    # expand a thousandfold).
    "Accept-Encoding": "gzip, deflate",
}
COMPRESSED = frozenset({"gzip", "x-gzip", "deflate"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PageRefused(Exception):
    """Why a page was not read, in words meant for the model and the person reading the call."""


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    media_type: str  # "text/html", "application/json", ...
    text: str
    cut: bool  # the body was longer than the byte cap; `text` is its beginning

    @property
    def is_html(self) -> bool:
        return self.media_type in HTML_TYPES


def address_problem(ip: IPAddress) -> str | None:
    """What makes `ip` not a public address ("loopback", "private", ...), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_problem(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is not None and (problem := address_problem(embedded)):
            return problem
    for problem, applies in (
        ("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast), ("reserved", ip.is_reserved), ("private", ip.is_private),
    ):
        if applies:
            return problem
    return None if ip.is_global else "non-public"


@dataclass(frozen=True)
class AddressRule:
    """Which non-public addresses may be reached: all of them, or those in `networks`."""

    allow_private: bool = False
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, allow_private: bool, networks: list[str]) -> AddressRule:
        return cls(allow_private, tuple(ipaddress.ip_network(network, strict=False) for network in networks))

    def problem(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be reached, or None when it may."""
        if self.allow_private or any(ip in network for network in self.networks):
            return None
        return address_problem(ip)


async def fetch_page(url: str, *, max_bytes: int, timeout: float, rule: AddressRule) -> Page:
    """The page at `url`, read within the rules above; PageRefused says why not."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise PageRefused(f"{url!r} is not a valid URL: {exc}")
    try:
        with anyio.fail_after(timeout):
            return await _fetch(target, max_bytes=max_bytes, timeout=timeout, rule=rule)
    except (TimeoutError, httpx.TimeoutException):
        raise PageRefused(f"{url} was not read within {timeout:g} s (BOOCHAT_READ_PAGE_TIMEOUT)")


async def _fetch(url: httpx.URL, *, max_bytes: int, timeout: float, rule: AddressRule) -> Page:
    # No kept-alive connections: each one is opened to an address checked for its own URL.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with async_client(timeout=timeout, follow_redirects=False, limits=limits) as client:
        for _ in range(MAX_REDIRECTS + 1):
            addresses = await _public_addresses(url, rule=rule)
            response = await _send(client, url, addresses)
            try:
                location = response.headers.get("location")
                if response.status_code not in REDIRECTS or not location:
                    return await _read(response, url, max_bytes=max_bytes)
            finally:
                await response.aclose()
            url = url.join(location)  # httpx.send() has already refused a Location that is no URL
    raise PageRefused(f"more than {MAX_REDIRECTS} redirects (the next to {url})")


async def _public_addresses(url: httpx.URL, *, rule: AddressRule) -> list[IPAddress]:
    if url.scheme not in {"http", "https"}:
        raise PageRefused(f"only http and https pages are read, not {url.scheme or 'a URL without a scheme'}: {url}")
    if not url.host:
        raise PageRefused(f"{url} has no host")
    if url.userinfo:
        raise PageRefused(f"URLs with a user name or password are not read: {url.host}")
    host = url.raw_host.decode("ascii")
    try:
        found = await anyio.getaddrinfo(host, url.port or (443 if url.scheme == "https" else 80),
                                        type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OverflowError) as exc:  # OverflowError: a port past 65535
        raise PageRefused(f"{url.host} cannot be resolved: {exc}")
    addresses = list(dict.fromkeys(ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in found))
    for address in addresses:
        if problem := rule.problem(address):
            what = url.host if _is_literal(url.host, address) else f"{url.host} resolves to {address}, which"
            raise PageRefused(f"{what} is a {problem} address; read_page only reads public addresses "
                              "(BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS, BOOCHAT_TOOLS_ALLOWED_NETWORKS)")
    return addresses


def _is_literal(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


async def _send(client: httpx.AsyncClient, url: httpx.URL, addresses: list[IPAddress]) -> httpx.Response:
    """GET `url` from the first of its checked addresses that takes the connection."""
    headers = {**HEADERS, "Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    failure: httpx.HTTPError | None = None
    for address in addresses:
        request = client.build_request("GET", url.copy_with(host=str(address)), headers=headers,
                                       extensions=extensions)
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise PageRefused(f"{url} could not be read: {exc or type(exc).__name__}")
    raise PageRefused(f"{url.host} could not be reached: {failure or 'no address'}")


async def _read(response: httpx.Response, url: httpx.URL, *, max_bytes: int) -> Page:
    if response.status_code >= 400:
        raise PageRefused(f"{url} answered HTTP {response.status_code} {response.reason_phrase}".rstrip())
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in HTML_TYPES and media_type not in TEXT_TYPES and not media_type.endswith("+json"):
        raise PageRefused(f"{url} is {media_type or 'of no stated type'}; read_page reads HTML, plain text "
                          "and JSON")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in COMPRESSED | {"", "identity"}:
        raise PageRefused(f"{url} is sent with Content-Encoding {encoding}, which read_page does not read")
    # wbits 47: a gzip or a zlib header, whichever the body has.
    expand = zlib.decompressobj(wbits=47) if encoding in COMPRESSED else None
    body = bytearray()
    cut = False
    try:
        async for chunk in response.aiter_raw():
            # Never more than one byte past the cap at a time, however far the chunk would expand.
            body += expand.decompress(chunk, max_bytes + 1 - len(body)) if expand else chunk
            if len(body) > max_bytes:
                del body[max_bytes:]
                cut = True
                break
    except httpx.TimeoutException:
        raise
    except httpx.HTTPError as exc:
        raise PageRefused(f"{url} broke off after {len(body)} bytes: {exc or type(exc).__name__}")
    except zlib.error as exc:
        raise PageRefused(f"{url} could not be expanded ({encoding}): {exc}")
    return Page(str(url), media_type, _decode(bytes(body), response, media_type), cut)


def _decode(body: bytes, response: httpx.Response, media_type: str) -> str:
    charset = response.charset_encoding
    if charset is None and media_type in HTML_TYPES and (meta := _META_CHARSET.search(body[:4096])):
        charset = meta.group(1).decode("ascii")
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")
