"""Payments that are not a cart: payment links and API payments, API keys, and their rate limit.

A payment is something the merchant asks a buyer to pay (an amount and a description); each
attempt to pay it is an ordinary order carrying its payment_id and the merchant's reference,
so the status rules, IPNs and reconcile treat it like any other order (shop/payments.py).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.Text().with_variant(sa.Numeric(), "postgresql")
BIG = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def upgrade():
    # Keys the merchant's systems send as a bearer token: only the SHA-256 of each is kept.
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        # The key's first characters, so the merchant can tell keys apart in the console.
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Text),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer, primary_key=True),
        # The buyer's link, /pay/<token>: unguessable, like an order's token.
        sa.Column("token", sa.Text, nullable=False, unique=True),
        # 'link' (made in the console) or 'api'
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("reference", sa.Text),
        sa.Column("buyer_email", sa.Text),
        sa.Column("return_url", sa.Text),
        sa.Column("single_use", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.Text),
        sa.Column("disabled_at", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id")),
        # Idempotency-Key of the create, the hash of its body, and the answer it got: a retry
        # with the same key gets the same answer; the unique pair makes concurrent ones one.
        sa.Column("idempotency_key", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.Column("response", sa.Text),
        sa.UniqueConstraint("api_key_id", "idempotency_key"),
    )
    # No foreign key: SQLite cannot add one to an existing table without re-making it (and
    # orders is the largest table); payments are never deleted, so nothing can dangle.
    op.add_column("orders", sa.Column("payment_id", sa.Integer))
    # The merchant's own reference, copied from the payment: webhooks and searches see it on
    # the order itself.
    op.add_column("orders", sa.Column("reference", sa.Text))
    op.create_index(
        "orders_by_payment",
        "orders",
        ["payment_id"],
        sqlite_where=sa.text("payment_id IS NOT NULL"),
        postgresql_where=sa.text("payment_id IS NOT NULL"),
    )
    # Fixed-window request counts (shop/throttle.py): one row per name and window.
    op.create_table(
        "rate_windows",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("window_start", BIG, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name", "window_start"),
    )


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
