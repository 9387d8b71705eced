"""The wrong-guess back-off of names that are not an account's (docs/security.md, "Guessing").

- login_guards: failures in a row and the hold of an unknown username or of the `/metrics`
  token, shared by every worker so parallel guesses on several workers count as one series
  (an account's own series stays on `accounts.failed_logins`). `subject` is a keyed hash of
  the name, never the name.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "login_guards",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("blocked_until", TS),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_guards")
