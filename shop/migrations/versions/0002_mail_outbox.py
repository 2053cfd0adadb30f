"""Mail to buyers, from an outbox (the old runner's 0012).

Written in the same transaction as the status change that causes it, and sent later (design.md
3: mail goes out from an outbox, never inline). One row per order and kind, so a mail is queued
once however often the change is reported.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("lang", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.Text, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("sent_at", sa.Text),
        sa.UniqueConstraint("order_id", "kind"),
    )
    pending = sa.text("state = 'pending'")
    op.create_index(
        "mail_outbox_due",
        "mail_outbox",
        ["next_attempt_at"],
        sqlite_where=pending,
        postgresql_where=pending,
    )


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
