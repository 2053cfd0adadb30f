"""Indexes for the console's dashboard: every figure is read from an index range over its period.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The conditions are written exactly as shop/dashboard.py writes them in its queries: SQLite
# uses a partial index only for a query whose WHERE repeats the index's terms.
PAID = sa.text("status = 'done' AND review_reason IS NULL")
IN_REVIEW = sa.text("review_reason IS NOT NULL")
OPEN = sa.text("status NOT IN ('create_failed', 'deleted', 'done', 'returned')")


def upgrade():
    # Paid orders by the time they were paid, with every column the revenue, route and median
    # figures read, so that they are answered from the index alone, never from the table.
    covered = ["created_at", "currency", "price", "from_xml", "to_xml"]
    if op.get_bind().dialect.name == "sqlite":
        # SQLite keeps no statistics: it prefers orders_by_status's equality to a range of an
        # index whose first column is finished_at. With status first it takes this one, which
        # matches status = 'done' AND the range. review_reason (NULL in every row here) is in
        # it too: SQLite does not see that the index's condition answers `IS NULL`.
        columns, options = ["status", "finished_at", *covered, "review_reason"], {}
    else:
        # PostgreSQL drops the conditions the index's own WHERE implies: status first would
        # leave the range on a second column, and the whole index to read.
        columns, options = ["finished_at"], {"postgresql_include": covered}
    op.create_index(
        "orders_paid_by_finished",
        "orders",
        columns,
        sqlite_where=PAID,
        postgresql_where=PAID,
        **options,
    )
    # Orders created in a period, counted per status (conversion, failed), from the index alone.
    # The console list's date range keeps 0003's (created_at, id), the order its pages follow.
    op.create_index("orders_by_created_status", "orders", ["created_at", "status"])
    # Reviews are few (a person settles each one): all of them, or a period's, by index.
    op.create_index(
        "orders_in_review_by_created",
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
