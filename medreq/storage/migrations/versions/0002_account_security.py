"""Account security: status, token versions, login back-off, revocations; ids never reused.

- accounts.status: `active`, `pending` (a self-registered pharmacy awaiting approval) or
  `disabled` (docs/protocol.md §2).
- accounts.token_version: carried in every token as `ver`; bumping it revokes them all
  (password change, disable).
- accounts.failed_logins / login_blocked_until: per-account back-off on wrong passwords.
- accounts.synthetic: accounts made by the simulator and load tests, hidden from listings.
- revoked_tokens: refresh tokens given back with `POST /auth/logout`, until they expire.
- account_changes: a log every worker polls, so a revocation made anywhere (another worker,
  the operator CLI) closes that account's sockets everywhere.
- SQLite: AUTOINCREMENT on every id, so the id of a deleted row is never handed out again
  (without it SQLite reuses the largest id after a delete, and an old token would name the
  next account). PostgreSQL sequences never reuse ids already.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
ID_TABLES = ("accounts", "medicine_requests", "messages", "events")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ID_TABLES:
        # SQLite: rebuild the table with AUTOINCREMENT (the store turns foreign keys off
        # around migrations, as SQLite's docs ask for a table rebuild).
        with op.batch_alter_table(
            table,
            recreate="always" if sqlite else "auto",
            table_kwargs={"sqlite_autoincrement": True},
        ) as batch:
            if table == "accounts":
                batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="active"))
                batch.add_column(sa.Column("token_version", sa.Integer, nullable=False, server_default="0"))
                batch.add_column(sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"))
                batch.add_column(sa.Column("login_blocked_until", TS))
                batch.add_column(
                    sa.Column("synthetic", sa.Boolean, nullable=False, server_default=sa.false())
                )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_table(
        "account_changes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("account_changes")
    op.drop_table("revoked_tokens")
    with op.batch_alter_table("accounts") as batch:
        for column in ("synthetic", "login_blocked_until", "failed_logins", "token_version", "status"):
            batch.drop_column(column)
