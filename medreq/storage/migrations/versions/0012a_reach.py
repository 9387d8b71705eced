"""Reaching accounts that are not connected (PROTOCOL.md §6): unread counts, webhooks.

- ix_events_account_request: `unread` counts an account's events of a page of requests
  after its read marks, one grouped query on this index instead of a scan of the account's
  whole history.

Revision ID: 0012a
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0012a"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_account_request", "events", ["account_id", "request_id", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_events_account_request", table_name="events")
