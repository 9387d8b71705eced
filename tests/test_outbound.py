"""The deliverer's HTTP client (`medreq.service.outbound.http`): keep-alive, retry of a connection the receiver
closed while idle, SSRF refusal at connect time, no redirects, deadlines, TLS verification."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medreq.protocol.errors import Invalid
from medreq.service.outbound.http import MAX_RESPONSE_BODY, OutboundClient, PostError, TargetRefused

Answer = Callable[[bytes], bytes | None]  # request head + body -> raw response (None: say nothing)


def ok(status: int = 200, body: bytes = b"", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


class Receiver:
    """A raw HTTP/1.1 endpoint on 127.0.0.1: counts connections, records requests, answers with
    `answer(request)`; `close_after` closes each connection after that many responses."""

    def __init__(self, answer: Answer = lambda _r: ok(), *, close_after: int | None = None) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                response = self.answer(request)
                if response is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(response)
                await writer.drain()
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.close()


def url(receiver: Receiver, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
    return f"{scheme}://{host}:{receiver.port}{path}"


async def test_posts_share_one_keep_alive_connection(receiver: Receiver) -> None:
    async with OutboundClient(timeout=5, allow_private=True) as client:
        statuses = [await client.post(url(receiver, "/hook?x=1"), f"body {i}".encode(), {"X-Test": "1"}) for i in range(5)]
    assert statuses == [200] * 5
    assert receiver.connections == 1
    assert len(receiver.requests) == 5
    first = receiver.requests[0]
    assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{receiver.port}".encode() in first.lower()
    assert b"x-test: 1" in first.lower()
    assert first.endswith(b"body 0")


async def test_concurrent_posts_open_connections_and_keep_them() -> None:
    slow = await Receiver().start()
    try:
        async with OutboundClient(timeout=5, allow_private=True) as client:
            first = await asyncio.gather(*(client.post(url(slow), b"x", {}) for _ in range(4)))
            second = await asyncio.gather(*(client.post(url(slow), b"y", {}) for _ in range(4)))
        assert first == second == [200] * 4
        assert slow.connections == 4  # four at once need four; the next four reuse them
        assert len(slow.requests) == 8
    finally:
        await slow.close()


async def test_a_connection_closed_while_idle_is_replaced_and_the_post_sent_once() -> None:
    closing = await Receiver(close_after=1).start()  # closes every connection after one response
    try:
        async with OutboundClient(timeout=5, allow_private=True) as client:
            assert await client.post(url(closing), b"one", {}) == 200
            await asyncio.sleep(0.05)  # the receiver's close arrives while the connection is idle
            assert await client.post(url(closing), b"two", {}) == 200
        assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in closing.requests] == [b"one", b"two"]
        assert closing.connections == 2
    finally:
        await closing.close()


async def test_private_targets_are_refused_at_connect_time_unless_allowed(receiver: Receiver) -> None:
    async with OutboundClient(timeout=5, allow_private=False) as client:
        for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
            with pytest.raises(TargetRefused, match="non-public address"):
                await client.post(url(receiver, host=host), b"secret", {})
    assert receiver.connections == 0  # nothing reached the private address
    async with OutboundClient(timeout=5, allow_private=True) as client:
        assert await client.post(url(receiver), b"allowed", {}) == 200


async def test_bad_urls_are_invalid_before_anything_is_sent() -> None:
    async with OutboundClient(timeout=5, allow_private=True) as client:
        for bad in ("ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x", "http:///x"):
            with pytest.raises(Invalid):
                await client.post(bad, b"x", {})


async def test_redirects_are_a_status_not_followed() -> None:
    redirecting = await Receiver(lambda _r: ok(302, extra="Location: http://169.254.169.254/\r\n")).start()
    try:
        async with OutboundClient(timeout=5, allow_private=True) as client:
            assert await client.post(url(redirecting), b"x", {}) == 302
        assert len(redirecting.requests) == 1
    finally:
        await redirecting.close()


async def test_silence_ends_at_the_deadline_and_the_connection_is_dropped() -> None:
    silent = await Receiver(lambda _r: None).start()
    try:
        async with OutboundClient(timeout=0.3, allow_private=True) as client:
            with pytest.raises(PostError, match=r"no response within 0\.3 s"):
                await client.post(url(silent), b"x", {})
            assert client._idle.get(("http", "127.0.0.1", silent.port), []) == []
    finally:
        await silent.close()


async def test_refused_connection_and_garbage_responses_are_post_errors() -> None:
    gone = await Receiver().start()
    port = gone.port
    await gone.close()
    await asyncio.sleep(0.05)
    garbage = await Receiver(lambda _r: b"NOT HTTP AT ALL\r\n\r\n").start()
    try:
        async with OutboundClient(timeout=5, allow_private=True) as client:
            with pytest.raises(PostError, match="ConnectionRefusedError"):
                await client.post(f"http://127.0.0.1:{port}/hook", b"x", {})
            with pytest.raises(PostError, match="invalid HTTP response"):
                await client.post(url(garbage), b"x", {})
    finally:
        await garbage.close()


async def test_a_long_response_body_is_not_read_to_the_end() -> None:
    chatty = await Receiver(lambda _r: ok(500, b"e" * (MAX_RESPONSE_BODY * 4))).start()
    try:
        async with OutboundClient(timeout=5, allow_private=True) as client:
            assert await client.post(url(chatty), b"x", {}) == 500
            assert await client.post(url(chatty), b"y", {}) == 500
        assert chatty.connections == 2  # the first one was dropped, not drained
    finally:
        await chatty.close()


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medreq test receiver")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_is_verified(tmp_path: Path) -> None:
    server_context, trusting = _certificate(tmp_path)
    tls = await Receiver().start(server_context)
    try:
        async with OutboundClient(timeout=5, allow_private=True, ssl_context=trusting) as client:
            assert await client.post(url(tls, scheme="https"), b"x", {}) == 200
            assert await client.post(url(tls, scheme="https"), b"y", {}) == 200
        assert tls.connections == 1
        async with OutboundClient(timeout=5, allow_private=True) as client:  # the system's CAs: refused
            with pytest.raises(PostError, match=r"^TLS: .*CERTIFICATE_VERIFY_FAILED"):
                await client.post(url(tls, scheme="https"), b"z", {})
        assert len(tls.requests) == 2
    finally:
        await tls.close()


async def test_connection_close_and_bodies_ended_by_the_close_are_understood() -> None:
    closing = await Receiver(lambda _r: ok(204, extra="Connection: close\r\n"), close_after=1).start()
    old_style = await Receiver(lambda _r: b"HTTP/1.0 200 OK\r\n\r\nthanks", close_after=1).start()
    informational = await Receiver(lambda _r: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(201)).start()
    try:
        async with OutboundClient(timeout=5, allow_private=True) as client:
            assert [await client.post(url(closing), b"x", {}) for _ in range(2)] == [204, 204]
            assert [await client.post(url(old_style), b"x", {}) for _ in range(2)] == [200, 200]
            assert [await client.post(url(informational), b"x", {}) for _ in range(2)] == [201, 201]
        assert (closing.connections, old_style.connections, informational.connections) == (2, 2, 1)
    finally:
        for receiver in (closing, old_style, informational):
            await receiver.close()


async def test_headers_of_ours_must_be_plain_ascii(receiver: Receiver) -> None:
    async with OutboundClient(timeout=5, allow_private=True) as client:
        with pytest.raises(ValueError, match="not plain ASCII"):
            await client.post(url(receiver), b"x", {"X-Bad": "line\r\nbreak"})
    assert receiver.requests == []
