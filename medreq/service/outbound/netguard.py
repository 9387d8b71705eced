"""Where the server may send requests of its own (webhooks, Web Push): public http(s) targets only.

A webhook URL or a push endpoint is chosen by a user, and the server POSTs to it from inside its
network: without a check, a user could make it call the cloud metadata service (169.254.169.254),
an admin interface on localhost or a database on a private address (SSRF). `check_target`
refuses any URL whose host name resolves to an address that is not public (every address it
resolves to, so one public record does not hide a private one), unless the server's
configuration allows private targets (tests, a private deployment). The deliverer's client
(`outbound`) checks again whenever it connects, and connects to the very addresses it checked,
so a name re-pointed at a private address later (DNS rebinding) is refused with no window
between the check and the connection.

"Public" is an allow-list, not Python's `is_global` (which, in 3.11, calls `[::7f00:1]`,
`[64:ff9b::a9fe:a9fe]` or `[2002:7f00:1::1]` global, though each reaches a private IPv4
address through a translator, a tunnel or an old stack):

- IPv4: `is_global`, and outside every special-purpose block of IANA's registry
  (`IPV4_REFUSED`: loopback, private, shared, link-local, documentation, benchmarking, the 6to4
  relay, multicast, reserved, broadcast…).
- IPv6: only global unicast, 2000::/3, and outside the special blocks inside it
  (`IPV6_REFUSED`: Teredo and the rest of 2001::/23, documentation, 6to4). Everything outside
  2000::/3 is refused with no list needed: IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96),
  IPv4-translated (::ffff:0:0:0/96), NAT64 (64:ff9b::/96, 64:ff9b:1::/48), discard, unique local,
  site-local (fec0::/10), link-local, multicast, loopback and unspecified.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from ...protocol.errors import Invalid

MAX_URL = 2000
#: plain visible ASCII: no space, no control character (a URL, a header name)
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
RESOLVE_SECONDS = 5.0

#: IANA's IPv4 special-purpose blocks, refused even where `is_global` would pass them
IPV4_REFUSED = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, the cloud metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, NAT64 discovery…)
        "192.0.2.0/24",  # documentation
        "192.31.196.0/24",  # AS112
        "192.52.193.0/24",  # AMT
        "192.88.99.0/24",  # the deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "192.175.48.0/24",  # AS112 direct delegation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
#: global unicast, the only IPv6 addresses a target may have
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
#: special blocks inside 2000::/3
IPV6_REFUSED = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments: Teredo (2001::/32), benchmarking, ORCHID, AMT…
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: the next 32 bits are an IPv4 address
        "2620:4f:8000::/48",  # AS112 direct delegation
        "3fff::/20",  # documentation (RFC 9637)
    )
)


def _refuse(reason: str, field: str = "webhook_url") -> Invalid:
    return Invalid(f"{field}: {reason}", fields={field: reason})


def parse_target(url: str, field: str = "webhook_url") -> tuple[str, int]:
    """(host, port) of an http(s) URL without credentials; Invalid otherwise."""
    if len(url) > MAX_URL:
        raise _refuse(f"must be at most {MAX_URL} characters", field)
    if not VISIBLE_ASCII.fullmatch(url):  # it becomes a request line and a Host header (outbound.py)
        raise _refuse("must be plain ASCII without spaces or control characters (percent-encode them)", field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("is not a valid URL", field) from None
    if parts.scheme not in ("http", "https"):
        raise _refuse("must be an http or https URL", field)
    if not parts.hostname:
        raise _refuse("has no host", field)
    if parts.username or parts.password:
        raise _refuse("must not carry credentials", field)
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_public(address: str) -> bool:
    """Whether the server may connect to `address` (an IP address as text, maybe with a zone)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not any(ip in block for block in IPV4_REFUSED)
    return ip in IPV6_GLOBAL_UNICAST and not any(ip in block for block in IPV6_REFUSED)


async def check_target(url: str, *, allow_private: bool, field: str = "webhook_url") -> None:
    """Refuse (Invalid, 422) a URL the server must not send to; resolves its host name."""
    host, port = parse_target(url, field)
    if allow_private:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS)
    except (OSError, TimeoutError):
        raise _refuse("host name does not resolve", field) from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(is_public(address) for address in addresses):
        raise _refuse(
            "must be a public address (loopback, private, link-local, NAT64, 6to4, IPv4-mapped and "
            "other special addresses are refused)",
            field,
        )
