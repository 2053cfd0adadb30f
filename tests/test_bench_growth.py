"""bench/growth.py at a tiny size, so that it cannot rot: every row measured, on both engines.

No timing is asserted (speed is the benchmark's business): only that the data set is built as
described and that the report has a number for every row at both sizes.
"""

from bench import growth
from tests.conftest import BOTH_ENGINES

pytestmark = BOTH_ENGINES
SIZES = (200, 2000)


def test_the_growth_benchmark_reports_every_row_at_both_sizes(engine, request):
    urls = (None, None)
    if engine == "postgresql":
        server = request.getfixturevalue("postgres")
        urls = (server.database(), server.database())

    run = growth.run_engine(engine, SIZES, urls)

    for figures, size in zip((run["small"], run["large"]), SIZES, strict=True):
        # Grown to the size asked, with about 5 % of the orders still open.
        assert figures["orders"] == size
        assert 0.03 * size <= figures["open_orders"] <= 0.08 * size
        # The old pages were found (an Older link on the first page) and measured.
        assert figures["list_old"] is not None and figures["ipn_old"] is not None
    assert [row["key"] for row in run["rows"]] == [key for key, *_ in growth.ROWS]
    for row in run["rows"]:
        assert row["small"] is not None and row["large"] is not None, row
        assert row["result"] in ("", "MET", "MISSED"), row
    by_key = {row["key"]: row for row in run["rows"]}
    # The CSV holds every order, so the large shop's is about ten times the small one's.
    assert 5 < by_key["csv_bytes"]["ratio"] < 15
    # Reconcile really asked the sandbox about orders, and every answer was usable.
    assert by_key["reconcile_first_asked"]["large"] > by_key["reconcile_first_asked"]["small"] > 0


def test_a_counters_table_is_rebuilt_from_the_orders_the_builder_inserted(store):
    # Migration 0003's triggers keep order_counts; a stale row stands for counters that drifted
    # (a build with the triggers off), which the rebuild must correct.
    from shop.db import execute, make_engine, query, transaction, upgrade
    from tests.helpers import query as rows

    upgrade(store)
    engine = make_engine(store)
    with engine.connect() as db, transaction(db):
        execute(db, "INSERT INTO order_counts VALUES ('stale', 0, 99)")
        for n, (status, review) in enumerate(
            [("done", None), ("done", None), ("done", "why"), ("hold", None)]
        ):
            execute(
                db,
                "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
                " price, route_id, from_xml, from_name, to_xml, send_amount, requisites,"
                " ipn_secret, status, review_reason) VALUES (:t, :t, 'x', 'x', 'en', 'USDTTRC20',"
                " '1', 'r', 'BTC', 'Bitcoin', 'USDTTRC20', '1', '[]', 's', :status, :review)",
                {"t": f"t{n}", "status": status, "review": review},
            )
        growth.fill_derived_tables(db, "postgresql" if store.get("DATABASE_URL") else "sqlite")
        counts = query(db, "SELECT status, review, n FROM order_counts ORDER BY status, review")
    engine.dispose()

    assert [tuple(row.values()) for row in counts] == [
        ("done", 0, 2),
        ("done", 1, 1),
        ("hold", 0, 1),
    ]
    assert rows(store, "SELECT COUNT(*) AS n FROM orders")[0]["n"] == 4
