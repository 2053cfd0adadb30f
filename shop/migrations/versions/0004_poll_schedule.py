"""Reconcile asks only about orders due a check: a per-order next_poll_at, found by index.

next_poll_at is when `flask reconcile` should next ask the exchanger about an order: set by
orders.write_order on every change, from the order's age (shop/orders.py, POLL_STEPS), and
for a done order equal to its refund check (settle_check_at). NULL means never again: the
order is final. The index holds only orders that still have a check coming, so a run reads
the due ones through it, however many finished orders the shop has; the refund checks' own
index (orders_by_settle_check) goes, as nothing reads it any more.

age_flagged_at: when reconcile sent an open order to review because the exchanger had not
finished it in OPEN_ORDER_REVIEW_DAYS; it is sent there once.

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The shop's final statuses (shop/orders.py FINAL), as they are today: a migration keeps the
# meaning it had when written.
FINAL = ("done", "returned", "deleted", "create_failed")


def upgrade():
    op.add_column("orders", sa.Column("next_poll_at", sa.Text))
    op.add_column("orders", sa.Column("age_flagged_at", sa.Text))
    scheduled = sa.text("next_poll_at IS NOT NULL")
    op.create_index(
        "orders_due_for_poll",
        "orders",
        ["next_poll_at"],
        sqlite_where=scheduled,
        postgresql_where=scheduled,
    )
    # Every open order is due at the first run after the upgrade, which then schedules it by
    # its age; a done order keeps its refund check.
    op.execute(
        sa.text(
            "UPDATE orders SET next_poll_at = :now WHERE status NOT IN (:f0, :f1, :f2, :f3)"
        ).bindparams(
            now=datetime.now(UTC).isoformat(timespec="seconds"),
            **{f"f{n}": status for n, status in enumerate(FINAL)},
        )
    )
    op.execute(
        "UPDATE orders SET next_poll_at = settle_check_at"
        " WHERE status = 'done' AND settle_check_at IS NOT NULL"
    )
    # Refund checks are found through orders_due_for_poll now: their own index only cost writes.
    op.drop_index("orders_by_settle_check", table_name="orders")


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
