"""Growth: the same shop at 1,000 and at 1,000,000 orders, page by page, in one run.

    python -m bench.growth [--large N] [--small N] [--engine sqlite|postgresql|both]

For each engine, two shops side by side (gunicorn, 2 workers x 8 threads, one sandbox
exchanger): a small one and a large one. Each starts from a few real orders, placed through
the shop's checkout at the sandbox and moved there to each status (the sandbox's IPNs reach
the shop), which the data builder then multiplies in SQL to the size asked: about 3 status
history lines and 2 IPN log lines per order, a realistic mix of states, a year of dates.

Measured over HTTP, the median of 5 after a warm-up, small and large alternately: the
console's order list (plain, by state, by dates, an old page), its searches (token,
exchanger uid, e-mail), the IPN log (all, rejected, an old page), an order's page, the
buyer's return page and status JSON, one IPN applied, the CSV export (first byte, total,
worker memory growth), and `flask reconcile` twice in a row against the sandbox.

Goals (issue 13): every page and IPN at most 3x the small shop's time and under 100 ms at the
large size; CSV first byte under 1 s and worker memory growth under 50 MB; reconcile time
proportional to the orders due for a poll, not to all orders. The table is printed and written
as JSON to bench/results/.

Honest limits: the copies of an open order share its exchanger uid and secret, so the sandbox
answers their polls with the status they have (a real order/get round trip, 'unchanged');
SQLite gets no ANALYZE (nothing in the shop runs one) while PostgreSQL gets VACUUM (ANALYZE)
(autovacuum would, after such a load).
"""

import argparse
import hashlib
import html
import json
import re
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import requests
from werkzeug.security import generate_password_hash

from bench.common import (
    GUNICORN_SHOP,
    PAYOUT,
    ROOT,
    Server,
    console_session,
    reset_peak_memory,
    sandbox_server,
    scratch,
    shop_env,
    store_config,
    worker_memory,
)
from tests.helpers import buy_over_http

SMALL, LARGE = 1_000, 1_000_000
REPEATS = 5
PASSWORD = "growth-bench-console-password"  # noqa: S105 - a throwaway shop's
RESULTS = ROOT / "bench" / "results"
YEAR = 365 * 24 * 3600
DAY = 24 * 3600
# The age of the old page, as a share of the whole list (0.8: four fifths of the way back).
OLD_PAGE_DEPTH = 0.8
# A chunk of orders built per statement: small enough for one transaction's journal.
CHUNK = 100_000

# -- the data set ----------------------------------------------------------------------------

# Per 1,000 orders (by n * 7919 % 1000, so that any run of orders has every kind): (first, last, exchanger status, in review). The template
# order of each status is real: placed through the shop, moved to it at the sandbox.
MIX = (
    (0, 814, "done", False),
    (815, 819, "done", True),  # paid, but a person must look (0.5 %)
    (820, 899, "deleted", False),  # expired or cancelled unpaid
    (900, 914, "create_failed", False),  # the exchanger never made it
    (915, 929, "returned", False),
    (930, 949, "done", False),
    # 5 % still open: waiting for payment, stuck in an error, held, being paid out.
    (950, 969, "waitPayment", False),
    (970, 979, "errorPayment", False),
    (980, 989, "inProgress", False),
    (990, 994, "hold", False),
    (995, 999, "errorPayout", False),
)
OPEN_STATUSES = ("waitPayment", "errorPayment", "inProgress", "hold", "errorPayout")
# Open orders' ages (by n % 50): one in 50 younger than an hour, two within a day, the rest
# stuck for days to months, as a shop's backlog of unfinished orders grows.
OPEN_AGES = [300, 3 * 3600, 12 * 3600] + [int(2 * DAY * (150 ** (step / 46))) for step in range(47)]
YOUNGER_THAN_A_DAY = sum(age < DAY for age in OPEN_AGES)


def stamp_sql(engine, seconds_ago):
    """SQL for the ISO time (as shop.db.now writes it) that many seconds before :now_epoch."""
    if engine == "postgresql":
        return (
            f"to_char(to_timestamp(:now_epoch - ({seconds_ago})) AT TIME ZONE 'UTC',"
            ' \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\')'
        )
    return f"strftime('%Y-%m-%dT%H:%M:%S+00:00', :now_epoch - ({seconds_ago}), 'unixepoch')"


