"""Passwords (salted scrypt) and JWT access/refresh tokens (docs/protocol.md §2)."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import jwt

from .protocol.errors import Unauthorized

TokenKind = Literal["access", "refresh"]
MAX_ACCOUNT_ID = 2**63 - 1
VERIFIED_CACHE_SIZE = 50_000

_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_DKLEN = 32


def hash_password(password: str, *, n: int = 2**14) -> str:
    """A slow salted hash: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_DKLEN, maxmem=2**27
    )
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(expected)),
            maxmem=2**27,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


async def hash_password_async(password: str, *, n: int = 2**14) -> str:
    return await asyncio.to_thread(hash_password, password, n=n)


async def verify_password_async(password: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password, password, stored)


@functools.cache
def _dummy_hash(n: int) -> str:
    return hash_password("medreq-dummy-password", n=n)


async def verify_or_waste(password: str, stored: str | None, *, n: int = 2**14) -> bool:
    """Verify, or when the account does not exist waste the same time, so both failures look alike.

    Call it whether or not the account exists: skipping it for an unknown username is what
    made a wrong password take 48.8 ms for a real one and 2.9 ms for an unknown one.
    """
    ok = await verify_password_async(password, stored or _dummy_hash(n))
    return ok and stored is not None


@dataclass(frozen=True)
class Claims:
    account_id: int
    role: str
    kind: TokenKind
    expires_at: int
    version: int = 0  # the account's token_version when issued: a bump revokes the token
    token_id: str = ""  # `jti`, to revoke one refresh token (logout)
    #: `auth_time`: when the password was last typed for this token's series (Unix seconds); a
    #: refreshed access token keeps its refresh token's, so it tells how fresh the sign-in is
    auth_time: int = 0
    #: `fam`: the sign-in this token descends from (its first refresh token's `jti`); a reused
    #: refresh token revokes the whole family (service/accounts.py, storage/tokens.py)
    family: str = ""

    def signed_in_within(self, seconds: float) -> bool:
        return time.time() - self.auth_time <= seconds


class TokenIssuer:
    def __init__(self, secret: str, *, algorithm: str = "HS256", access_ttl: int, refresh_ttl: int) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verified: dict[tuple[str, str], Claims] = {}

    def issue(
        self,
        account_id: int,
        role: str,
        kind: TokenKind = "access",
        *,
        version: int = 0,
        ttl: int | None = None,
        auth_time: int | None = None,
        family: str = "",
        token_id: str | None = None,
        expires_at: int | None = None,
    ) -> str:
        """A signed token; `auth_time` is the sign-in it descends from (None: a sign-in now),
        `family` that sign-in's id (`fam`), `token_id` its `jti` (None: a new random one) and
        `expires_at` an absolute `exp` (a rotated refresh token keeps its family's)."""
        now = int(time.time())
        lifetime = ttl if ttl is not None else (self.access_ttl if kind == "access" else self.refresh_ttl)
        payload: dict[str, object] = {
            "sub": str(account_id),
            "role": role,
            "typ": kind,
            "ver": version,
            "iat": now,
            "exp": expires_at if expires_at is not None else now + lifetime,
            "jti": token_id or new_token_id(),
            "auth_time": now if auth_time is None else auth_time,
        }
        if family:
            payload["fam"] = family
        return jwt.encode(payload, self._secret, algorithm=self._algorithm)

    def verify(self, token: str, kind: TokenKind = "access") -> Claims:
        """The claims of a valid, unexpired token of `kind`; Unauthorized otherwise.

        A token verified once is remembered until it expires: clients send the same access
        token with every call, and decoding it again costs more than the rest of auth.
        """
        claims = self._verified.get((token, kind))
        if claims is not None and claims.expires_at > time.time():
            return claims
        claims = self._decode(token, kind)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[(token, kind)] = claims
        return claims

    def _decode(self, token: str, kind: TokenKind) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                options={"require": ["exp", "sub", "role", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token") from None
        if payload.get("typ") != kind:
            raise Unauthorized(f"not an {kind} token" if kind == "access" else f"not a {kind} token")
        try:
            account_id = int(payload["sub"])
        except (TypeError, ValueError):
            raise Unauthorized("invalid token") from None
        if not 1 <= account_id <= MAX_ACCOUNT_ID:
            raise Unauthorized("invalid token")
        version = payload.get("ver", 0)
        auth_time = payload.get("auth_time", 0)  # tokens issued before it existed: never fresh
        family = payload.get("fam", "")  # tokens issued before rotation: none
        if not isinstance(version, int) or not isinstance(auth_time, int) or not isinstance(family, str):
            raise Unauthorized("invalid token")
        return Claims(
            account_id,
            str(payload["role"]),
            kind,
            int(payload["exp"]),
            version,
            str(payload.get("jti", "")),
            auth_time,
            family,
        )

    def fingerprint(self, text: str) -> str:
        """A keyed hash of `text` (hex HMAC-SHA256 with the server's secret): what the server keeps
        of a name it must recognise but not store, such as a guessed username."""
        return hmac.new(self._secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def new_token_id() -> str:
    """A fresh `jti` (96 random bits)."""
    return secrets.token_urlsafe(12)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
