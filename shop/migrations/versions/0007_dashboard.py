"""Indexes for the console's dashboard: every figure is read from an index range over its period.

Revision ID: 0007
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None

# The conditions are written exactly as shop/dashboard.py writes them in its queries: SQLite
# uses a partial index only for a query whose WHERE repeats the index's terms.
PAID = sa.text("status = 'done' AND review_reason IS NULL")
IN_REVIEW = sa.text("review_reason IS NOT NULL")
OPEN = sa.text("status NOT IN ('create_failed', 'deleted', 'done', 'returned')")


def upgrade():
    # Paid orders by the time they were paid, with every column the revenue, route and median
    # figures read: SQLite answers them from the index alone, without a visit to the table.
    # status leads though it is always 'done' here: SQLite, which keeps no statistics, prefers
    # an index that matches status = 'done' AND a range to orders_by_status's equality alone.
    # review_reason (NULL in every row of it) is there for SQLite too, which does not see that
    # the index's own condition answers the query's `review_reason IS NULL`.
    op.create_index(
        "orders_paid_by_finished",
        "orders",
        [
            "status",
            "finished_at",
            "created_at",
            "currency",
            "price",
            "from_xml",
            "to_xml",
            "review_reason",
        ],
        sqlite_where=PAID,
        postgresql_where=PAID,
    )
    # Orders created in a period, counted per status (conversion, failed).
    op.create_index("orders_by_created_status", "orders", ["created_at", "status"])
    # Reviews are few (a person settles each one): all of them, or a period's, by index.
    op.create_index(
        "orders_in_review",
        "orders",
        ["created_at", "status"],
        sqlite_where=IN_REVIEW,
        postgresql_where=IN_REVIEW,
    )
    # The open orders, oldest first: the ten waiting longest are the index's first ten.
    op.create_index(
        "orders_open_by_created",
        "orders",
        ["created_at"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
