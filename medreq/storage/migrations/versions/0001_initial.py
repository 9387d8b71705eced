"""Initial schema: accounts, requests, messages, events, idempotency keys, read marks.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(40)),
        sa.Column("webhook_url", sa.String(2000)),
        sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("username", name="uq_accounts_username"),
    )
    op.create_index("ix_accounts_role", "accounts", ["role", "id"])
    op.create_table(
        "medicine_requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("patient_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("pharmacy_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("medicine_name", sa.String(200)),
        sa.Column("note", sa.Text),
        sa.Column("image_name", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response_message", sa.Text),
        sa.Column("response_audio_name", sa.String(64)),
        sa.Column("responded_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("image_name", name="uq_medicine_requests_image_name"),
        sa.UniqueConstraint("response_audio_name", name="uq_medicine_requests_response_audio_name"),
    )
    op.create_index("ix_requests_patient", "medicine_requests", ["patient_id", "id"])
    op.create_index("ix_requests_pharmacy", "medicine_requests", ["pharmacy_id", "id"])
    op.create_index("ix_requests_pharmacy_status", "medicine_requests", ["pharmacy_id", "status", "id"])
    op.create_table(
        "messages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", Id, sa.ForeignKey("medicine_requests.id"), nullable=False),
        sa.Column("sender_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_messages_request", "messages", ["request_id", "id"])
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("request_id", Id),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("account_id", "event_id", name="uq_events_account_event"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_id", Id, sa.ForeignKey("medicine_requests.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "read_marks",
        sa.Column("account_id", Id, sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("request_id", Id, sa.ForeignKey("medicine_requests.id"), primary_key=True),
        sa.Column("up_to_event_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("read_marks", "idempotency_keys", "events", "messages", "medicine_requests", "accounts"):
        op.drop_table(table)
