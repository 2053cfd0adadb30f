"""Webhooks out: the merchant's endpoints, an outbox of signed events, and a delivery log.

An event row is written in the same transaction as the status change that causes it (like
mail_outbox), one per enabled endpoint, and delivered later with retries; every attempt leaves a
line in webhook_deliveries for the console.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        # The signing key: kept in clear, since every delivery signs with it (like the
        # exchanger's API secret in the settings). Shown to the merchant once, when made.
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        # One id per change of state, the same for every endpoint and every redelivery.
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("endpoint_id", sa.Integer, sa.ForeignKey("webhook_endpoints.id"), nullable=False),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        # The exact bytes sent (and signed) on every attempt.
        sa.Column("payload", sa.Text, nullable=False),
        # pending, sending (claimed: next_attempt_at is then the lease's end), delivered, failed.
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.Text, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("delivered_at", sa.Text),
        sa.UniqueConstraint("event_id", "endpoint_id"),
    )
    due = sa.text("state IN ('pending', 'sending')")
    op.create_index(
        "webhook_outbox_due",
        "webhook_outbox",
        ["next_attempt_at"],
        sqlite_where=due,
        postgresql_where=due,
    )
    # An endpoint's events, newest first; and its waiting and given-up counts, from the index.
    op.create_index("webhook_outbox_by_endpoint", "webhook_outbox", ["endpoint_id", "id"])
    op.create_index("webhook_outbox_by_endpoint_state", "webhook_outbox", ["endpoint_id", "state"])
    op.create_index("webhook_outbox_by_order", "webhook_outbox", ["order_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("webhook_outbox.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.Text, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        # None when no answer came (refused, timed out); the error then says why.
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
    )
    op.create_index("webhook_deliveries_by_event", "webhook_deliveries", ["outbox_id", "id"])


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
