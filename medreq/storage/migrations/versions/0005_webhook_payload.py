"""An account's choice of webhook payload (docs/protocol.md §5).

- accounts.webhook_payload: `full` (the event as a socket gets it; what every webhook got before)
  or `thin` (its ids only: type, event_id, request_id).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("webhook_payload", sa.String(8), nullable=False, server_default="full"))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_payload")
