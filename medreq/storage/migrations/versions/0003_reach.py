"""Reaching accounts that are not connected (docs/protocol.md §3 unread, §5 webhooks).

- ix_events_account_request: `unread` counts an account's events of a page of requests
  after its read marks, one grouped query on this index instead of a scan of the account's
  whole history.
- accounts.webhook_secret: the HMAC key of an account's webhook signatures.
- webhook_deliveries: the persistent outbox of webhook and Web Push POSTs, written in the
  transaction of the event it carries, with its attempts.
- push_subscriptions: browsers' Web Push subscriptions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index("ix_events_account_request", "events", ["account_id", "request_id", "event_id"])
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(100)))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False, server_default="webhook"),
        sa.Column("subscription_id", Id),
        sa.Column("event_id", sa.BigInteger),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_attempt_at", TS),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.String(200)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_account", "webhook_deliveries", ["account_id", "id"])
    op.create_table(
        "push_subscriptions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False, unique=True),
        sa.Column("p256dh", sa.String(200), nullable=False),
        sa.Column("auth", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_push_subscriptions_account", "push_subscriptions", ["account_id"])


def downgrade() -> None:
    op.drop_table("push_subscriptions")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret")
    op.drop_index("ix_events_account_request", table_name="events")
