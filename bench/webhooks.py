"""IPN answers with a webhook endpoint that is fine, down or hanging, against none at all.

    python -m bench.webhooks [--database sqlite|postgresql]

Every IPN moves a distinct pending order to processing, so every IPN queues one event. The
shop runs under gunicorn (2 workers x 8 threads), each worker's background sender delivering
after the responses. Goal: IPN throughput and p99 with the receiver down or hanging within a
fifth of those with no endpoint (delivery never happens in the IPN's request; what remains is
the sender's own writes beside the IPNs').
"""

import argparse
import os
import socket
from datetime import UTC, datetime

from bench.common import (
    GUNICORN_SHOP,
    ROOT,
    Server,
    count_rows,
    report,
    scratch,
    shop_env,
    verdict,
    wrk,
)
from bench.ipn import make_orders
from tests.servers import LiveServer

ORDERS = 30_000
CONNECTIONS = 16
SECONDS = 5


def receiver_app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("204 No Content", [])
    return [b""]


def add_endpoint(database, url, database_url=None):
    from shop.db import execute, make_engine, transaction

    engine = make_engine({"DATABASE": str(database), "DATABASE_URL": database_url})
    with engine.connect() as db, transaction(db):
        execute(
            db,
            "INSERT INTO webhook_endpoints (url, secret, enabled, created_at)"
            " VALUES (:url, 'whsec_bench', :enabled, :now)",
            {"url": url, "enabled": True, "now": datetime.now(UTC).isoformat()},
        )
    engine.dispose()


def measure(receiver_url, database_url=None):
    """IPN figures with this endpoint (None: no endpoint); events queued and delivered."""
    with scratch() as folder:
        database = folder / "shop.sqlite"
        bodies = make_orders(str(database), ORDERS, database_url)
        (folder / "bodies.txt").write_text("\n".join(bodies) + "\n")
        os.environ["IPN_BODIES"] = str(folder / "bodies.txt")
        if receiver_url:
            add_endpoint(database, receiver_url, database_url)
        env = shop_env(folder, "http://127.0.0.1:1", database_url)
        shop = Server("app:create_app()", env, **GUNICORN_SHOP)
        try:
            wrk(f"{shop.url}/health", CONNECTIONS, 1)  # warm up both workers
            ipn = wrk(shop.url, CONNECTIONS, SECONDS, script=ROOT / "bench" / "ipn.lua")
        finally:
            shop.stop()
        queued = count_rows(str(database), "SELECT COUNT(*) FROM webhook_outbox", database_url)
        delivered = count_rows(
            str(database),
            "SELECT COUNT(*) FROM webhook_outbox WHERE state = 'delivered'",
            database_url,
        )
        return ipn, queued, delivered


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    database_url, server = None, None
    if parser.parse_args().database == "postgresql":
        from tests.postgres import PostgresServer

        server = PostgresServer(durable=True)
    receiver = LiveServer(receiver_app)
    # Takes connections (the kernel's backlog) and never answers: every attempt waits out
    # the read timeout.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(1024)
    try:
        cases = {
            "no endpoint": None,
            "receiver fine": f"{receiver.url}/hooks",
            "receiver down": "http://127.0.0.1:1/hooks",
            "receiver hanging": f"http://127.0.0.1:{hung.getsockname()[1]}/hooks",
        }
        results = {}
        for name, url in cases.items():
            if server is not None:
                database_url = server.database()
            results[name] = measure(url, database_url)
    finally:
        hung.close()
        receiver.stop()
        if server is not None:
            server.stop()
    base = results["no endpoint"][0]
    table = []
    for name, (ipn, queued, delivered) in results.items():
        ratio = ipn["rps"] / base["rps"]
        p99 = ipn["p99_ms"] / base["p99_ms"]
        judged = name in ("receiver down", "receiver hanging")
        table += [
            (
                f"{name}: IPN req/s, p50 / p99 ms",
                f"{ipn['rps']:.0f}, {ipn['p50_ms']:.1f} / {ipn['p99_ms']:.1f}",
                "",
                "",
            ),
            (
                f"{name}: req/s / no endpoint's",
                f"{ratio:.2f}",
                ">= 0.8" if judged else "",
                verdict(ratio, 0.8) if judged else "",
            ),
            (
                f"{name}: p99 / no endpoint's",
                f"{p99:.2f}",
                "<= 1.25" if judged else "",
                verdict(p99, 1.25, False) if judged else "",
            ),
            (
                f"{name}: non-2xx; events queued / delivered",
                f"{ipn['non_2xx']}; {queued} / {delivered}",
                "",
                "",
            ),
        ]
    report(f"Webhooks: IPNs, {CONNECTIONS} connections, {SECONDS} s, gunicorn 2x8", table)


if __name__ == "__main__":
    main()
