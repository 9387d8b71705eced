"""SSRF through address spellings (issue 25, item 4): webhook and push targets must be public by an
allow-list, at set time (`netguard.check_target`, the REST endpoints) and at every connection
(`outbound.OutboundClient`), whatever spelling or name leads to the address."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from medreq.protocol.errors import Invalid
from medreq.service.outbound.http import OutboundClient, TargetRefused
from medreq.service.outbound.netguard import check_target, is_public
from medreq.simulate.accounts import Account

from .conftest import ServerProcess, make_account
from .wire import db_snapshot, error_code

# (address, why it is refused): each reaches something the server must not call
REFUSED: list[tuple[str, str]] = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "this host"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("169.254.169.254", "cloud metadata (link-local)"),
    ("192.0.0.170", "NAT64 discovery"),
    ("192.0.2.1", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("198.18.0.1", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast (SSDP)"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::7f00:1", "IPv4-compatible 127.0.0.1"),
    ("::a9fe:a9fe", "IPv4-compatible 169.254.169.254"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:8.8.8.8", "IPv4-mapped, even of a public address"),
    ("::ffff:0:7f00:1", "IPv4-translated 127.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b::808:808", "NAT64, even of a public address"),
    ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
    ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo with an embedded address"),
    ("2001:2::1", "benchmarking"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local with a zone"),
    ("ff02::1", "multicast"),
    ("ff05::2", "multicast"),
    ("not an address", "garbage"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001:81c::200e"]

# URL spellings whose host `getaddrinfo` turns into a refused address without any DNS
REFUSED_URLS = [
    "http://[::7f00:1]/hook",
    "http://[::ffff:0:7f00:1]/hook",
    "http://[64:ff9b::7f00:1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[2002:7f00:1::1]/hook",
    "http://[fec0::1]/hook",
    "http://[::ffff:7f00:1]:8000/hook",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/hook",
    "http://[::]/hook",
    "https://[::1]:443/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook",  # and in hex, abbreviated
    "http://0177.0.0.1/hook",  # and in octal
    "http://127.1/hook",
    "http://0/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost/hook",
]


@pytest.mark.parametrize(("address", "why"), REFUSED, ids=[a for a, _ in REFUSED])
def test_special_addresses_are_not_public(address: str, why: str) -> None:
    assert not is_public(address), why


@pytest.mark.parametrize("address", PUBLIC)
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_every_spelling_is_refused_when_set(url: str) -> None:
    with pytest.raises(Invalid) as refused:
        await check_target(url, allow_private=False, field="endpoint")
    assert refused.value.fields is not None
    assert set(refused.value.fields) == {"endpoint"}


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names of the test's own, resolving to the addresses it says (`socket.getaddrinfo`, which the
    event loop's resolver calls): a DNS record an attacker controls, without a DNS server."""
    names: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (address, int(port), 0, 0) if ":" in address else (address, int(port)),
                )
                for address in names[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize(("address", "why"), [r for r in REFUSED if r[0] != "not an address"])
async def test_a_name_resolving_to_a_special_address_is_refused_when_set_and_at_connect(
    resolver: dict[str, list[str]], address: str, why: str
) -> None:
    resolver["hooks.attacker.test"] = ["93.184.215.14", address]  # one public record hides nothing
    with pytest.raises(Invalid):
        await check_target("https://hooks.attacker.test/h", allow_private=False)
    # the name passed the check with a public record, then was re-pointed (DNS rebinding)
    resolver["hooks.attacker.test"] = [address]
    async with OutboundClient(timeout=5, allow_private=False) as client:
        with pytest.raises(TargetRefused, match="non-public address"):
            await client.post("http://hooks.attacker.test:8000/h", b"event", {})


async def test_a_name_resolving_to_public_addresses_only_passes(resolver: dict[str, list[str]]) -> None:
    resolver["hooks.example.test"] = ["93.184.215.14", "2606:4700:4700::1111"]
    await check_target("https://hooks.example.test/h", allow_private=False)


# --- over the wire: nothing is stored for a refused target ----------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("netguard") / "data", env={"MEDREQ_RATE_LIMIT_ENABLED": "false"}
    )
    proc.start()
    yield proc
    proc.stop()


def test_webhooks_and_push_endpoints_spelled_otherwise_are_refused_and_nothing_stored(
    guarded: ServerProcess,
) -> None:
    account: Account = make_account(guarded.url, "pharmacy")
    keys = {"p256dh": "B" + "A" * 86, "auth": "A" * 22}
    before = db_snapshot(guarded)
    for url in REFUSED_URLS:
        hook = httpx.put(
            f"{guarded.url}/auth/me", json={"webhook_url": url}, headers=account.headers, timeout=10
        )
        assert (hook.status_code, error_code(hook)) == (422, "validation_error"), url
        assert set(hook.json()["error"]["fields"]) == {"webhook_url"}
        push = httpx.post(
            f"{guarded.url}/push/subscriptions",
            json={"endpoint": url, "keys": keys},
            headers=account.headers,
            timeout=10,
        )
        assert (push.status_code, error_code(push)) == (422, "validation_error"), url
        assert set(push.json()["error"]["fields"]) == {"endpoint"}
    assert db_snapshot(guarded) == before
