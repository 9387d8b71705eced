"""Where medreq is assembled: settings → store, hub, media store, token issuer → the service.

The one place that knows how the parts fit: the server (`web.app.create_app`), the operator
commands (`medreq account …`, `medreq db …`), the tests and the load tests all build the service
here, so a collaborator added or configured differently changes here only.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

from .auth import TokenIssuer
from .config import Settings
from .hub import Hub, create_hub
from .media import MediaStore
from .service import MedreqService
from .storage import Store


def open_store(settings: Settings) -> Store:
    """The store of the configured database, not migrated (the caller closes it)."""
    return Store(settings.database_url, fast=settings.pg_fast_path)


def media_store(settings: Settings) -> MediaStore:
    """The media store (its signing key derives from the JWT secret: see `ensure_secret`)."""
    return MediaStore(
        settings.media_dir or settings.data_dir / "media",
        settings.jwt_secret,
        base_url=settings.public_url,
        url_ttl=settings.media_url_ttl,
        follow_host=settings.public_url_is_derived,
    )


def hub_for(settings: Settings) -> Hub:
    # servers share a hub exactly when they share a database
    namespace = "medreq:" + hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]
    return create_hub(settings.redis_url, namespace=namespace, presence_ttl=settings.presence_ttl)


def build_service(settings: Settings) -> MedreqService:
    """The service, not started (see `MedreqService.start`)."""
    settings = settings.ensure_secret()
    tokens = TokenIssuer(
        settings.jwt_secret,
        algorithm=settings.jwt_algorithm,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )
    return MedreqService(
        settings, open_store(settings), hub_for(settings), media_store(settings), tokens
    )


@contextlib.asynccontextmanager
async def open_service(
    settings: Settings, *, migrate: bool = True, serve: bool = False
) -> AsyncIterator[MedreqService]:
    """A started service for the length of a block; closed after it, however it ends.

    `serve=False` (commands, tests of the service): the database only, no hub or background work."""
    service = build_service(settings)
    try:
        await service.start(migrate=migrate, serve=serve)
        yield service
    finally:
        await service.close()
