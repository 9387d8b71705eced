"""Tables. SQLAlchemy Core; the Alembic migrations in `migrations/` create exactly these.

- accounts: both roles; `last_event_id` is the per-account event counter (§4 event_id).
- request_groups: one row per "ask several pharmacies at once" (docs/protocol.md §3, groups): the
  group's id, its patient and the request chosen (null until one is). Choosing locks this row,
  so concurrent choices of one group run one after the other on every database.
- medicine_requests: a request and its answer (one answer per request); `group_id` names its
  group (null for a single request), several of which share one prescription `image_name`.
- messages: the thread on a request (beyond: detail endpoint, messages).
- events: every stored event, per account, in event_id order (§5 replay).
- idempotency_keys: first response per (account, key) (beyond: Idempotency-Key).
- read_marks: how far each party has read a request's events (beyond: read receipts).
- revoked_tokens: refresh tokens given back with logout, kept until they expire.
- account_changes: revocations (disable, password change, a removed account), polled by every
  worker; no foreign key, so a removed account's change outlives it.
- refresh_families (storage/tokens.py): one row per sign-in, for refresh token rotation.
- webhook_deliveries: the persistent outbox of webhook and Web Push POSTs, their attempts (docs/protocol.md §5).
- push_subscriptions: browsers' Web Push subscriptions (docs/protocol.md §5).
- login_guards: the wrong-guess back-off of names that are not an account's (unknown usernames,
  the `/metrics` token), keyed by a keyed hash of the name (storage/throttle.py).

Every id is AUTOINCREMENT on SQLite, so no id is ever reused (PostgreSQL sequences never do).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements INTEGER PRIMARY KEY; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("phone", String(40)),
    Column("webhook_url", String(2000)),
    # HMAC key of the webhook's signatures (docs/protocol.md §5), shown once when the URL is set
    Column("webhook_secret", String(100)),
    # full: the webhook gets the event as sent on a socket; thin: its ids only (type, event_id,
    # request_id), the receiver reads the rest with its own token (docs/protocol.md §5)
    Column("webhook_payload", String(8), nullable=False, server_default="full"),
    Column("last_event_id", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # active | pending (a pharmacy awaiting approval) | disabled
    Column("status", String(16), nullable=False, server_default="active"),
    # carried in every token as `ver`: bumping it revokes them all
    Column("token_version", Integer, nullable=False, server_default="0"),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("login_blocked_until", DateTime(timezone=True)),
    # made by the simulator or a load test: hidden from listings, removed after the run
    Column("synthetic", Boolean, nullable=False, server_default=false()),
    sqlite_autoincrement=True,
)
Index("ix_accounts_role", accounts.c.role, accounts.c.id)

request_groups = Table(
    "request_groups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("accounts.id"), nullable=False),
    # no foreign key: medicine_requests refers to this table (a cycle would order neither first)
    Column("chosen_request_id", Id),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

medicine_requests = Table(
    "medicine_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("patient_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("pharmacy_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("medicine_name", String(200)),
    Column("note", Text),
    # shared by the requests of a group (stored once); not unique since migration 0007
    Column("image_name", String(64)),
    Column("status", String(16), nullable=False),
    Column("response_message", Text),
    Column("response_audio_name", String(64), unique=True),
    Column("responded_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # §8: the group (null: a single request), how many pharmacies it asked, whether the patient
    # chose it, why it was cancelled (patient_cancelled | another_pharmacy_chosen)
    Column("group_id", Id, ForeignKey("request_groups.id")),
    Column("asked_pharmacies", Integer, nullable=False, server_default="1"),
    Column("chosen", Boolean, nullable=False, server_default=false()),
    Column("cancel_reason", String(32)),
    # §8: the answer's offer: a price as a decimal string with two places, its ISO 4217
    # currency, and when it can be picked up
    Column("response_price", String(20)),
    Column("response_currency", String(3)),
    Column("response_ready_at", DateTime(timezone=True)),
    sqlite_autoincrement=True,
)
Index("ix_requests_patient", medicine_requests.c.patient_id, medicine_requests.c.id)
Index("ix_requests_pharmacy", medicine_requests.c.pharmacy_id, medicine_requests.c.id)
Index(
    "ix_requests_pharmacy_status",
    medicine_requests.c.pharmacy_id,
    medicine_requests.c.status,
    medicine_requests.c.id,
)
Index("ix_requests_group", medicine_requests.c.group_id, medicine_requests.c.id)
Index("ix_requests_image_name", medicine_requests.c.image_name)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", Id, ForeignKey("medicine_requests.id"), nullable=False),
    Column("sender_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_messages_request", messages.c.request_id, messages.c.id)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("type", String(32), nullable=False),
    Column("request_id", Id),
    Column("payload", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("account_id", "event_id", name="uq_events_account_event"),
    sqlite_autoincrement=True,
)
# unread counts per request (queries.unread_counts)
Index("ix_events_account_request", events.c.account_id, events.c.request_id, events.c.event_id)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_id", Id, ForeignKey("medicine_requests.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

read_marks = Table(
    "read_marks",
    metadata,
    Column("account_id", Id, ForeignKey("accounts.id"), primary_key=True),
    Column("request_id", Id, ForeignKey("medicine_requests.id"), primary_key=True),
    Column("up_to_event_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

account_changes = Table(
    "account_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, nullable=False),  # no foreign key: it may name a removed account
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    # webhook (the account's URL) | push (a Web Push subscription of the account)
    Column("channel", String(16), nullable=False, server_default="webhook"),
    Column("subscription_id", Id),  # push: the subscription (gone when it expired)
    Column("event_id", BigInteger),  # null for a test delivery
    Column("type", String(32), nullable=False),
    # the stored event's text until delivered or failed, then cleared: no medical data kept longer
    Column("payload", Text),
    # pending | delivered | failed | skipped (the account was connected: its socket had it)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # when it is due; while a deliverer holds it, the end of that deliverer's lease
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_status", Integer),
    Column("last_error", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    sqlite_autoincrement=True,
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_account", webhook_deliveries.c.account_id, webhook_deliveries.c.id)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", Id, ForeignKey("accounts.id"), nullable=False),
    Column("endpoint", String(2000), nullable=False, unique=True),
    Column("p256dh", String(200), nullable=False),
    Column("auth", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_push_subscriptions_account", push_subscriptions.c.account_id)

login_guards = Table(
    "login_guards",
    metadata,
    # HMAC-SHA256 (hex) of what was guessed at: an unknown username is kept only as this, since
    # people type their password in the username field
    Column("subject", String(64), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("blocked_until", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