def build_orders(config, engine, size):
    """The shop's database grown to `size` orders from the real ones it holds, in SQL."""
    from shop.db import execute, make_engine, query, scalar, transaction

    sql_engine = make_engine(config)
    with sql_engine.connect() as db:
        templates = {row["status"]: row for row in query(db, "SELECT * FROM orders ORDER BY id")}
        missing = set(OPEN_STATUSES + ("done", "deleted", "returned")) - set(templates)
        if missing:
            raise RuntimeError(f"no real template order in status {sorted(missing)}")
        ipn_sample = query(
            db, "SELECT * FROM ipn_log WHERE outcome = 'applied' ORDER BY id LIMIT 1"
        )
        if not ipn_sample:
            raise RuntimeError("no IPN from the sandbox reached the shop")
        ipn_sample = ipn_sample[0]
        base = scalar(db, "SELECT MAX(id) FROM orders")
        copies = size - len(templates)
        with transaction(db):
            make_helper_tables(db, engine, copies, templates)
        params = {
            "now_epoch": int(time.time()),
            "total": copies,
            "span": YEAR,
            "base": base,
            "uid_base": 50_000_000,
            "buyers": max(copies // 3, 1),
        }
        columns = [c for c in table_columns(db, "orders") if c != "id"]
        age = "CASE WHEN k.open = 1 THEN a.seconds ELSE (:total - g.n) * :span / :total + 60 END"
        copied = copy_expressions(engine, age)
        for first in range(1, copies + 1, CHUNK):
            chunk = {**params, "first": first, "last": min(first + CHUNK - 1, copies)}
            with transaction(db):
                execute(db, insert_orders_sql(columns, copied), chunk)
                execute(db, insert_items_sql(), chunk)
                execute(db, insert_history_sql(engine, age), chunk)
                execute(
                    db,
                    insert_ipn_log_sql(engine, age),
                    {**chunk, **{f"ipn_{k}": ipn_sample[k] for k in IPN_COPIED}},
                )
        with transaction(db):
            fill_derived_tables(db, engine)
            for table in HELPER_TABLES:
                execute(db, f"DROP TABLE {table}")
        total = scalar(db, "SELECT COUNT(*) FROM orders")
        db.commit()
    if engine == "postgresql":
        # What autovacuum does after a bulk load, before the shop has run long: statistics,
        # and the visibility map that lets a count be answered from an index alone.
        with sql_engine.connect() as db:
            db.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM (ANALYZE)")
    sql_engine.dispose()
    return total


HELPER_TABLES = ("bench_numbers", "bench_kinds", "bench_ages", "bench_items", "bench_steps")
IPN_COPIED = ("remote_addr", "content_type", "body", "headers", "checksum_field")


def table_columns(db, table):
    from sqlalchemy import inspect

    return [column["name"] for column in inspect(db).get_columns(table)]


def make_helper_tables(db, engine, copies, templates):
    """Numbers 1..copies, the status mix with its template orders, open ages, history steps."""
    from shop.db import execute

    big = "BIGINT" if engine == "postgresql" else "INTEGER"
    execute(db, f"CREATE TABLE bench_numbers (n {big} PRIMARY KEY)")
    if engine == "postgresql":
        execute(db, "INSERT INTO bench_numbers SELECT generate_series(1, :n)", {"n": copies})
    else:
        execute(
            db,
            "INSERT INTO bench_numbers WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL"
            " SELECT n + 1 FROM c WHERE n < :n) SELECT n FROM c",
            {"n": copies},
        )
    execute(
        db,
        "CREATE TABLE bench_kinds (lo INTEGER, hi INTEGER, template_id INTEGER,"
        " status TEXT, review_reason TEXT, open INTEGER, known INTEGER)",
    )
    execute(
        db,
        "INSERT INTO bench_kinds VALUES (:lo, :hi, :template_id, :status, :review, :open, :known)",
        [
            {
                "lo": lo,
                "hi": hi,
                # An order the exchanger never made is a copy of a done one, without its ids.
                "template_id": templates["done" if status == "create_failed" else status]["id"],
                "status": status,
                "review": "done without a reported out amount" if review else None,
                "open": int(status in OPEN_STATUSES),
                "known": int(status != "create_failed"),
            }
            for lo, hi, status, review in MIX
        ],
    )
    execute(db, "CREATE TABLE bench_ages (k INTEGER PRIMARY KEY, seconds INTEGER)")
    execute(
        db,
        "INSERT INTO bench_ages VALUES (:k, :seconds)",
        [{"k": k, "seconds": seconds} for k, seconds in enumerate(OPEN_AGES)],
    )
    # The real orders' items, apart: a join on order_items itself would scan every copy made.
    execute(db, "CREATE TABLE bench_items AS SELECT * FROM order_items")
    execute(db, "CREATE INDEX bench_items_by_order ON bench_items (order_id)")
    execute(db, "CREATE TABLE bench_steps (step INTEGER PRIMARY KEY)")
    execute(db, "INSERT INTO bench_steps VALUES (:step)", [{"step": s} for s in (1, 2, 3)])


# Every chunk's rows: the numbers, each with its kind (status mix), its template and age.
FROM_NUMBERS = (
    " FROM bench_numbers g"
    " JOIN bench_kinds k ON (g.n * 7919) % 1000 BETWEEN k.lo AND k.hi"
    " JOIN bench_ages a ON a.k = g.n % 50"
    " WHERE g.n BETWEEN :first AND :last"
)


def copy_expressions(engine, age):
    """SQL per orders column for a copy; a column not named here is the template's value.

    So columns added by later migrations (a poll schedule, say) are copied from the real order
    of the same status, as the shop itself wrote them; fill_derived_tables fixes up the rest.
    """
    n = "CAST(g.n AS TEXT)"
    stamp = stamp_sql(engine, age)
    return {
        "token": f"'g' || {n} || '-' || t.token",
        "checkout_key": f"'g' || {n} || '-' || t.checkout_key",
        "created_at": stamp,
        "updated_at": stamp,
        "buyer_email": (
            "'buyer' || CAST(g.n % :buyers AS TEXT) || CASE g.n % 4"
            " WHEN 0 THEN '@example.com' WHEN 1 THEN '@mail.example.org'"
            " WHEN 2 THEN '@post.example.net' ELSE '@shop.example' END"
        ),
        "status": "k.status",
        "review_reason": "k.review_reason",
        "exchanger_id": f"CASE WHEN k.known = 1 THEN 'g' || {n} || 'x' || t.exchanger_id END",
        # Open copies keep the real order's uid and secret: the sandbox answers their polls.
        "exchanger_uid": (
            "CASE WHEN k.known = 0 THEN NULL WHEN k.open = 1 THEN t.exchanger_uid"
            " ELSE :uid_base + g.n END"
        ),
        "exchanger_rid": "CASE WHEN k.known = 1 THEN t.exchanger_rid END",
        "exchanger_secret": "CASE WHEN k.known = 1 THEN t.exchanger_secret END",
        "create_error": "CASE WHEN k.known = 0 THEN 'the exchanger refused the amount' END",
        "last_polled_at": "NULL",
        "finished_at": f"CASE WHEN k.open = 0 THEN {stamp_sql(engine, age + ' - 600')} END",
        "settle_checks": "CASE WHEN k.open = 0 THEN 3 ELSE 0 END",
        "settle_check_at": "NULL",
    }


def insert_orders_sql(columns, copied):
    values = ", ".join(copied.get(column, f"t.{column}") for column in columns)
    return (
        f"INSERT INTO orders (id, {', '.join(columns)}) SELECT :base + g.n, {values}"
        f"{FROM_NUMBERS.replace(' WHERE', ' JOIN orders t ON t.id = k.template_id WHERE')}"
        " ORDER BY g.n"
    )


def insert_items_sql():
    return (
        "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)"
        " SELECT :base + g.n, i.product_id, i.name, i.unit_price, i.quantity"
        f"{FROM_NUMBERS.replace(' WHERE', ' JOIN bench_items i ON i.order_id = k.template_id WHERE')}"
    )


def insert_history_sql(engine, age):
    """Three lines per order: checkout's draft, the exchanger's 'new', then its status."""
    return (
        "INSERT INTO status_history (order_id, old_status, new_status, source, provider_ts,"
        " note, created_at)"
        " SELECT :base + g.n,"
        " CASE s.step WHEN 1 THEN NULL WHEN 2 THEN 'draft' ELSE 'new' END,"
        " CASE WHEN s.step = 1 THEN 'draft' WHEN k.known = 0 THEN 'create_failed'"
        "  WHEN s.step = 2 THEN 'new' ELSE k.status END,"
        " CASE s.step WHEN 1 THEN 'checkout' WHEN 2 THEN 'create' ELSE 'ipn' END,"
        " NULL, NULL,"
        f" {stamp_sql(engine, age + ' + 300 - 100 * s.step')}"
        f"{FROM_NUMBERS.replace(' WHERE', ' CROSS JOIN bench_steps s WHERE')}"
        " AND (k.known = 1 OR s.step < 3)"
        " ORDER BY g.n, s.step"
    )


def insert_ipn_log_sql(engine, age):
    """Two lines per order: its status applied, then a repeat: a duplicate for one in five,
    and for one order in 2,000 a rejected one (a forged or misconfigured sender: rare)."""
    return (
        "INSERT INTO ipn_log (received_at, remote_addr, content_type, body, order_id, outcome,"
        " reason, headers, checksum_field)"
        f" SELECT {stamp_sql(engine, age + ' + 200 - 100 * s.step')},"
        " :ipn_remote_addr, :ipn_content_type, :ipn_body,"
        " CASE WHEN s.step = 2 AND g.n % 2000 = 0 THEN NULL ELSE :base + g.n END,"
        " CASE WHEN s.step = 1 THEN 'applied' WHEN g.n % 2000 = 0 THEN 'rejected'"
        "  WHEN g.n % 5 = 0 THEN 'duplicate' ELSE 'applied' END,"
        " CASE WHEN s.step = 2 AND g.n % 2000 = 0 THEN 'checksum does not match' END,"
        " :ipn_headers, :ipn_checksum_field"
        f"{FROM_NUMBERS.replace(' WHERE', ' CROSS JOIN bench_steps s WHERE')}"
        " AND s.step < 3 AND k.known = 1"
        " ORDER BY g.n, s.step"
    )


def fill_derived_tables(db, engine):
    """What the shop keeps beside its orders, made true for the orders the builder inserted.

    The ONE place to adapt when a migration adds state derived from the orders:
    - order_counts (counters per state, migration 0003): its triggers count every inserted
      order already; rebuilt with one GROUP BY anyway, so a build can never measure drifted
      counters;
    - columns of orders added later (a poll schedule such as next_poll_at) were copied from
      the real order of the same status by copy_expressions: every open copy is due as that
      order was, as on the first run after a migration, and reconcile's first run sets its
      schedule; the second run measures the steady state;
    - PostgreSQL's id sequence, moved past the ids given explicitly.
    """
    from shop.db import execute

    tables = table_names(db)
    if "order_counts" in tables:
        rebuild_counts(db, table_columns(db, "order_counts"), table_columns(db, "orders"))
    if engine == "postgresql":
        execute(db, "SELECT setval(pg_get_serial_sequence('orders', 'id'), MAX(id)) FROM orders")


def table_names(db):
    from sqlalchemy import inspect

    return set(inspect(db).get_table_names())


def rebuild_counts(db, count_columns, order_columns):
    from shop.db import execute

    keys = [c for c in count_columns if c in order_columns or c == "review"]
    rest = [c for c in count_columns if c not in keys]
    if len(rest) != 1:
        print(f"  ! order_counts has columns {count_columns}: adapt fill_derived_tables")
        return
    grouped = [
        "CASE WHEN review_reason IS NULL THEN 0 ELSE 1 END" if c == "review" else c for c in keys
    ]
    execute(db, "DELETE FROM order_counts")
    execute(
        db,
        f"INSERT INTO order_counts ({', '.join(keys + rest)})"  # noqa: S608 - names from the schema
        f" SELECT {', '.join(grouped)}, COUNT(*) FROM orders GROUP BY {', '.join(grouped)}",
    )


# -- one shop, grown ------------------------------------------------------------------------


class GrownShop:
    """A shop on gunicorn with `size` orders, its console session and sample orders to ask for."""

    def __init__(self, folder, engine, size, sandbox, database_url=None):
        folder.mkdir()
        self.folder, self.engine, self.size = folder, engine, size
        self.config = store_config(folder / "shop.sqlite", database_url)
        env = shop_env(
            folder,
            sandbox.url,
            database_url,
            CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
        )
        self.server = Server("app:create_app()", env, **GUNICORN_SHOP)
        self.sandbox_url = sandbox.url
        started = time.monotonic()
        self.make_templates()
        self.orders = build_orders(self.config, engine, size)
        self.build_seconds = time.monotonic() - started
        self.console = console_session(self.server.url, PASSWORD)
        self.samples = self.pick_samples()

    def make_templates(self):
        """A real order per status: checkout at the sandbox, moved there, its IPN applied here."""
        statuses = sorted({status for *_, status, _ in MIX if status != "create_failed"})
        for _ in statuses:
            answer = buy_over_http(requests.Session(), self.server.url, follow=False)
            if answer.status_code not in (302, 303):
                raise RuntimeError(f"checkout answered {answer.status_code}")
        placed = self.rows("SELECT id, exchanger_uid FROM orders ORDER BY id")
        control = f"{self.sandbox_url}/service/api/v1/sandbox/order/set-status"
        for order, status in zip(placed, statuses, strict=True):
            if status != "waitPayment":
                body = {"orderUID": order["exchanger_uid"], "status": status}
                requests.post(control, json=body, timeout=30).raise_for_status()
        moved = len(statuses) - 1
        end = time.monotonic() + 60
        while time.monotonic() < end:
            rows = self.rows("SELECT status FROM orders")
            if sum(row["status"] != "waitPayment" for row in rows) >= moved:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the sandbox's IPNs did not reach the shop in 60 s")
        # Each template row's status is the sandbox's now: build_orders finds them by it.
        for order, status in zip(placed, statuses, strict=True):
            self.rows("UPDATE orders SET status = ? WHERE id = ?", status, order["id"])

    def rows(self, sql, *args):
        from tests.helpers import query

        return query(
            self.config if self.engine == "postgresql" else self.config["DATABASE"], sql, *args
        )

    def pick_samples(self):
        """Orders to look up: a paid one deep in the list, open ones for IPNs, list depths."""
        done = self.rows(
            "SELECT * FROM orders WHERE status = 'done' AND review_reason IS NULL"
            " AND exchanger_uid IS NOT NULL ORDER BY id LIMIT 1 OFFSET ?",
            self.orders // 2,
        )
        if not done:  # a tiny shop: any paid order
            done = self.rows("SELECT * FROM orders WHERE status = 'done' ORDER BY id LIMIT 1")
        waiting = self.rows(
            "SELECT * FROM orders WHERE status = 'waitPayment' ORDER BY id DESC LIMIT ?",
            REPEATS + 1,
        )
        ids = self.rows("SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM orders")[0]
        ipns = self.rows("SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM ipn_log")[0]
        created = datetime.fromisoformat(done[0]["created_at"])
        open_young = self.rows(
            "SELECT COUNT(*) AS n FROM orders WHERE status IN (?, ?, ?, ?, ?) AND created_at > ?",
            *OPEN_STATUSES,
            datetime.fromtimestamp(time.time() - DAY, UTC).isoformat(timespec="seconds"),
        )[0]["n"]
        open_orders = self.rows(
            "SELECT COUNT(*) AS n FROM orders WHERE status IN (?, ?, ?, ?, ?)", *OPEN_STATUSES
        )[0]["n"]
        return {
            "done": done[0],
            "waiting": waiting,
            "month": (created.replace(day=1).date(), created.replace(day=28).date()),
            "old_order_id": ids["hi"] - int((ids["hi"] - ids["lo"]) * OLD_PAGE_DEPTH),
            "old_order_page": int(ids["n"] * OLD_PAGE_DEPTH) // 50 + 1,
            "old_ipn_id": ipns["hi"] - int((ipns["hi"] - ipns["lo"]) * OLD_PAGE_DEPTH),
            "old_ipn_page": int(ipns["n"] * OLD_PAGE_DEPTH) // 50 + 1,
            "open_young": open_young,
            "open_orders": open_orders,
        }

    def stop(self):
        self.server.stop()


# -- what is measured: the URLs in one place ------------------------------------------------


def old_page_url(session, list_url, target_id, page):
    """The list's page far back: its "Older" link with the id of an old row (keyset paging),
    or ?page=N when the link carries a page number (OFFSET paging)."""
    text = session.get(list_url, timeout=60).text
    link = re.search(r'<a[^>]+href="([^"]+)"[^>]*>\s*Older', text)
    if link is None:
        raise RuntimeError(f"no Older link on {list_url}")
    href = html.unescape(link.group(1))
    if re.search(r"[?&](before|after)=\d+", href):
        href = re.sub(r"([?&](?:before|after)=)\d+", rf"\g<1>{target_id}", href)
    else:
        href = re.sub(r"([?&]page=)\d+", rf"\g<1>{page}", href)
    return href if href.startswith("http") else list_url.split("/console")[0] + href


def page_urls(shop):
    """(key, what, URL, who asks) of every page measured; the console pages need the login.

    After a change of the console's URLs (a search kind, keyset links), adapt them here.
    """
    base, s = shop.server.url, shop.samples
    done = s["done"]
    month = {"date_from": s["month"][0].isoformat(), "date_to": s["month"][1].isoformat()}
    console = f"{base}/console/"
    return [
        ("list", "console orders, no filter", console, "console"),
        (
            "list_state",
            "console orders, state processing",
            console + "?state=processing",
            "console",
        ),
        ("list_dates", "console orders, one month", console + "?" + urlencode(month), "console"),
        (
            "list_old",
            f"console orders, a page {OLD_PAGE_DEPTH:.0%} back",
            old_page_url(shop.console, console, s["old_order_id"], s["old_order_page"]),
            "console",
        ),
        (
            "search_token",
            "search by token",
            console + "?" + urlencode({"q": done["token"]}),
            "console",
        ),
        (
            "search_uid",
            "search by exchanger uid",
            console + "?" + urlencode({"q": str(done["exchanger_uid"])}),
            "console",
        ),
        (
            "search_email",
            "search by e-mail",
            console + "?" + urlencode({"q": done["buyer_email"]}),
            "console",
        ),
        ("ipn_log", "IPN log", f"{base}/console/ipn", "console"),
        ("ipn_rejected", "IPN log, rejected", f"{base}/console/ipn?outcome=rejected", "console"),
        (
            "ipn_old",
            f"IPN log, a page {OLD_PAGE_DEPTH:.0%} back",
            old_page_url(shop.console, f"{base}/console/ipn", s["old_ipn_id"], s["old_ipn_page"]),
            "console",
        ),
        ("order_page", "console order page", f"{base}/console/orders/{done['token']}", "console"),
        ("return_page", "buyer's return page", f"{base}/orders/{done['token']}/return", "buyer"),
        ("status_json", "buyer's status JSON", f"{base}/orders/{done['token']}/status", "buyer"),
    ]


def timed_get(session, url):
    started = time.perf_counter()
    answer = session.get(url, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {answer.status_code}")
    return elapsed


def median_ms(measure):
    """The median of REPEATS calls after one warm-up; None when a call failed."""
    try:
        measure()
        return statistics.median(measure() for _ in range(REPEATS))
    except (requests.RequestException, RuntimeError) as exc:
        print(f"  ! {exc}")
        return None


def signed_ipn(order, status="inProgress"):
    """An IPN as the exchanger sends it, signed with the order's own ipnSecret."""
    fields = {
        "orderUID": str(order["exchanger_uid"]),
        "orderId": order["exchanger_id"],
        "newStatus": status,
        "inAmount": str(order["quoted_in"]),
        "outAmount": str(order["quoted_out"]),
        "xml_from": order["from_xml"],
        "xml_to": order["to_xml"],
        "timestamp": str(int(time.time() * 1000)),
    }
    signed = ":".join(fields[k] for k in list(fields)[1:]) + ":" + order["ipn_secret"]
    fields["hash"] = hashlib.sha256(signed.encode()).hexdigest()
    return urlencode(fields)


# An IPN's new status for each call to the same order in turn: every call changes it.
IPN_STEPS = ("inProgress", "inProgressPayout", "errorPayout", "hold", "inProgress", "errorPayout")


def ipn_ms(shop):
    """One IPN applied, to another order waiting for payment each time (when there are
    enough; else the next step of the same order's); median of REPEATS."""
    waiting = shop.samples["waiting"]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    calls = iter(range(REPEATS + 1))

    def one():
        call = next(calls)
        order = waiting[call % len(waiting)]
        body = signed_ipn(order, IPN_STEPS[call // len(waiting)])
        started = time.perf_counter()
        answer = requests.post(f"{shop.server.url}/ipn", data=body, headers=headers, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"IPN answered {answer.status_code}: {answer.text[:200]}")
        return elapsed

    return median_ms(one)


def csv_figures(shop):
    """The CSV export of every order: first byte and total (median), worker memory growth."""
    url = f"{shop.server.url}/console/orders.csv"
    reset_peak_memory(shop.server)
    before = worker_memory(shop.server)
    firsts, totals, sizes = [], [], []
    try:
        for _ in range(REPEATS + 1):
            started = time.perf_counter()
            with shop.console.get(url, stream=True, timeout=300) as answer:
                if answer.status_code != 200:
                    raise RuntimeError(f"CSV answered {answer.status_code}")
                chunks = answer.iter_content(65536)
                size = len(next(chunks, b""))
                firsts.append((time.perf_counter() - started) * 1000)
                size += sum(len(chunk) for chunk in chunks)
            totals.append((time.perf_counter() - started) * 1000)
            sizes.append(size)
    except (requests.RequestException, RuntimeError) as exc:
        # Past gunicorn's --timeout the worker is killed mid-answer: the export failed.
        print(f"  ! CSV: {exc}")
        failed = dict.fromkeys(("csv_first_byte", "csv_total", "csv_memory", "csv_bytes"))
        return {**failed, "csv_error": str(exc)[:300]}
    after = worker_memory(shop.server)
    # Peak growth: how far above its resident size before the exports a worker's peak went.
    growth = [after[pid][1] - before[pid][0] for pid in after if pid in before]
    return {
        "csv_first_byte": statistics.median(firsts[1:]),
        "csv_total": statistics.median(totals[1:]),
        "csv_memory": max(growth) if growth else None,
        "csv_bytes": sizes[-1],
    }


def reconcile_figures(shop):
    """`flask reconcile` twice in a row, in this process: seconds and orders asked each time.

    The first run asks whatever the shop thinks is due (all open orders on a fresh data set);
    the second, right after, is the steady state: only orders due again so soon.
    """
    from app import create_app

    app = create_app(
        {
            **shop.config,
            "SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
            "EXCHANGER_URL": shop.sandbox_url,
            "PUBLIC_URL": shop.server.url,
            "PAYOUT_VALUES": PAYOUT,
        }
    )
    figures = {}
    for run in ("first", "next"):
        started = time.perf_counter()
        result = app.test_cli_runner().invoke(args=["reconcile"])
        seconds = time.perf_counter() - started
        checked = re.search(r"Checked (\d+) orders", result.output)
        if result.exception and not isinstance(result.exception, SystemExit):
            print(f"  ! reconcile: {result.exception!r}")
        print(f"  reconcile {run} run: {seconds:.1f} s, {result.output.strip()[:200]}")
        asked = int(checked.group(1)) if checked else None
        figures[f"reconcile_{run}"] = seconds
        figures[f"reconcile_{run}_asked"] = asked
        figures[f"reconcile_{run}_per_order"] = seconds * 1000 / asked if asked else None
    return figures


# -- the table ------------------------------------------------------------------------------

# (key, what, unit, goal): 'page' is 3x and < 100 ms at the large size.
ROWS = [
    *(
        (key, what, "ms", "page")
        for key, what in (
            ("list", "console orders, no filter"),
            ("list_state", "console orders, state processing"),
            ("list_dates", "console orders, one month"),
            ("list_old", "console orders, a page 80% back"),
            ("search_token", "search by token"),
            ("search_uid", "search by exchanger uid"),
            ("search_email", "search by e-mail"),
            ("ipn_log", "IPN log"),
            ("ipn_rejected", "IPN log, rejected"),
            ("ipn_old", "IPN log, a page 80% back"),
            ("order_page", "console order page"),
            ("return_page", "buyer's return page"),
            ("status_json", "buyer's status JSON"),
            ("ipn", "one IPN applied"),
        )
    ),
    ("csv_first_byte", "CSV of all orders, first byte", "ms", "< 1000 at large"),
    ("csv_total", "CSV of all orders, total", "ms", ""),
    ("csv_bytes", "CSV of all orders, size", "bytes", ""),
    ("csv_memory", "CSV, worker peak memory growth", "MB", "< 50 at large"),
    ("reconcile_first", "reconcile, first run", "s", ""),
    ("reconcile_first_asked", "reconcile, first run, orders asked", "orders", ""),
    ("reconcile_first_per_order", "reconcile, first run, per order asked", "ms", ""),
    ("reconcile_next", "reconcile, next run right after", "s", ""),
    ("reconcile_next_asked", "reconcile, next run, orders asked", "orders", "due"),
    ("reconcile_next_per_order", "reconcile, next run, per order asked", "ms", "<= 3x"),
    ("open_orders", "open orders (not final)", "orders", ""),
    ("open_young", "open orders younger than a day", "orders", ""),
]


def judge(goal, small, large, young_large):
    """MET / MISSED for one row, '' when it has no goal, 'n/a' when a figure is missing."""
    if not goal:
        return ""
    if goal == "due":
        # Asked again at once: at most the orders young enough to be polled every run.
        return "n/a" if large is None else ("MET" if large <= young_large else "MISSED")
    if large is None:
        return "MISSED" if goal != "<= 3x" else "MET"  # nothing asked: nothing to be slow
    if goal == "page":
        return "MET" if small and large < 100 and large / small <= 3 else "MISSED"
    if goal == "<= 3x":
        return "MET" if small is None or large / small <= 3 else "MISSED"
    limit = float(goal.split()[1])
    return "MET" if large < limit else "MISSED"


def goal_text(goal, young_large):
    return {
        "page": "<= 3x, < 100 ms",
        "due": f"<= {young_large:,} (young open)",
        "<= 3x": "<= 3x",
    }.get(goal, goal)


def table(engine, small, large):
    rows = []
    young = large.get("open_young") or 0
    for key, what, unit, goal in ROWS:
        s, big = small.get(key), large.get(key)
        ratio = big / s if s and big is not None else None
        rows.append(
            {
                "key": key,
                "what": what,
                "unit": unit,
                "small": s,
                "large": big,
                "ratio": ratio,
                "goal": goal_text(goal, young),
                "result": judge(goal, s, big, young),
            }
        )
    return rows


def number(value):
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def print_table(engine, sizes, rows):
    print(f"\n== Growth, {engine}: {sizes[0]:,} vs {sizes[1]:,} orders (median of {REPEATS})")
    print(f"  {'what':<40} {'unit':>6} {'small':>10} {'large':>10} {'ratio':>7}  goal")
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.1f}"
        print(
            f"  {row['what']:<40} {row['unit']:>6} {number(row['small']):>10}"
            f" {number(row['large']):>10} {ratio:>7}  {row['goal']:<24} {row['result']}"
        )


# -- the run --------------------------------------------------------------------------------


def measure_pair(shops):
    """Every figure of both shops, each measure small then large, so load hits both alike."""
    figures = [{"orders": shop.orders, "build_seconds": shop.build_seconds} for shop in shops]
    urls = [page_urls(shop) for shop in shops]
    for index, (key, *_rest) in enumerate(urls[0]):
        for shop, found, pages in zip(shops, figures, urls, strict=True):
            _, _, url, who = pages[index]
            session = shop.console if who == "console" else requests.Session()
            found[key] = median_ms(lambda session=session, url=url: timed_get(session, url))
        print(f"  {key}: {' / '.join(number(found[key]) for found in figures)} ms", flush=True)
    for shop, found in zip(shops, figures, strict=True):
        found["ipn"] = ipn_ms(shop)
        found["open_young"] = shop.samples["open_young"]
        found["open_orders"] = shop.samples["open_orders"]
    for shop, found in zip(shops, figures, strict=True):
        found.update(csv_figures(shop))
    # Last: reconcile changes orders (old ones may go to review).
    for shop, found in zip(shops, figures, strict=True):
        found.update(reconcile_figures(shop))
    return figures


def run_engine(engine, sizes, database_urls):
    with scratch() as folder:
        sandbox = sandbox_server(folder, threads=32)
        shops = []
        try:
            for name, size, url in zip(("small", "large"), sizes, database_urls, strict=True):
                print(f"  building the {name} shop ({size:,} orders, {engine})...", flush=True)
                shops.append(GrownShop(folder / name, engine, size, sandbox, url))
                print(f"  built in {shops[-1].build_seconds:.0f} s", flush=True)
            small, large = measure_pair(shops)
        finally:
            for shop in shops:
                shop.stop()
            sandbox.stop()
    rows = table(engine, small, large)
    print_table(engine, sizes, rows)
    return {
        "engine": engine,
        "sizes": list(sizes),
        "small": small,
        "large": large,
        "rows": rows,
    }


def markdown(results):
    """The README's table from a results file: each engine's small, large, ratio and result."""
    runs = results["runs"]
    head = "| what | " + " | ".join(
        f"{run['engine']} {run['sizes'][0]:,} | {run['sizes'][1]:,} | ratio | result"
        for run in runs
    )
    lines = [head + " | goal |", "|---" * (2 + 4 * len(runs)) + "|"]
    for index, row in enumerate(runs[0]["rows"]):
        cells = [f"{row['what']} ({row['unit']})"]
        for run in runs:
            theirs = run["rows"][index]
            ratio = "-" if theirs["ratio"] is None else f"{theirs['ratio']:.1f}"
            result = f"**{theirs['result']}**" if theirs["result"] == "MISSED" else theirs["result"]
            cells += [number(theirs["small"]), number(theirs["large"]), ratio, result]
        lines.append("| " + " | ".join(cells + [row["goal"]]) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=SMALL, help="orders in the small shop")
    parser.add_argument("--large", type=int, default=LARGE, help="orders in the large shop")
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", type=Path, help="where to write the results (bench/results/)")
    parser.add_argument(
        "--markdown", type=Path, help="print a results file as a Markdown table, and stop"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return None
    # A kill ends the run through its finally blocks: the servers it started stop with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if min(args.small, args.large) < 100:
        parser.error("a shop needs at least 100 orders")
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    results = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "runs": []}
    sizes = (args.small, args.large)
    for engine in engines:
        if engine == "postgresql":
            from tests.postgres import PostgresServer

            server = PostgresServer(durable=True)
            try:
                urls = (server.database(), server.database())
                results["runs"].append(run_engine(engine, sizes, urls))
            finally:
                server.stop()
        else:
            results["runs"].append(run_engine(engine, sizes, (None, None)))
    target = args.json or RESULTS / f"growth-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten to {target}")
    return results


if __name__ == "__main__":
    main()
