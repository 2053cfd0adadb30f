"""The console at a million orders: counters that stay exact, searches and pages through
indexes, and a CSV that streams (issue 13). Sizes here are small; bench/ measures the large."""

import csv
import io
import re
import threading
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from alembic import command

from shop import console, db, orders
from tests.conftest import BOTH_ENGINES
from tests.helpers import BTC_ROUTE, hidden_inputs, place_order, query
from tests.shop.test_console import buy, post_button, sandbox_set
from tests.shop.test_ipn import fields_for

pytestmark = BOTH_ENGINES


def counters(config):
    """{(status, review): n} as the counters say, and as counting every order says."""
    kept = {
        (r["status"], r["review"]): r["n"]
        for r in query(config, "SELECT status, review, n FROM order_counts")
        if r["n"]
    }
    counted = {
        (r["status"], r["review"]): r["n"]
        for r in query(
            config,
            "SELECT status, CASE WHEN review_reason IS NULL THEN 0 ELSE 1 END AS review,"
            " COUNT(*) AS n FROM orders GROUP BY 1, 2",
        )
    }
    return kept, counted


def assert_counters_exact(config):
    kept, counted = counters(config)
    assert kept == counted


def add_orders(config, count, status="waitPayment", email="buyer@example.com", first_uid=None):
    """`count` orders made in SQL from the first real one (as bench/ builds a million)."""
    uid = "NULL" if first_uid is None else f"{first_uid - 1} + n"
    start = query(config, "SELECT COALESCE(MAX(id), 0) AS m FROM orders")[0]["m"]
    query(
        config,
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?)"  # noqa: S608 - numbers only
        " INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency, price,"
        " route_id, from_xml, from_name, to_xml, send_amount, requisites, buyer_email,"
        " ipn_secret, status, exchanger_uid)"
        " SELECT 'scale' || CAST(n + ? AS TEXT), 'key' || CAST(n + ? AS TEXT), o.created_at,"
        " o.updated_at, o.lang, o.currency, o.price, o.route_id, o.from_xml, o.from_name,"
        f" o.to_xml, o.send_amount, o.requisites, ?, o.ipn_secret, ?, {uid}"
        " FROM seq, (SELECT * FROM orders ORDER BY id LIMIT 1) AS o ORDER BY n",
        count,
        start,
        start,
        email,
        status,
    )


def tokens(page):
    return re.findall(r'data-token="([^"]+)"', page)


def link(page, name):
    found = re.search(rf'href="([^"]+)">[^<]*{name}', page)
    return found and found.group(1).replace("&amp;", "&")


# -- counters ----------------------------------------------------------------------------------


def test_the_counters_equal_a_full_count_after_every_kind_of_change(console_app, merchant):
    config = console_app.config
    first, second, third = buy(console_app, times=3)  # create: draft, then new
    assert_counters_exact(config)
    # An IPN.
    answer = console_app.test_client().post("/ipn", data=fields_for(first, "inProgress"))
    assert answer.status_code == 200
    assert_counters_exact(config)
    # A poll (the console's refresh), one that ends in review (paid out less than the price).
    sandbox_set(console_app, second["exchanger_uid"], "inProgress")
    post_button(merchant, f"/console/orders/{second['token']}/refresh")
    assert_counters_exact(config)
    underpaid = fields_for(first, "done", ts=1_800_000_000_001, out="0.01")
    console_app.test_client().post("/ipn", data=underpaid)
    assert query(config, "SELECT review_reason FROM orders WHERE id = ?", first["id"])[0][
        "review_reason"
    ]
    assert_counters_exact(config)
    # The console's cancel and resolve.
    post_button(merchant, f"/console/orders/{third['token']}/cancel")
    post_button(merchant, f"/console/orders/{first['token']}/resolve", note="topped up")
    states = {r["token"]: r for r in query(config, "SELECT * FROM orders")}
    assert states[third["token"]]["status"] == "deleted"
    assert states[first["token"]]["review_reason"] is None
    assert_counters_exact(config)
    # A creation the exchanger refuses (it asks a shop without an API key for a captcha): the
    # draft becomes create_failed.
    buyer = console_app.test_client()
    buyer.post("/cart/add", data={"csrf_token": csrf(buyer), "product_id": "mug", "quantity": 1})
    form = buyer.get(f"/checkout/{BTC_ROUTE}").get_data(as_text=True)
    console_app.extensions["exchanger"].session.post(
        f"{console_app.extensions['exchanger'].base_url}/service/api/v1/sandbox/faults",
        json={"reset": True, "captcha": "unsigned"},
        timeout=5,
    )
    failed = buyer.post(
        f"/checkout/{BTC_ROUTE}",
        data={
            **hidden_inputs(form),
            "fromValues_0": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
            "routeValues_0": "buyer@example.com",
            "agreement": "y",
        },
    )
    assert failed.status_code == 422
    statuses = [r["status"] for r in query(config, "SELECT status FROM orders ORDER BY id")]
    assert statuses[-1] == "create_failed"
    assert_counters_exact(config)
    # And the page shows them: one order failed, one cancelled, one processing, two pending.
    page = merchant.get("/console/").get_data(as_text=True)
    for state, n in (("failed", 1), ("cancelled", 1), ("processing", 1), ("pending", 0)):
        assert re.search(rf'data-state="{state}">{state} <strong>{n}<', page), state


