"""The schema as the numbered SQL migrations 0001-0010 left it.

A SQLite database made by the old runner (PRAGMA user_version = 10) already has exactly this,
so shop.db.upgrade stamps it at this revision instead of running it.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Money is decimal text in SQLite and NUMERIC in PostgreSQL: never a float, and crypto needs
# eight decimals or more, so no integer cents.
MONEY = sa.Text().with_variant(sa.Numeric(), "postgresql")
# Milliseconds since 1970 (provider timestamps) and exchanger ids outgrow a 32-bit integer,
# which SQLite's INTEGER never is but PostgreSQL's is.
BIG = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
# Seconds since 1970 with a fraction: SQLite's REAL is 8 bytes, PostgreSQL's only 4 (a step
# of two minutes at today's times), so there it is DOUBLE PRECISION.
SECONDS = sa.REAL().with_variant(sa.DOUBLE_PRECISION(), "postgresql")


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token", sa.Text, nullable=False, unique=True),
        # One per rendered checkout form: a double submit finds the order the first one made.
        sa.Column("checkout_key", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("lang", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("route_id", sa.Text, nullable=False),
        sa.Column("from_xml", sa.Text, nullable=False),
        sa.Column("from_name", sa.Text, nullable=False),
        sa.Column("to_xml", sa.Text, nullable=False),
        sa.Column("send_amount", MONEY, nullable=False),
        sa.Column("requisites", sa.Text, nullable=False),
        sa.Column("buyer_email", sa.Text),
        sa.Column("ipn_secret", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("exchanger_id", sa.Text, unique=True),
        sa.Column("exchanger_uid", BIG),
        sa.Column("exchanger_rid", sa.Text),
        sa.Column("exchanger_secret", sa.Text),
        sa.Column("quoted_in", MONEY),
        sa.Column("quoted_out", MONEY),
        sa.Column("reported_in", MONEY),
        sa.Column("reported_out", MONEY),
        sa.Column("last_event_ms", BIG),
        sa.Column("last_polled_at", sa.Text),
        sa.Column("review_reason", sa.Text),
        sa.Column("create_error", sa.Text),
        # A version per order, so a poll answer overtaken by an IPN is dropped instead of
        # applied (orders.apply_event); when an order finished, and its refund checks after done.
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("finished_at", sa.Text),
        sa.Column("settle_checks", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("settle_check_at", sa.Text),
    )
    op.create_index("orders_by_status", "orders", ["status"])
    op.create_index(
        "orders_by_settle_check",
        "orders",
        ["settle_check_at"],
        sqlite_where=sa.text("settle_check_at IS NOT NULL"),
        postgresql_where=sa.text("settle_check_at IS NOT NULL"),
    )
    # An IPN for an unknown orderId tries only the few young drafts in limbo: found by index.
    limbo = sa.text("status = 'draft' AND exchanger_id IS NULL")
    op.create_index(
        "orders_in_limbo",
        "orders",
        ["from_xml", "to_xml", "created_at"],
        sqlite_where=limbo,
        postgresql_where=limbo,
    )

    op.create_table(
        "order_items",
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("order_id", "product_id"),
    )

    op.create_table(
        "status_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("old_status", sa.Text),
        sa.Column("new_status", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("provider_ts", BIG),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("status_history_by_order", "status_history", ["order_id"])

    op.create_table(
        "ipn_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("remote_addr", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id")),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        # The request headers that help tell a real IPN from a forged one (proxies, client).
        sa.Column("headers", sa.Text),
        # Where the checksum of a verified IPN travelled ("body:hash", "query:sign"): the docs
        # never say, so the first live IPN tells the merchant (flask ipn inspect).
        sa.Column("checksum_field", sa.Text),
    )
    op.create_index("ipn_log_by_order", "ipn_log", ["order_id"])
    op.create_index("ipn_log_by_received_at", "ipn_log", ["received_at"])
    # The allowance counts recent rejected (and still open) entries, per address and in all.
    op.create_index("ipn_log_by_addr", "ipn_log", ["remote_addr", "outcome", "received_at"])
    op.create_index("ipn_log_by_outcome", "ipn_log", ["outcome", "received_at"])

    # Rejected IPNs past an address's allowance are counted per minute instead of logged one
    # by one, so a flood of junk cannot fill the disk (see shop/ipn.py, "the log's bound").
    op.create_table(
        "ipn_log_suppressed",
        sa.Column("minute", sa.Text, nullable=False),
        sa.Column("remote_addr", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("bytes", BIG, nullable=False),
        sa.PrimaryKeyConstraint("minute", "remote_addr"),
    )

    # The exchanger's route list and definitions, shared by every worker (shop/routecache.py).
    op.create_table(
        "route_cache",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("fetched_at", SECONDS, nullable=False),
        # A worker refreshing this entry holds it until then; others keep serving the old value.
        sa.Column("refreshing_until", SECONDS, nullable=False, server_default=sa.text("0")),
        # Set when the last refresh failed: pages say the rates may be out of date.
        sa.Column("failed_at", SECONDS),
    )

    # Every console login attempt, shown in the console; failures also slow guessing.
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("remote_addr", sa.Text, nullable=False),
        sa.Column("attempted_at", sa.Text, nullable=False),
        # 'ok', 'failed', or 'unlocked' (in with a one-time code past the limit)
        sa.Column("outcome", sa.Text, nullable=False),
    )
    op.create_index("login_attempts_by_addr", "login_attempts", ["remote_addr", "attempted_at"])
    op.create_index("login_attempts_by_time", "login_attempts", ["attempted_at"])

    # One-time codes printed by `flask console unlock`: they pass the login limit (sha256 only).
    op.create_table(
        "console_unlock_codes",
        sa.Column("code_hash", sa.Text, primary_key=True),
        sa.Column("expires_at", sa.Text, nullable=False),
    )

    # Console sessions: the cookie holds only an id, so logout and a new password end them.
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.Text, primary_key=True),
        sa.Column("password_version", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
    )

    # Order creations per buyer session and per address, to throttle checkout.
    op.create_table(
        "checkout_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_key", sa.Text, nullable=False),
        sa.Column("remote_addr", sa.Text, nullable=False),
        sa.Column("attempted_at", sa.Text, nullable=False),
    )
    op.create_index(
        "checkout_attempts_by_session", "checkout_attempts", ["session_key", "attempted_at"]
    )
    op.create_index(
        "checkout_attempts_by_addr", "checkout_attempts", ["remote_addr", "attempted_at"]
    )


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
