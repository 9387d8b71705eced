"""Where the server may send requests of its own (webhooks): public http(s) targets only.

A webhook URL is chosen by a user, and the server POSTs to it from inside its network: without
a check, a user could make it call the cloud metadata service (169.254.169.254), an admin
interface on localhost or a database on a private address (SSRF). `check_target` refuses any URL
whose host name resolves to a loopback, private, link-local, multicast, reserved or otherwise
non-global address (every address it resolves to, so one public record does not hide a private
one), unless the server's configuration allows private targets (tests, a private deployment).
The deliverer's client (`outbound`) checks again whenever it connects, and connects to the very
addresses it checked, so a name re-pointed at a private address later (DNS rebinding) is refused
with no window between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from .protocol.errors import Invalid

MAX_URL = 2000
#: plain visible ASCII: no space, no control character (a URL, a header name)
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
RESOLVE_SECONDS = 5.0


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
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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
        raise _refuse("must be a public address (loopback, private and link-local ones are refused)", field)
