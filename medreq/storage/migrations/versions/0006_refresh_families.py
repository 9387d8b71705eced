"""Refresh token rotation with reuse detection, and revocations that outlive their account.

- refresh_families: one row per sign-in, naming its only refresh token still good; a reused
  one revokes the family (storage/tokens.py, docs/security.md "A stolen refresh token").
- account_changes.account_id loses its foreign key: removing a synthetic account writes a change
  for the account it removed, so that every worker closes that account's sockets.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
CHANGES_FK = "fk_account_changes_account_id_accounts"


def upgrade() -> None:
    op.create_table(
        "refresh_families",
        sa.Column("family", sa.String(64), primary_key=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("current_jti", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("rotated_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_why", sa.String(16)),
    )
    op.create_index("ix_refresh_families_account", "refresh_families", ["account_id"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "account_changes",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.drop_constraint(CHANGES_FK, type_="foreignkey")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DELETE FROM account_changes WHERE account_id NOT IN (SELECT id FROM accounts)")
    with op.batch_alter_table(
        "account_changes",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.create_foreign_key(CHANGES_FK, "accounts", ["account_id"], ["id"])
    op.drop_index("ix_refresh_families_account", "refresh_families")
    op.drop_table("refresh_families")
