"""Reconciliation of a backlog: 2,000 open orders, the exchanger answering in 50 ms.

    python -m bench.reconcile

Baseline: the ideal time, orders x latency / concurrency. Goal: at least 0.7 of the ideal
(ideal / actual), every order brought to the exchanger's status, and no anti-flood answer
left unhandled (a second pass answers 10 % of calls with anti-flood).

Then what a run costs when few orders are due: 20 due among the 2,000, then the same 20 among
200,000 more orders that are not due (half finished, half open and checked later). Goal: the
large run within 1.5x of the small one (a run costs what is due, not what the shop holds).
"""

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from app import create_app
from bench.common import (
    PAYOUT,
    insert_open_orders,
    report,
    sandbox_server,
    scratch,
    set_faults,
    verdict,
)
from shop.db import connect, now
from shop.reconcile import orders_to_check, reconcile_all
from tests.helpers import btc_order

ORDERS = 2000
LATENCY = 0.05
CONCURRENCY = 8
DUE = 20
NOT_DUE = 200_000


def create_at_exchanger(sandbox_url, count):
    """Orders made at the sandbox, as checkout would have: (id, uid, secret) each."""
    http = requests.Session()
    url = f"{sandbox_url}/service/api/v1/public/exchanger/order/create/"

    def one(_):
        data = http.post(url, json=btc_order(), timeout=30).json()["data"]
        return data["_id"], data["uid"], data["secret"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def main():
    with scratch() as folder:
        sandbox = sandbox_server(folder, threads=32)
        try:
            created = create_at_exchanger(sandbox.url, ORDERS)
            database = str(folder / "shop.sqlite")
            app = create_app(
                {
                    "SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
                    "DATABASE": database,
                    "EXCHANGER_URL": sandbox.url,
                    # No IPN is wanted here (only polls): port 1 never has a server.
                    "PUBLIC_URL": "http://127.0.0.1:1",
                    "PAYOUT_VALUES": PAYOUT,
                    "RECONCILE_CONCURRENCY": CONCURRENCY,
                }
            )
            insert_open_orders(database, [(*order, "unused") for order in created])
            set_faults(sandbox.url, api_latency=[LATENCY, LATENCY])
            with app.app_context():
                started = time.monotonic()
                first = reconcile_all()
                elapsed = time.monotonic() - started
                # Anti-flood on a tenth of the calls: every order must still be checked.
                set_faults(sandbox.url, api_error=0.1, api_error_kinds=["antiflood"])
                second = reconcile_all()
            db = connect(database)
            statuses = dict(
                db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall()
            )
            db.close()
            set_faults(sandbox.url, api_latency=[LATENCY, LATENCY])
            small = due_runs(app, database)
            add_orders_not_due(database, NOT_DUE)
            large = due_runs(app, database)
        finally:
            sandbox.stop()
    ideal = ORDERS * LATENCY / CONCURRENCY
    ratio = ideal / elapsed
    report(
        f"Reconcile: {ORDERS} open orders, exchanger latency {LATENCY * 1000:.0f} ms, concurrency {CONCURRENCY}",
        [
            ("ideal seconds", f"{ideal:.1f}", "", ""),
            ("actual seconds", f"{elapsed:.1f}", "", ""),
            ("ideal / actual", f"{ratio:.2f}", ">= 0.7", verdict(ratio, 0.7)),
            (
                "first pass outcomes",
                str(dict(first)),
                "all applied",
                verdict(first["applied"], ORDERS),
            ),
            ("with 10 % anti-flood", str(dict(second)), "no error", verdict(-second["error"], 0)),
            ("shop statuses after", str(statuses), "", ""),
        ],
    )
    growth = large["run"] / small["run"]
    report(
        f"Reconcile with {DUE} orders due: among {ORDERS:,} orders, then among"
        f" {ORDERS + NOT_DUE:,} (median of 3 runs)",
        [
            ("due query ms, small", f"{small['query'] * 1000:.2f}", "", ""),
            ("due query ms, large", f"{large['query'] * 1000:.2f}", "", ""),
            ("run seconds, small", f"{small['run']:.3f}", "", ""),
            ("run seconds, large", f"{large['run']:.3f}", "", ""),
            ("large / small run", f"{growth:.2f}", "<= 1.5", verdict(growth, 1.5, False)),
            (
                "orders asked per run",
                str(large["asked"]),
                f"== {DUE}",
                verdict(-abs(large["asked"] - DUE), 0),
            ),
        ],
    )


def make_due(database):
    """The first DUE orders are due now; the other open orders are checked tomorrow."""
    db = connect(database)
    db.execute("UPDATE orders SET next_poll_at = '2999-01-01T00:00:00+00:00'")
    db.execute(
        "UPDATE orders SET next_poll_at = ? WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT ?)",
        (now(), DUE),
    )
    db.close()


def due_runs(app, database, runs=3):
    """Median seconds of the due-orders query and of a whole reconcile run, and orders asked."""
    queries, times, asked = [], [], []
    with app.app_context():
        for _ in range(runs):
            make_due(database)
            started = time.perf_counter()
            orders_to_check()
            queries.append(time.perf_counter() - started)
            make_due(database)
            started = time.perf_counter()
            outcomes = reconcile_all()
            times.append(time.perf_counter() - started)
            asked.append(sum(outcomes.values()))
    return {
        "query": statistics.median(queries),
        "run": statistics.median(times),
        "asked": max(asked),
    }


def add_orders_not_due(database, count):
    """count orders copied from the first one: half done long ago, half open and not due."""
    db = connect(database)
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
        " price, route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret,"
        " status, exchanger_id, exchanger_uid, exchanger_secret, next_poll_at)"
        " SELECT 'x' || i, 'x' || i, created_at, updated_at, lang, currency, price, route_id,"
        " from_xml, from_name, to_xml, send_amount, requisites, ipn_secret,"
        " CASE i % 2 WHEN 0 THEN 'done' ELSE 'errorPayment' END, 'x' || i, 10000000 + i,"
        " 'secret', CASE i % 2 WHEN 0 THEN NULL ELSE '2999-01-01T00:00:00+00:00' END"
        " FROM n, orders WHERE orders.id = 1",
        (count,),
    )
    db.execute("ANALYZE")
    db.close()


if __name__ == "__main__":
    main()
