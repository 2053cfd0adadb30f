"""The console's dashboard as the shop's history grows: 1,000 orders, then 200,000, on both engines.

    python -m bench.dashboard [--orders 200000] [--engine sqlite|postgresql|both]

Both shops hold the same 1,000 orders in the last 30 days; the large one adds a history before
them (two years of orders). Figure: the dashboard page (all its queries and its charts), the
median of 5 after a warm-up, in-process through the Flask test client. Goal: the large shop's
page within 1.5x of the small one's, since every query reads only its period's index range
(migration 0005). A third shop, "busy", spreads the large count over one year (about 16,000
orders in the period): what the page costs when the period itself is large, reported as is.
"""

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from werkzeug.security import generate_password_hash

from bench.common import report, scratch, verdict
from shop.db import engine, execute, is_postgresql, transaction
from tests.helpers import create_shop

RECENT = 1_000
PASSWORD = "bench console password"  # noqa: S105 - a throwaway shop's
ROUTES = ("BTC", "ETH", "LTC", "XMR", "CARDUSD")
BATCH = 20_000
ROUNDS = 7


def order(i, created, recent):
    """Order number i, created then: mostly paid 10 minutes later, a few of every other kind."""
    kind = i % 20
    status = {14: "done", 15: "errorPayment", 16: "errorPayment", 17: "returned"}.get(kind)
    status = status or ("deleted" if kind == 18 else "waitPayment" if kind == 19 else "done")
    finished = created + timedelta(minutes=10 + i % 50) if status != "waitPayment" else None
    return {
        "token": f"bench-{i}",
        "key": f"bench-key-{i}",
        "created": created.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds") if finished else None,
        "price": f"{i % 97 + 1}.{i % 100:02d}",
        "from_xml": ROUTES[i % len(ROUTES)],
        "status": status,
        # A merchant settles reviews: of the older ones, one in a thousand is still open.
        "review": "underpaid" if kind == 14 and (recent or i % 1000 == 14) else None,
    }


def fill(app, total, recent, history_days):
    """`recent` orders over the last 30 days, the rest spread over history_days before them."""
    now = datetime.now(UTC).replace(microsecond=0)
    recent_step = timedelta(days=29) / recent
    old = total - recent
    old_step = timedelta(days=history_days) / max(old, 1)
    with app.app_context():
        db = engine().connect()
        rows = []
        for i in range(total):
            if i < recent:
                created = now - recent_step * (i + 1)
            else:
                created = now - timedelta(days=31) - old_step * (i - recent)
            rows.append(order(i, created, i < recent))
            if len(rows) == BATCH or i == total - 1:
                with transaction(db):
                    execute(
                        db,
                        "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang,"
                        " currency, price, route_id, from_xml, from_name, to_xml, send_amount,"
                        " requisites, ipn_secret, status, finished_at, review_reason) VALUES"
                        " (:token, :key, :created, :created, 'en', 'USDTTRC20', :price, 'r',"
                        " :from_xml, :from_xml, 'USDTTRC20', '1', '{}', 's', :status, :finished,"
                        " :review)",
                        rows,
                    )
                rows = []
        if is_postgresql(db):
            # Statistics, as autovacuum would have gathered by then.
            execute(db, "ANALYZE orders")
        else:
            # As SQLite's own checkpoints would have: the inserts moved from the WAL to the file.
            execute(db, "PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()


def merchant(app):
    client = app.test_client()
    login = client.post("/console/login", data={"password": PASSWORD})
    assert login.status_code == 302, login.status_code
    client.get("/console/dashboard")  # warm-up
    return client


def page_ms(clients, rounds=ROUNDS):
    """{name: median ms of the dashboard}, the shops taken in turn so that the machine's other
    load falls on each of them alike."""
    times = {name: [] for name in clients}
    for _ in range(rounds):
        for name, client in clients.items():
            start = time.perf_counter()
            answer = client.get("/console/dashboard")
            times[name].append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200 and b"<svg" in answer.data
    return {name: statistics.median(found) for name, found in times.items()}


def shop(folder, name, database_url=None):
    return create_shop(
        {
            "SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
            "DATABASE": str(folder / f"{name}.sqlite"),
            "DATABASE_URL": database_url,
            "PUBLIC_URL": "http://127.0.0.1:1",
            "EXCHANGER_URL": "sandbox",
            "WTF_CSRF_ENABLED": False,
            "CONSOLE_PASSWORD_HASH": generate_password_hash(PASSWORD),
            "SANDBOX": {"BACKGROUND": False},
        }
    )


def measure(folder, engine_name, orders, postgres):
    clients = {}
    busy = orders * 30 // 365
    for name, total, recent, history in (
        ("small", RECENT, RECENT, 1),
        ("large", orders, RECENT, 730),
        ("busy", orders, busy, 335),
    ):
        url = postgres.database() if engine_name == "postgresql" else None
        app = shop(folder, f"{engine_name}-{name}", url)
        start = time.perf_counter()
        fill(app, total, recent, history)
        print(f"  {engine_name} {name}: {total:,} orders in {time.perf_counter() - start:.1f} s")
        clients[name] = merchant(app)
    figures = page_ms(clients)
    ratio = figures["large"] / figures["small"]
    return [
        (f"{engine_name}: page, {RECENT:,} orders", f"{figures['small']:.1f} ms", "", ""),
        (f"{engine_name}: page, {orders:,} orders", f"{figures['large']:.1f} ms", "", ""),
        (f"{engine_name}: large / small", f"{ratio:.2f}x", "<= 1.5x", verdict(ratio, 1.5, False)),
        (
            f"{engine_name}: busy, {busy:,} of {orders:,} in the period",
            f"{figures['busy']:.1f} ms",
            "(reported)",
            "",
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    rows, postgres = [], None
    with scratch() as folder:
        try:
            for engine_name in engines:
                if engine_name == "postgresql" and postgres is None:
                    from tests.postgres import PostgresServer

                    postgres = PostgresServer()
                rows += measure(folder, engine_name, args.orders, postgres)
        finally:
            if postgres is not None:
                postgres.stop()
    report(f"Dashboard at {RECENT:,} and {args.orders:,} orders", rows)


if __name__ == "__main__":
    main()
