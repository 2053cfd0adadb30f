"""IPN throughput: signed IPNs for distinct pending orders, 16 connections, shop on gunicorn (2x8 threads).

    python -m bench.ipn [--database sqlite|postgresql|both]

On each engine in turn: SQLite (the file, its fsync per IPN) and PostgreSQL (a server started
here, from Debian's package, durable: fsync on, synchronous_commit on). Baseline: the same
server's /health. Goals: IPN throughput at least 0.5 of the baseline's, p99 under 25 ms, and
every IPN applied.
"""

import argparse
import hashlib
import os
import secrets
from urllib.parse import urlencode

from bench.common import (
    GUNICORN_SHOP,
    ROOT,
    Server,
    count_rows,
    insert_open_orders,
    report,
    scratch,
    shop_env,
    verdict,
    wrk,
)

ORDERS = 60_000
CONNECTIONS = 16
SECONDS = 5


def make_orders(database, count, database_url=None):
    """Pending orders, each with its own ipnSecret, and one signed IPN body for each."""
    orders, bodies = [], []
    for n in range(count):
        order_id, uid, ipn_secret = secrets.token_hex(12), 100000 + n, secrets.token_urlsafe(32)
        orders.append((order_id, uid, "S3cretS3cretS3cret", ipn_secret))
        fields = {
            "orderUID": str(uid),
            "orderId": order_id,
            "newStatus": "inProgress",
            "inAmount": "0.00021012",
            "outAmount": "12.5",
            "xml_from": "BTC",
            "xml_to": "USDTTRC20",
            "timestamp": "1800000000000",
        }
        signed = ":".join(fields[k] for k in list(fields)[1:]) + ":" + ipn_secret
        fields["hash"] = hashlib.sha256(signed.encode()).hexdigest()
        bodies.append(urlencode(fields))
    insert_open_orders(database, orders, database_url)
    return bodies


def measure(folder, database_url=None):
    """wrk against /health, then against /ipn; the figures and what the database recorded."""
    database = str(folder / "shop.sqlite")
    bodies = make_orders(database, ORDERS, database_url)
    (folder / "bodies.txt").write_text("\n".join(bodies) + "\n")
    os.environ["IPN_BODIES"] = str(folder / "bodies.txt")
    env = shop_env(folder, "http://127.0.0.1:1", database_url)
    shop = Server("app:create_app()", env, **GUNICORN_SHOP)
    try:
        wrk(f"{shop.url}/health", CONNECTIONS, 1)  # warm up both workers
        baseline = wrk(f"{shop.url}/health", CONNECTIONS, SECONDS)
        ipn = wrk(shop.url, CONNECTIONS, SECONDS, script=ROOT / "bench" / "ipn.lua")
        memory = shop.peak_worker_mb()
    finally:
        shop.stop()
    sql = "SELECT COUNT(*) FROM ipn_log"
    applied = count_rows(database, sql + " WHERE outcome = 'applied'", database_url)
    logged = count_rows(database, sql, database_url)
    return baseline, ipn, memory, applied, logged


def rows(engine, baseline, ipn, memory, applied, logged):
    ratio = ipn["rps"] / baseline["rps"]
    return [
        (f"{engine}: baseline /health req/s", f"{baseline['rps']:.0f}", "", ""),
        (f"{engine}: IPN req/s", f"{ipn['rps']:.0f}", "", ""),
        (f"{engine}: IPN / baseline", f"{ratio:.2f}", ">= 0.5", verdict(ratio, 0.5)),
        (f"{engine}: IPN p50 ms", f"{ipn['p50_ms']:.1f}", "", ""),
        (
            f"{engine}: IPN p99 ms",
            f"{ipn['p99_ms']:.1f}",
            "< 25",
            verdict(ipn["p99_ms"], 25, False),
        ),
        (
            f"{engine}: IPNs answered / logged / applied",
            f"{ipn['requests']}/{logged}/{applied}",
            "all applied",
            verdict(applied, logged) if ipn["non_2xx"] == 0 else "MISSES",
        ),
        (f"{engine}: peak worker memory MB", f"{memory:.0f}", "< 80", verdict(memory, 80, False)),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    engines = parser.parse_args().database
    table = []
    if engines in ("sqlite", "both"):
        with scratch() as folder:
            table += rows("SQLite", *measure(folder))
    if engines in ("postgresql", "both"):
        from tests.postgres import PostgresServer

        server = PostgresServer(durable=True)
        try:
            with scratch() as folder:
                table += rows("PostgreSQL", *measure(folder, server.database()))
        finally:
            server.stop()
    report(f"IPN: {CONNECTIONS} connections, {SECONDS} s, gunicorn 2 workers x 8 threads", table)


if __name__ == "__main__":
    main()
