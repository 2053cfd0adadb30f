"""The console at a million orders: counters per state, and an index for every list and search.

`order_counts` holds how many orders there are per (status, review): the console's counts read
it instead of grouping the whole table. Triggers on `orders` keep it, in the transaction of the
statement that changes an order, whoever writes it (the status writer, a migration, an
operator's fix in SQL, a benchmark that builds orders in SQL): it cannot drift from COUNT(*).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG = sa.Integer().with_variant(sa.BigInteger(), "postgresql")

# 1 when the order waits for a person (its review_reason is set), else 0.
REVIEW = "CASE WHEN {row}.review_reason IS NULL THEN 0 ELSE 1 END"

SQLITE_TRIGGERS = [
    """CREATE TRIGGER order_counts_insert AFTER INSERT ON orders BEGIN
        INSERT INTO order_counts (status, review, n) VALUES (NEW.status, {new}, 1)
        ON CONFLICT (status, review) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER order_counts_delete AFTER DELETE ON orders BEGIN
        UPDATE order_counts SET n = n - 1 WHERE status = OLD.status AND review = {old};
    END""",
    # Only when the status or the review changes: most updates of an order touch neither.
    """CREATE TRIGGER order_counts_update AFTER UPDATE OF status, review_reason ON orders
    WHEN OLD.status IS NOT NEW.status OR {old} IS NOT {new} BEGIN
        UPDATE order_counts SET n = n - 1 WHERE status = OLD.status AND review = {old};
        INSERT INTO order_counts (status, review, n) VALUES (NEW.status, {new}, 1)
        ON CONFLICT (status, review) DO UPDATE SET n = n + 1;
    END""",
]

# On PostgreSQL a trigger runs once per statement, with the rows it changed (transition
# tables): a statement that makes a million orders updates each counter once, where a trigger
# per row would update the same counter row a million times in one transaction (each update a
# new version of it, every one read again by the next: hours). Concurrent IPNs each lock the
# counter rows they change until they commit; they lock them in key order, so two changes the
# other way round (hold -> inProgress beside inProgress -> hold) never wait for each other. A
# statement that changes no status or review (most do not) writes no counter and locks none.
# Each function names only the transition tables its trigger has.
POSTGRESQL_TRIGGERS = [
    """CREATE FUNCTION order_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_counts (status, review, n)
    SELECT status, {row_review}, COUNT(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (status, review) DO UPDATE SET n = order_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$""",
    """CREATE FUNCTION order_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_counts (status, review, n)
    SELECT status, {row_review}, -COUNT(*) FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (status, review) DO UPDATE SET n = order_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$""",
    """CREATE FUNCTION order_counts_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_counts (status, review, n)
    SELECT status, review, SUM(delta) FROM (
        SELECT status, {row_review} AS review, -1 AS delta FROM old_rows
        UNION ALL
        SELECT status, {row_review}, 1 FROM new_rows
    ) AS changes
    GROUP BY status, review HAVING SUM(delta) <> 0 ORDER BY status, review
    ON CONFLICT (status, review) DO UPDATE SET n = order_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER order_counts_insert AFTER INSERT ON orders REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_counts_add()""",
    """CREATE TRIGGER order_counts_update AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_counts_move()""",
    """CREATE TRIGGER order_counts_delete AFTER DELETE ON orders REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION order_counts_remove()""",
]


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "order_counts",
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("review", sa.Integer, nullable=False),
        sa.Column("n", BIG, nullable=False),
        sa.PrimaryKeyConstraint("status", "review"),
    )
    # Counted once from the rows there are; the triggers keep it from here on. On SQLite the
    # migration holds the writer lock; on PostgreSQL the lock below keeps writers out until
    # the triggers exist, so no change falls between the count and them.
    if postgresql:
        op.execute("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE")
    review = REVIEW.format(row="orders")
    op.execute(
        "INSERT INTO order_counts (status, review, n)"  # noqa: S608 - no value from outside
        f" SELECT status, {review}, COUNT(*) FROM orders GROUP BY status, {review}"
    )
    keys = {
        "{old}": REVIEW.format(row="OLD"),
        "{new}": REVIEW.format(row="NEW"),
        "{row_review}": "CASE WHEN review_reason IS NULL THEN 0 ELSE 1 END",
    }
    for trigger in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        for key, value in keys.items():
            trigger = trigger.replace(key, value)
        op.execute(trigger)

    # The console's lists, newest first, each through an index that gives the id order too.
    not_in_review = sa.text("review_reason IS NULL")
    op.create_index(
        "orders_by_state",
        "orders",
        ["status", "id"],
        sqlite_where=not_in_review,
        postgresql_where=not_in_review,
    )
    in_review = sa.text("review_reason IS NOT NULL")
    op.create_index(
        "orders_in_review", "orders", ["id"], sqlite_where=in_review, postgresql_where=in_review
    )
    # A date range is listed newest first by (created_at, id), this index's order: a page of a
    # month is the first entries of the month's range, not the month sorted by id to keep 50.
    # The id makes the order total (orders made in the same microsecond) and is what a page's
    # position carries. On PostgreSQL its condition holds for every order (created_at is NOT
    # NULL), so it holds them all, but the planner takes it only for a query that bounds
    # created_at (which implies the condition): a scan in created_at order without a range,
    # the dashboard's oldest open orders, keeps to 0005's partial index of open orders even on
    # a small table without statistics. SQLite needs no such help there, and would not take a
    # partial index for the range (it sorted each timestamp's orders of 0005's index instead).
    has_date = sa.text("created_at IS NOT NULL")
    op.create_index(
        "orders_by_created_at", "orders", ["created_at", "id"], postgresql_where=has_date
    )
    # A state within a date range: each status's newest in the range, in the same order; and
    # each status's count in the range, from the index alone. SQLite does not see that the
    # index's condition answers the query's `review_reason IS NULL`, and would read every
    # counted order's row to check it: there the column (NULL in every entry) is in the index.
    by_state_created = ["status", "created_at", "id"]
    if not postgresql:
        by_state_created.append("review_reason")
    op.create_index(
        "orders_by_state_created",
        "orders",
        by_state_created,
        sqlite_where=not_in_review,
        postgresql_where=not_in_review,
    )
    # Searches: an exchanger order number, and an e-mail by its lower-cased start (a range in
    # code point order, which PostgreSQL's "C" collation gives and SQLite's BINARY is).
    op.create_index("orders_by_exchanger_uid", "orders", ["exchanger_uid"])
    email = 'lower(buyer_email) COLLATE "C"' if postgresql else "lower(buyer_email)"
    op.execute(f"CREATE INDEX orders_by_email ON orders ({email})")
    op.create_index("ipn_log_by_outcome_id", "ipn_log", ["outcome", "id"])


def downgrade():
    # The shop never migrates down: restore a backup instead.
    raise NotImplementedError
