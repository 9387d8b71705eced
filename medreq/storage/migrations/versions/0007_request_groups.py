"""Asking several pharmacies at once (docs/protocol.md §3, groups).

- request_groups: one row per group, with the request its patient chose (null until then).
- medicine_requests: `group_id`, `asked_pharmacies`, `chosen`, `cancel_reason`, and the answer's
  offer (`response_price`, `response_currency`, `response_ready_at`); `image_name` is no longer
  unique (a group's requests share the one stored prescription) and gets a plain index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
IMAGE_UNIQUE = "uq_medicine_requests_image_name"
GROUP_FK = "fk_medicine_requests_group_id_request_groups"


def upgrade() -> None:
    op.create_table(
        "request_groups",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("patient_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("chosen_request_id", Id),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "medicine_requests",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.drop_constraint(IMAGE_UNIQUE, type_="unique")
        batch.add_column(sa.Column("group_id", Id))
        batch.add_column(sa.Column("asked_pharmacies", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("chosen", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("cancel_reason", sa.String(32)))
        batch.add_column(sa.Column("response_price", sa.String(20)))
        batch.add_column(sa.Column("response_currency", sa.String(3)))
        batch.add_column(sa.Column("response_ready_at", TS))
        batch.create_foreign_key(GROUP_FK, "request_groups", ["group_id"], ["id"])
    op.create_index("ix_requests_group", "medicine_requests", ["group_id", "id"])
    op.create_index("ix_requests_image_name", "medicine_requests", ["image_name"])
    # requests cancelled before 0007 were all withdrawn by their patient
    op.execute("UPDATE medicine_requests SET cancel_reason = 'patient_cancelled' WHERE status = 'CANCELLED'")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_index("ix_requests_image_name", "medicine_requests")
    op.drop_index("ix_requests_group", "medicine_requests")
    # a shared prescription goes back to one request; the others lose their link to it
    op.execute(
        "UPDATE medicine_requests SET image_name = NULL WHERE image_name IS NOT NULL AND id NOT IN "
        "(SELECT min(id) FROM medicine_requests WHERE image_name IS NOT NULL GROUP BY image_name)"
    )
    with op.batch_alter_table(
        "medicine_requests",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.drop_constraint(GROUP_FK, type_="foreignkey")
        for column in (
            "response_ready_at",
            "response_currency",
            "response_price",
            "cancel_reason",
            "chosen",
            "asked_pharmacies",
            "group_id",
        ):
            batch.drop_column(column)
        batch.create_unique_constraint(IMAGE_UNIQUE, ["image_name"])
    op.drop_table("request_groups")
