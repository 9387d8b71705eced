"""The transport layer: Starlette HTTP routes and the WebSocket endpoint, both thin over the service."""

from .app import create_app

__all__ = ["create_app"]