def csrf(client):
    return hidden_inputs(client.get("/").get_data(as_text=True))["csrf_token"]


def test_the_counters_stay_exact_under_concurrent_ipns(app):
    """Threads apply opposite changes at once (hold <-> inProgress): on PostgreSQL each locks
    the same two counter rows, in one order, so none deadlocks and none is lost."""
    place_order(app.test_client())
    add_orders(app.config, 20, status="hold")
    add_orders(app.config, 20, status="inProgress")
    ids = [r["id"] for r in query(app.config, "SELECT id FROM orders WHERE id > 1 ORDER BY id")]
    start = threading.Barrier(8)
    failures = []

    def flip(mine):
        try:
            with app.app_context():
                start.wait()
                for step in range(1, 4):
                    for order_id in mine:
                        current = query(
                            app.config, "SELECT status FROM orders WHERE id = ?", order_id
                        )[0]["status"]
                        status = "inProgress" if current == "hold" else "hold"
                        event = orders.Event("ipn", status, at_ms=1_800_000_000_000 + step)
                        outcome = orders.apply_event(db.get_db(), order_id, event)
                        assert outcome == "applied", outcome
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=flip, args=(ids[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert_counters_exact(app.config)
    kept, _ = counters(app.config)
    # Each order changed three times: holds are now inProgress, and the other way round.
    assert kept[("inProgress", 0)] == 20 and kept[("hold", 0)] == 20


def test_the_migration_counts_the_orders_there_are(engine, store, request, tmp_path):
    """A shop upgraded with orders in it starts with exact counters."""
    if engine == "postgresql":
        config = {"DATABASE_URL": request.getfixturevalue("postgres").database()}
    else:
        config = {"DATABASE": str(tmp_path / "old.sqlite")}
    migrate = sa.create_engine(db.database_url(config), poolclass=sa.pool.NullPool)
    with migrate.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0002")
    query(
        config,
        "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency, price,"
        " route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret, status,"
        " review_reason) VALUES"
        " ('a', 'a', 't', 't', 'en', 'X', 1, 'r', 'B', 'B', 'U', 1, '{}', 's', 'done', NULL),"
        " ('b', 'b', 't', 't', 'en', 'X', 1, 'r', 'B', 'B', 'U', 1, '{}', 's', 'done', 'why'),"
        " ('c', 'c', 't', 't', 'en', 'X', 1, 'r', 'B', 'B', 'U', 1, '{}', 's', 'done', NULL),"
        " ('d', 'd', 't', 't', 'en', 'X', 1, 'r', 'B', 'B', 'U', 1, '{}', 's', 'new', NULL)",
    )
    with migrate.begin() as connection:
        command.upgrade(db.alembic_config(connection), "0003")
    migrate.dispose()
    kept = {(r["status"], r["review"]): r["n"] for r in query(config, "SELECT * FROM order_counts")}
    assert kept == {("done", 0): 2, ("done", 1): 1, ("new", 0): 1}
    query(config, "DELETE FROM orders WHERE token = 'a'")
    query(config, "UPDATE orders SET review_reason = NULL WHERE token = 'b'")
    kept = {(r["status"], r["review"]): r["n"] for r in query(config, "SELECT * FROM order_counts")}
    assert kept == {("done", 0): 2, ("done", 1): 0, ("new", 0): 1}


# -- search --------------------------------------------------------------------------------


def test_each_kind_of_search_finds_exactly_its_orders(console_app, merchant):
    config = console_app.config
    (real,) = buy(console_app)
    add_orders(config, 1, email="alice@example.com", first_uid=123)
    add_orders(config, 1, email="Alice.B@Example.org", first_uid=1234)
    add_orders(config, 1, email="bob.alice@example.com", first_uid=12)
    add_orders(config, 1, email="=alice@evil.example", first_uid=9123)
    by_email = {r["buyer_email"]: r["token"] for r in query(config, "SELECT * FROM orders")}

    def search(text):
        page = merchant.get("/console/?" + urlencode({"q": text})).get_data(as_text=True)
        note = re.search(r'id="search-note">(.*?)</p>', page, re.S)
        return set(tokens(page)), note and " ".join(note.group(1).split())

    found, note = search("alice")
    assert found == {by_email["alice@example.com"], by_email["Alice.B@Example.org"]}
    assert note == "Showing orders whose buyer e-mail starts with alice."
    assert search("ALICE@")[0] == {by_email["alice@example.com"]}
    assert search("alice.b@example.ORG")[0] == {by_email["Alice.B@Example.org"]}
    # A middle or an end of an e-mail is not its start.
    assert search("example.com")[0] == set()
    assert search("@example")[0] == set()
    assert search("=alice")[0] == {by_email["=alice@evil.example"]}
    found, note = search("123")
    assert found == {by_email["alice@example.com"]}
    assert note == "Showing the order with exchanger order number 123."
    assert search("0123")[0] == {by_email["alice@example.com"]}
    assert search(str(real["exchanger_uid"]))[0] == {real["token"]}
    found, note = search(real["token"].upper())
    assert found == {real["token"]} and note == f"Showing the order with token {real['token']}."
    found, note = search("9" * 30)
    assert found == set() and note.startswith("No order has the exchanger order number 999")
    assert "the start of a buyer's e-mail" in note
    found, note = search("0" * 32)
    assert found == set() and note.startswith(f"No order has the token {'0' * 32}.")
    for odd in ("100%_", "%", "_", "\\", "a" * 200, "é@", "\u0000"):
        answer = merchant.get("/console/?" + urlencode({"q": odd}))
        assert answer.status_code == 200 and not tokens(answer.get_data(as_text=True))
    # The counts cover what the search found.
    page = merchant.get("/console/?q=alice").get_data(as_text=True)
    assert re.search(r'data-state="pending">pending <strong>2<', page)
    assert re.search(r'data-state="paid">paid <strong>0<', page)


# -- keyset pages ------------------------------------------------------------------------------


def listed(config, state):
    """The tokens the list should show, newest first: every order, or the pending ones."""
    pending = "WHERE review_reason IS NULL AND status IN ('draft', 'new', 'waitPayment')"
    sql = f"SELECT token FROM orders {pending if state else ''} ORDER BY id DESC"  # noqa: S608
    return [r["token"] for r in query(config, sql)]


@pytest.mark.parametrize("state", [None, "pending"])
def test_pages_walk_every_order_once_while_new_ones_arrive(console_app, merchant, state):
    config = console_app.config
    buy(console_app)
    for status in ("waitPayment", "new", "inProgress", "draft") * 15:
        add_orders(config, 2, status=status)
    query(config, "UPDATE orders SET review_reason = 'look' WHERE id - id / 9 * 9 = 0")
    there = listed(config, state)
    path = "/console/" + (f"?state={state}" if state else "")
    seen = []
    pages = 0
    while path:
        page = merchant.get(path).get_data(as_text=True)
        seen += tokens(page)
        pages += 1
        add_orders(config, 3, status="new")  # new orders arrive between page loads
        path = link(page, "Older")
    assert seen == there and len(set(seen)) == len(seen)
    assert pages == -(-len(there) // console.PAGE_SIZE)
    # And back up, newer and newer, to the newest: every order, the new ones too. Each page is
    # a run of the list; the last is the newest page, full, as the list opens.
    now_there = listed(config, state)
    path = "/console/?before=2" + (f"&state={state}" if state else "")
    back = set()
    while path:
        shown = tokens(merchant.get(path).get_data(as_text=True))
        start = now_there.index(shown[0])
        assert shown == now_there[start : start + len(shown)]
        back |= set(shown)
        path = link(merchant.get(path).get_data(as_text=True), "Newer")
    assert shown == now_there[: console.PAGE_SIZE] and back == set(now_there)


# A month's range, and the times its orders get: each day's orders share one time (ties broken
# by id), and the days follow the ids in no order, so a list sorted by id would be wrong.
MONTH = {"date_from": "2025-03-05", "date_to": "2025-03-20"}
IN_RANGE = "created_at >= '2025-03-05' AND created_at < '2025-03-21'"


# The day of March an order gets: 1 to 28, every seventh day from one id to the next.
DAY = "(id * 7 - id * 7 / 28 * 28 + 1)"


def scatter_over_march(config, first_id):
    query(
        config,
        f"UPDATE orders SET created_at = '2025-03-' || CASE WHEN {DAY} < 10 THEN '0' ELSE '' END"  # noqa: S608
        f" || CAST({DAY} AS TEXT) || 'T12:00:00.000000+00:00' WHERE id >= ?",
        first_id,
    )


def listed_in_month(config, state):
    """The tokens the month's list should show: newest first by (created_at, id)."""
    pending = " AND review_reason IS NULL AND status IN ('draft', 'new', 'waitPayment')"
    sql = (
        f"SELECT token FROM orders WHERE {IN_RANGE}{pending if state else ''}"  # noqa: S608
        " ORDER BY created_at DESC, id DESC"
    )
    return [r["token"] for r in query(config, sql)]


def last_id(config):
    return query(config, "SELECT MAX(id) AS m FROM orders")[0]["m"]


@pytest.mark.parametrize("state", [None, "pending"])
def test_a_date_range_pages_by_creation_time_while_new_orders_arrive(console_app, merchant, state):
    config = console_app.config
    buy(console_app)
    for status in ("waitPayment", "new", "inProgress", "draft") * 20:
        add_orders(config, 4, status=status)
    scatter_over_march(config, 2)
    query(config, "UPDATE orders SET review_reason = 'look' WHERE id - id / 9 * 9 = 0")
    there = listed_in_month(config, state)
    assert len(there) > 2 * console.PAGE_SIZE
    filters = {**MONTH, **({"state": state} if state else {})}
    path = "/console/?" + urlencode(filters)
    seen = []
    while path:
        page = merchant.get(path).get_data(as_text=True)
        seen += tokens(page)
        # New orders arrive between page loads: made now (outside the range), and in the range
        # at its last moment (newer than any page already shown).
        first_new = last_id(config) + 1
        add_orders(config, 3, status="new")
        add_orders(config, 2, status="new")
        query(
            config,
            "UPDATE orders SET created_at = '2025-03-20T23:59:00.000000+00:00' WHERE id >= ?",
            first_new + 3,
        )
        path = link(page, "Older")
    assert seen == there and len(set(seen)) == len(seen)
    # Back up from the oldest page, newer and newer: every order of the range, the new too.
    now_there = listed_in_month(config, state)
    assert len(now_there) > len(there)
    back = set(tokens(page))
    path = link(page, "Newer")
    while path:
        page = merchant.get(path).get_data(as_text=True)
        shown = tokens(page)
        start = now_there.index(shown[0])
        assert shown == now_there[start : start + len(shown)]
        back |= set(shown)
        path = link(page, "Newer")
    assert shown == now_there[: console.PAGE_SIZE] and back == set(now_there)


def test_a_date_range_counts_exactly_its_orders_per_state(console_app, merchant):
    config = console_app.config
    buy(console_app)
    for status in ("waitPayment", "inProgress", "done", "errorPayment", "returned", "deleted"):
        add_orders(config, 7, status=status)
    scatter_over_march(config, 2)
    query(config, "UPDATE orders SET review_reason = 'look' WHERE id - id / 5 * 5 = 0")
    expected = dict.fromkeys(orders.STATES, 0)
    for order in query(config, f"SELECT * FROM orders WHERE {IN_RANGE}"):  # noqa: S608
        expected[orders.payment_state(order)] += 1
    assert sum(expected.values()) > 0 and expected["review"] > 0
    with console_app.test_request_context():
        assert orders.count_by_state(MONTH) == expected
    page = merchant.get("/console/?" + urlencode(MONTH)).get_data(as_text=True)
    assert len(tokens(page)) == min(console.PAGE_SIZE, sum(expected.values()))


def test_the_ipn_log_pages_by_key_and_filters_by_outcome(console_app, merchant):
    # One rejected IPN through the endpoint; the rest of a flood's entries in SQL (the endpoint
    # logs only so many a minute), with genuine ones between them.
    console_app.test_client().post("/ipn", data="junk", content_type="text/plain")
    for n in range(79):
        query(
            console_app.config,
            "INSERT INTO ipn_log (received_at, remote_addr, content_type, headers, body, outcome)"
            " SELECT received_at, remote_addr, content_type, headers, ?, ? FROM ipn_log"
            " WHERE id = 1",
            f"junk{n}",
            "rejected" if n % 4 else "applied",
        )
    logged = [
        r["id"]
        for r in query(
            console_app.config, "SELECT id FROM ipn_log WHERE outcome = 'rejected' ORDER BY id DESC"
        )
    ]
    assert len(logged) > console.PAGE_SIZE
    first = merchant.get("/console/ipn?outcome=rejected").get_data(as_text=True)
    assert first.count('data-outcome="rejected"') == console.PAGE_SIZE
    assert link(first, "Newer") is None
    second = merchant.get(link(first, "Older")).get_data(as_text=True)
    assert second.count('data-outcome="rejected"') == len(logged) - console.PAGE_SIZE
    assert link(second, "Older") is None and "outcome=rejected" in link(second, "Newer")
    back = merchant.get(link(second, "Newer")).get_data(as_text=True)
    assert back.count('data-outcome="rejected"') == console.PAGE_SIZE
    applied = merchant.get("/console/ipn?outcome=applied").get_data(as_text=True)
    assert applied.count('data-outcome="applied"') == 20 and 'outcome="rejected"' not in applied


def test_every_list_query_goes_through_an_index(console_app, merchant):
    """EXPLAIN each statement the console's lists and counts run: an index range (or the key
    in order), never a read of every row; PostgreSQL is told to avoid a table scan where it
    can, so one left in the plan means no index serves the query."""
    buy(console_app)
    add_orders(console_app.config, 30)
    client = console_app.test_client()
    client.post("/ipn", data="junk", content_type="text/plain")
    token = query(console_app.config, "SELECT token FROM orders LIMIT 1")[0]["token"]
    statements = []
    with console_app.app_context():
        engine = db.engine()

    def record(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"FROM (orders|ipn_log|order_counts)\b", statement):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for path in (
            "/console/",
            "/console/?before=10",
            "/console/?after=3",
            "/console/?state=paid",
            "/console/?state=pending&before=20",
            "/console/?state=review",
            "/console/?date_from=2020-01-01&date_to=2020-02-01",
            "/console/?date_from=2020-01-01&before=10",
            "/console/?date_to=2030-01-01&after=3",
            "/console/?date_from=2020-01-01&state=pending&before=20",
            "/console/?date_from=2020-01-01&state=paid&after=5",
            "/console/?date_from=2020-01-01&state=review",
            "/console/orders.csv?date_from=2020-01-01",
            f"/console/?q={token}",
            "/console/?q=123",
            "/console/?q=buyer@exa",
            "/console/ipn?outcome=rejected",
            "/console/ipn?outcome=applied&before=5",
            "/console/orders.csv?state=processing",
        ):
            assert merchant.get(path).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert len(statements) > 20
    raw = engine.raw_connection()
    try:
        postgresql = engine.dialect.name == "postgresql"
        cursor = raw.cursor()
        if postgresql:
            cursor.execute("SET enable_seqscan = off")
            # A few dozen rows cost nothing to sort: told to avoid sorting, PostgreSQL keeps a
            # sort only where no index gives the order, as it would with a month of a million.
            cursor.execute("SET enable_sort = off")
            cursor.execute("SET enable_incremental_sort = off")
        for statement, parameters in statements:
            if "WHERE" not in statement:
                continue  # newest first by the key, stopping at LIMIT, or the counters
            explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
            cursor.execute(explain + statement, parameters)
            plan = "\n".join(str(row[-1] if not postgresql else row[0]) for row in cursor)
            if postgresql:
                assert "Seq Scan" not in plan, (statement, plan)
            else:
                assert not re.search(r"SCAN (orders|ipn_log|l)$", plan, re.M), (statement, plan)
            # A date range's page is the first entries of its index range: no sort of the range
            # (but for reviews, which are few).
            dated = "ORDER BY created_at" in statement and "UNION" not in statement
            if dated and "review_reason IS NOT NULL" not in statement:
                assert "TEMP B-TREE" not in plan and "Sort" not in plan, (statement, plan)
            # A date range's counts step over each status's range of an index, never reading an
            # order's row. (PostgreSQL chooses among its indexes by statistics that a few dozen
            # rows do not give: bench/growth.py shows its plan at scale.)
            counts = "COUNT(*)" in statement and "review_reason IS NULL AND status" in statement
            if counts and not postgresql:
                assert "orders_by_state_created" in plan, (statement, plan)
                counted = [line for line in plan.splitlines() if "state_created" in line]
                assert all("COVERING INDEX" in line for line in counted), plan
            if "l.outcome" in statement:
                # The index gives the id order too: no sort of every rejected IPN.
                assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    finally:
        raw.close()


# -- the CSV -------------------------------------------------------------------------------


def expected_csv(config, where=""):
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(console.CSV_COLUMNS)
    for order in query(config, f"SELECT * FROM orders {where} ORDER BY id DESC"):  # noqa: S608
        row = {**order, "state": orders.payment_state(order)}
        writer.writerow([console.csv_cell(row[c]) for c in console.CSV_COLUMNS])
    return out.getvalue()


def test_the_csv_streams_a_large_list_batch_by_batch(console_app, merchant):
    config = console_app.config
    buy(console_app)
    add_orders(config, 5_000, email="=cmd|' /C calc'!A0")
    answer = merchant.get("/console/orders.csv", buffered=False)
    assert answer.mimetype == "text/csv" and "attachment" in answer.headers["Content-Disposition"]
    chunks = iter(answer.response)
    first = next(chunks)
    first = first.decode() if isinstance(first, bytes) else first
    # The first chunk left with one batch in it, before the rest was read: an order changed
    # now shows its change further down.
    assert first.count("\n") == 1 + console.CSV_BATCH
    query(config, "UPDATE orders SET buyer_email = 'late@example.com' WHERE id <= 10")
    rest = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)
    answer.close()
    whole = first + rest
    assert whole == expected_csv(config)
    rows = list(csv.DictReader(io.StringIO(whole)))
    assert len(rows) == 5_001 and rows[-1]["buyer_email"] == "late@example.com"
    assert rows[0]["buyer_email"] == "'=cmd|' /C calc'!A0"
    # A filtered list streams the same way: only what it selects.
    query(config, "UPDATE orders SET status = 'done' WHERE id - id / 3 * 3 = 0")
    paid = merchant.get("/console/orders.csv?state=paid").get_data(as_text=True)
    assert paid == expected_csv(config, "WHERE status = 'done' AND review_reason IS NULL")
    assert paid.count("\n") == 1 + 5_001 // 3


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_the_first_and_last_days_a_date_can_be_are_filters_not_500s(console_app, merchant, day):
    buy(console_app)
    for path in ("/console/", "/console/orders.csv"):
        for name in ("date_from", "date_to"):
            answer = merchant.get(f"{path}?{name}={day}")
            assert answer.status_code == 200, (path, name)
            answer.get_data()
    # Up to the last day there is: every order; from it: none.
    everything = merchant.get("/console/?date_to=9999-12-31").get_data(as_text=True)
    assert "data-token" in everything
