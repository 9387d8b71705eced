"""Where the client reaches each operation: the one place it spells the server's paths.

Names are those of `medreq.protocol.operations` (``request_detail``, ``cancel``, …), so this
table can give way to that one; ids are filled in by `route` and `channel`.
"""

from __future__ import annotations

from typing import Final

ROUTES: Final[dict[str, tuple[str, str]]] = {
    "register": ("POST", "/auth/register"),
    "token": ("POST", "/auth/token"),
    "refresh": ("POST", "/auth/refresh"),
    "me": ("GET", "/auth/me"),
    "set_webhook": ("PUT", "/auth/me"),
    "remove_me": ("DELETE", "/auth/me"),
    "webhook_deliveries": ("GET", "/auth/me/webhook-deliveries"),
    "test_webhook": ("POST", "/auth/me/webhook-test"),
    "push_subscriptions": ("GET", "/push/subscriptions"),
    "remove_push_subscription_by_id": ("DELETE", "/push/subscriptions/{subscription_id}"),
    "pharmacies": ("GET", "/pharmacies/"),
    "create_request": ("POST", "/medicine/request/"),
    "list_requests": ("GET", "/medicine/request/"),
    "request_detail": ("GET", "/medicine/request/{request_id}/"),
    "cancel": ("POST", "/medicine/request/{request_id}/cancel/"),
    "choose": ("POST", "/medicine/request/{request_id}/choose/"),
    "post_message": ("POST", "/medicine/request/{request_id}/messages/"),
    "respond": ("POST", "/medicine/response/"),
}
"""Operation name → (method, path template)."""

CHANNELS: Final[dict[str, str]] = {
    "user": "/ws/user/{id}/",
    "pharmacy": "/ws/pharmacy/{id}/",
}
"""WebSocket channel → path template (a patient's socket is ``user``)."""


def route(name: str, **ids: int) -> tuple[str, str]:
    """The method and path of operation ``name``, its ``{…}`` filled with ``ids``."""
    method, template = ROUTES[name]
    return method, template.format(**{key: int(value) for key, value in ids.items()})


def channel(name: str, account_id: int) -> str:
    """The path of WebSocket channel ``name`` for one account."""
    return CHANNELS[name].format(id=int(account_id))
