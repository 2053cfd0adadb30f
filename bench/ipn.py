"""IPN throughput: signed IPNs for distinct pending orders, 16 connections, shop on gunicorn (2x8 threads).

    python -m bench.ipn

Baseline: the same server's /health. Goals: IPN throughput at least 0.5 of the baseline's,
p99 under 25 ms, and every IPN applied.
"""

import hashlib
import os
import secrets
from urllib.parse import urlencode

from bench.common import (
    GUNICORN_SHOP,
    ROOT,
    Server,
    insert_open_orders,
    report,
    scratch,
    shop_env,
    verdict,
    wrk,
)
from shop.db import connect

ORDERS = 60_000
CONNECTIONS = 16
SECONDS = 5


def make_orders(database, count):
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
    insert_open_orders(database, orders)
    return bodies


def main():
    with scratch() as folder:
        bodies = make_orders(str(folder / "shop.sqlite"), ORDERS)
        (folder / "bodies.txt").write_text("\n".join(bodies) + "\n")
        os.environ["IPN_BODIES"] = str(folder / "bodies.txt")
        shop = Server("app:create_app()", shop_env(folder, "http://127.0.0.1:1"), **GUNICORN_SHOP)
        try:
            wrk(f"{shop.url}/health", CONNECTIONS, 1)  # warm up both workers
            baseline = wrk(f"{shop.url}/health", CONNECTIONS, SECONDS)
            ipn = wrk(shop.url, CONNECTIONS, SECONDS, script=ROOT / "bench" / "ipn.lua")
            memory = shop.peak_worker_mb()
        finally:
            shop.stop()
        db = connect(str(folder / "shop.sqlite"))
        applied = db.execute("SELECT COUNT(*) FROM ipn_log WHERE outcome = 'applied'").fetchone()[0]
        logged = db.execute("SELECT COUNT(*) FROM ipn_log").fetchone()[0]
        db.close()
    ratio = ipn["rps"] / baseline["rps"]
    report(
        f"IPN: {CONNECTIONS} connections, {SECONDS} s, gunicorn 2 workers x 8 threads",
        [
            ("baseline /health req/s", f"{baseline['rps']:.0f}", "", ""),
            ("IPN req/s", f"{ipn['rps']:.0f}", "", ""),
            ("IPN / baseline", f"{ratio:.2f}", ">= 0.5", verdict(ratio, 0.5)),
            ("IPN p50 ms", f"{ipn['p50_ms']:.1f}", "", ""),
            ("IPN p99 ms", f"{ipn['p99_ms']:.1f}", "< 25", verdict(ipn["p99_ms"], 25, False)),
            (
                "IPNs answered / logged / applied",
                f"{ipn['requests']}/{logged}/{applied}",
                "all applied",
                verdict(applied, logged) if ipn["non_2xx"] == 0 else "MISSES",
            ),
            ("peak worker memory MB", f"{memory:.0f}", "< 80", verdict(memory, 80, False)),
        ],
    )


if __name__ == "__main__":
    main()
