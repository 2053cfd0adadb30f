"""Reconciliation of a backlog: 2,000 open orders, the exchanger answering in 50 ms.

    python -m bench.reconcile

Baseline: the ideal time, orders x latency / concurrency. Goal: at least 0.7 of the ideal
(ideal / actual), every order brought to the exchanger's status, and no anti-flood answer
left unhandled (a second pass answers 10 % of calls with anti-flood).
"""

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
from shop.db import connect
from shop.reconcile import reconcile_all
from tests.helpers import btc_order

ORDERS = 2000
LATENCY = 0.05
CONCURRENCY = 8


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


if __name__ == "__main__":
    main()
