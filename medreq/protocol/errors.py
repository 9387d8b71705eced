"""The one tree of medreq errors, each with its docs/protocol.md §1 code.

    MedreqError                 internal               500
    ├── InvalidJSON             invalid_json           400
    ├── Invalid                 validation_error       422
    ├── Unauthorized            unauthorized           401
    ├── Forbidden               forbidden              403
    │   └── ReauthenticationRequired reauthentication_required 403 (REST only)
    ├── NotFound                not_found              404
    ├── Conflict                conflict               409
    ├── PayloadTooLarge         payload_too_large      413
    ├── UnsupportedMediaType    unsupported_media_type 415
    ├── RateLimited             rate_limited           429 (Retry-After)
    ├── MethodNotAllowed        method_not_allowed     405 (HTTP only)
    ├── HeadersTooLarge         headers_too_large      431 (then close)
    ├── Unavailable             unavailable            503 (Retry-After; connection limits)
    └── TransportError          (client only, medreq.client: never on the wire)
        └── ConnectionLost

Each class names its code; its HTTP `status` and WebSocket `close` code come from the one
mapping of code → status → close code, `codes.ERROR_WIRE` beside this module. The HTTP layer maps
`status` to the response status (431 and 503 are written by the
connection guard in `medreq.web.guard.http`, before any request reaches the app); the WebSocket layer sends
`{"type": "error", "error": ...}` and keeps the connection open, or closes with `close` when the
error ends the socket. Both use `body()`,
so no endpoint invents its own error shape. The client raises the same classes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .codes import ERROR_WIRE, CloseCode


class MedreqError(Exception):
    code: ClassVar[str] = "internal"
    status: ClassVar[int]  # these two from `protocol.codes.ERROR_WIRE`, set below the tree
    close: ClassVar[CloseCode | None]
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, *, fields: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.fields = fields
        super().__init__(self.message)

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return error

    def body(self) -> dict[str, Any]:
        return {"error": self.error()}


class InvalidJSON(MedreqError):
    code = "invalid_json"
    default_message = "body is not valid JSON"


class Invalid(MedreqError):
    code = "validation_error"
    default_message = "invalid input"


class Unauthorized(MedreqError):
    code = "unauthorized"
    default_message = "authentication required"


class Forbidden(MedreqError):
    code = "forbidden"
    default_message = "not allowed"


class ReauthenticationRequired(Forbidden):
    """The token is valid, but its sign-in is too old for what it asks (setting where the
    account's events are sent): sign in with the password again, then retry."""

    code = "reauthentication_required"
    default_message = "sign in again with your password to do this"


class NotFound(MedreqError):
    code = "not_found"
    default_message = "not found"


class Conflict(MedreqError):
    code = "conflict"
    default_message = "conflict"


class PayloadTooLarge(MedreqError):
    code = "payload_too_large"
    default_message = "payload too large"


class UnsupportedMediaType(MedreqError):
    code = "unsupported_media_type"
    default_message = "unsupported media type"


class RateLimited(MedreqError):
    code = "rate_limited"
    default_message = "too many requests"

    def __init__(self, message: str | None = None, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HeadersTooLarge(MedreqError):
    code = "headers_too_large"
    default_message = "request line and headers are too large"


class Unavailable(MedreqError):
    code = "unavailable"
    default_message = "too many connections, try again later"

    def __init__(self, message: str | None = None, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MethodNotAllowed(MedreqError):
    code = "method_not_allowed"
    default_message = "method not allowed on this endpoint"


ERRORS_BY_CODE: dict[str, type[MedreqError]] = {
    cls.code: cls
    for cls in (
        MedreqError,
        InvalidJSON,
        Invalid,
        Unauthorized,
        ReauthenticationRequired,  # before Forbidden: a bare 403 (ERRORS_BY_STATUS) is Forbidden
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        MethodNotAllowed,
        HeadersTooLarge,
        Unavailable,
    )
}
for _cls in ERRORS_BY_CODE.values():
    _cls.status, _cls.close = ERROR_WIRE[_cls.code]

ERRORS_BY_STATUS: dict[int, type[MedreqError]] = {cls.status: cls for cls in ERRORS_BY_CODE.values()}


def error_from_body(body: Any, status: int | None = None) -> MedreqError:
    """Rebuild the error a server sent (used by the client)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return MedreqError(f"unexpected error response (HTTP {status})")
    cls = ERRORS_BY_CODE.get(str(error.get("code")), MedreqError)
    message = str(error.get("message") or cls.default_message)
    if cls is RateLimited or cls is Unavailable:
        return cls(message)
    exc = cls(message, fields=error.get("fields"))
    return exc
