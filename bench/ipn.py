"""IPN throughput: signed IPNs for distinct pending orders, 16 connections, shop on gunicorn (2 workers).

    python -m bench.ipn

Baseline: the same server's /health. Goals: IPN throughput at least 0.5 of the baseline's,
p99 under 25 ms, and every IPN applied.
"""

import hashlib
import os
import secrets
from urllib.parse import urlencode

from bench.common import ROOT, Server, report, scratch, shop_env, verdict, wrk
from shop.db import connect, migrate

ORDERS = 60_000
CONNECTIONS = 16
SECONDS = 5


def make_orders(database, count):
    """Pending orders as checkout leaves them, each with its own ipnSecret; their IPN bodies."""
    migrate(database)
    db = connect(database)
    rows, bodies = [], []
    for n in range(count):
        order_id, secret = secrets.token_hex(12), secrets.token_urlsafe(32)
        rows.append((f"tok{n}", f"key{n}", order_id, 100000 + n, secret))
        fields = {
            "orderUID": str(100000 + n),
            "orderId": order_id,
            "newStatus": "inProgress",
            "inAmount": "0.00021012",
            "outAmount": "12.5",
            "xml_from": "BTC",
            "xml_to": "USDTTRC20",
            "timestamp": "1800000000000",
        }
        signed = ":".join(fields[k] for k in list(fields)[1:]) + ":" + secret
        fields["hash"] = hashlib.sha256(signed.encode()).hexdigest()
        bodies.append(urlencode(fields))
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency, price,"
        " route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret, status,"
        " exchanger_id, exchanger_uid, exchanger_secret)"
        " VALUES (?, ?, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 'en',"
        " 'USDTTRC20', '12.50', 'r', 'BTC', 'Bitcoin', 'USDTTRC20', '0.00021012', '[]', ?, 'new',"
        " ?, ?, 'S3cretS3cretS3cret')",
        [(token, key, secret, order_id, uid) for token, key, order_id, uid, secret in rows],
    )
    db.execute("COMMIT")
    db.close()
    return bodies


def main():
    with scratch() as folder:
        bodies = make_orders(str(folder / "shop.sqlite"), ORDERS)
        (folder / "bodies.txt").write_text("\n".join(bodies) + "\n")
        os.environ["IPN_BODIES"] = str(folder / "bodies.txt")
        shop = Server("app:create_app()", shop_env(folder, "http://127.0.0.1:1"), workers=2)
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
        f"IPN: {CONNECTIONS} connections, {SECONDS} s, gunicorn 2 sync workers",
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
