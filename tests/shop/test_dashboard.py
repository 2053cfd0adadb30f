"""The console's dashboard: its figures equal hand-computed ones, its charts speak to screen
readers, an empty shop reads well, bad input is refused kindly, and every query uses an index."""

import itertools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from shop import dashboard
from shop.db import get_db, is_postgresql
from tests.conftest import BOTH_ENGINES
from tests.helpers import query
from tests.shop.test_console import buy, post_button, sandbox_set

pytestmark = BOTH_ENGINES

SETTLEMENT = "USDTTRC20"
numbers = itertools.count(1)


def stamp(day, clock="12:00:00"):
    """The shop's own stamp format (shop.db.now): ISO text in UTC."""
    return f"{day.isoformat()}T{clock}+00:00"


def seed(config, created, status, price="10.00", finished=None, review=None, pays="BTC"):
    """One order as the shop writes it, with the times and state a test needs; its token."""
    n = next(numbers)
    token = f"seeded-order-{n:04d}"
    query(
        config,
        "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency, price,"
        " route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret, status,"
        " finished_at, review_reason) VALUES (?, ?, ?, ?, 'en', ?, ?, 'route', ?, ?, ?, '1',"
        " '{}', 'secret', ?, ?, ?)",
        token,
        f"key-{n}",
        created,
        created,
        SETTLEMENT,
        price,
        pays,
        pays,
        SETTLEMENT,
        status,
        finished,
        review,
    )
    return token


def seed_shop(config, today):
    """A shop's orders over four months, every kind the dashboard tells apart (see the sums)."""
    day = {n: today - timedelta(days=n) for n in range(0, 101)}
    tokens = {}
    # Paid in the period: the last second of yesterday and the first of today fall on their days.
    tokens["a"] = seed(
        config, stamp(day[1], "23:54:59"), "done", "10.10", stamp(day[1], "23:59:59")
    )
    tokens["b"] = seed(
        config, stamp(day[1], "23:40:00"), "done", "20.25", stamp(day[0], "00:00:00")
    )
    tokens["c"] = seed(
        config, stamp(day[5]), "done", "5.005", stamp(day[5], "13:00:00"), pays="ETH"
    )
    # Created before the period, paid on its first day: revenue, not conversion.
    tokens["j"] = seed(
        config, stamp(day[35], "00:00:00"), "done", "1.00", stamp(day[29], "00:00:00"), pays="ETH"
    )
    # Paid the last second before the period: nowhere.
    tokens["i"] = seed(config, stamp(day[40]), "done", "99.00", stamp(day[30], "23:59:59"))
    # Done but underpaid: review, not revenue.
    tokens["d"] = seed(
        config, stamp(day[2]), "done", "7.00", stamp(day[2], "12:30:00"), review="underpaid"
    )
    tokens["e"] = seed(config, stamp(day[3]), "errorPayment", "3.00")  # failed, still open
    tokens["f"] = seed(config, stamp(day[4]), "create_failed", "4.00", stamp(day[4]))
    tokens["g"] = seed(config, stamp(day[6]), "returned", "9.00", stamp(day[6]))  # refunded
    tokens["h"] = seed(config, stamp(day[29], "00:00:00"), "waitPayment", "2.00")
    tokens["k"] = seed(config, stamp(day[100]), "draft", "6.00")  # open, long before
    tokens["l"] = seed(
        config, stamp(day[50]), "done", "8.00", stamp(day[50]), review="refunded after done"
    )
    return tokens


class Page(HTMLParser):
    """What a reader of the page gets: texts by id, each SVG's attributes, each table's cells."""

    def __init__(self, html):
        super().__init__()
        self.by_id, self.svgs, self.tables, self.links = {}, [], {}, {}
        self.open_ids, self.table, self.row = [], None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.open_ids.append(attrs.get("id"))
        if attrs.get("id"):
            self.by_id[attrs["id"]] = ""
            if attrs.get("href"):
                self.links[attrs["id"]] = attrs["href"]
        if tag == "svg":
            self.svgs.append(attrs)
        if tag == "table" and attrs.get("data-chart"):
            self.table = self.tables.setdefault(attrs["data-chart"], [])
        if tag == "tr" and self.table is not None:
            self.row = []
            self.table.append(self.row)
        if tag in ("td", "th") and self.row is not None:
            self.row.append("")

    def handle_endtag(self, tag):
        if self.open_ids:
            self.open_ids.pop()
        if tag == "table":
            self.table = None
        if tag == "tr":
            self.row = None

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_data(self, data):
        for element_id in self.open_ids:
            if element_id:
                self.by_id[element_id] += data
        if self.row is not None and self.row:
            self.row[-1] += data.strip()

    def text(self, element_id):
        return " ".join(self.by_id[element_id].split())


def amount(text):
    return Decimal(text.replace(",", ""))


def test_the_dashboard_needs_a_login(console_app):
    answer = console_app.test_client().get("/console/dashboard")
    assert answer.status_code == 302
    assert "/console/login" in answer.headers["Location"]


def test_figures_equal_the_hand_computed_ones(console_app, merchant):
    today = datetime.now(UTC).date()
    tokens = seed_shop(console_app.config, today)
    page = Page(merchant.get("/console/dashboard").get_data(as_text=True))

    # Paid in the 30 days: a, b, c, j (i a second too early; d in review; g refunded).
    assert amount(page.text(f"revenue-total-{SETTLEMENT.lower()}").split()[0]) == Decimal("36.355")
    assert page.text("paid") == "4"
    # Created in the 30 days: a b c d e f g h; paid of them a b c.
    assert page.text("created") == "8"
    assert page.text("paid-created") == "3"
    assert page.text("conversion") == "37.5 %"
    assert page.text("failed") == "2"  # e (errorPayment) and f (create_failed)
    assert page.text("review") == "1"  # d; l is older
    assert page.text("all-reviews") == "2"
    # Durations 300, 1200, 3600 and 6 days: the median is the mean of the middle two.
    assert page.text("median") == "40 min"
    start, end = (today - timedelta(days=29)).isoformat(), today.isoformat()
    assert page.links["failed"] == f"/console/?state=failed&date_from={start}&date_to={end}"
    assert page.links["all-reviews"] == "/console/?state=review"

    per_day = {
        row[0]: (amount(row[1]), int(row[2])) for row in page.tables["revenue-usdttrc20"][1:]
    }
    assert len(per_day) == 30
    assert per_day.pop((today - timedelta(days=29)).isoformat()) == (Decimal("1.00"), 1)
    assert per_day.pop((today - timedelta(days=5)).isoformat()) == (Decimal("5.005"), 1)
    assert per_day.pop((today - timedelta(days=1)).isoformat()) == (Decimal("10.10"), 1)
    assert per_day.pop(today.isoformat()) == (Decimal("20.25"), 1)
    assert set(per_day.values()) == {(Decimal(0), 0)}

    per_route = [
        (row[0], amount(row[1]), int(row[2])) for row in page.tables["routes-usdttrc20"][1:]
    ]
    assert per_route == [
        (f"BTC → {SETTLEMENT}", Decimal("30.35"), 2),
        (f"ETH → {SETTLEMENT}", Decimal("6.005"), 2),
    ]

    # The open orders, oldest first, whatever the period: the draft, the waiting one, the failed.
    html = merchant.get("/console/dashboard").get_data(as_text=True)
    waiting = re.findall(r'<tr data-token="([^"]+)"', html)
    assert waiting == [tokens["k"], tokens["h"], tokens["e"]]
    assert f'href="/console/orders/{tokens["k"]}"' in html


def test_a_shorter_period_counts_only_its_days(console_app, merchant):
    today = datetime.now(UTC).date()
    seed_shop(console_app.config, today)
    page = Page(merchant.get("/console/dashboard?days=7").get_data(as_text=True))
    assert amount(page.text("revenue-total-usdttrc20").split()[0]) == Decimal("35.355")
    assert page.text("created") == "7"  # h, on the 30th day back, is out
    assert page.text("median") == "20 min"  # 300, 1200, 3600
    assert len(page.tables["revenue-usdttrc20"]) == 1 + 7


@pytest.mark.parametrize("days", ["45", "abc", "", "-7", "7" * 40])
def test_a_bad_period_shows_the_default_with_a_word(merchant, days):
    answer = merchant.get(f"/console/dashboard?days={days}")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "Choose a period of 7, 30, 90 days; showing 30." in html
    assert '<option selected value="30">' in html


def test_the_charts_carry_their_names_and_their_numbers(console_app, merchant):
    seed_shop(console_app.config, datetime.now(UTC).date())
    html = merchant.get("/console/dashboard").get_data(as_text=True)
    page = Page(html)
    assert len(page.svgs) == 2
    for svg in page.svgs:
        assert svg["role"] == "img"
        title_id, desc_id = svg["aria-labelledby"].split()
        assert page.text(title_id).startswith("Paid revenue per")
        assert page.text(desc_id)
    assert page.text("revenue-usdttrc20-title") == "Paid revenue per day, USDTTRC20"
    assert "36.355 USDTTRC20 in all" in page.text("revenue-usdttrc20-desc")
    # Every column's tooltip says the same as its row of the table.
    bars = re.findall(r"<rect[^>]*><title>([^<]+)</title>", html)
    rows = page.tables["revenue-usdttrc20"][1:] + page.tables["routes-usdttrc20"][1:]
    assert bars == [f"{day}: {value} USDTTRC20, {n} paid" for day, value, n in rows]


def test_an_empty_shop_says_so_instead_of_drawing(merchant):
    html = merchant.get("/console/dashboard").get_data(as_text=True)
    assert "No orders in the last 30 days yet." in html
    assert "<svg" not in html
    assert "No order is waiting" in html


def test_the_tallest_column_fills_the_plot_and_none_goes_below_zero():
    today = datetime(2026, 3, 1, tzinfo=UTC).date()
    series = [(today, Decimal("0"), 0), (today, Decimal("7.5"), 1), (today, Decimal("3"), 2)]
    chart = dashboard.day_chart("USDT", series)
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0
    assert heights[1] > heights[2] > 0
    top = chart.grid[-1]
    assert top[3] == "10"  # 7.5 rounds up to a top of 10
    assert all(bar.y + bar.height == pytest.approx(chart.grid[0][2]) for bar in chart.bars)


def plans(db, statements):
    """Each statement's query plan as text (on PostgreSQL with sequential scans discouraged,
    so a plan that still scans the table has no index it could use)."""
    found = []
    for statement, parameters in statements:
        if is_postgresql(db):
            db.exec_driver_sql("SET enable_seqscan = off")
            rows = db.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        else:
            rows = db.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        found.append((statement, "\n".join(str(row[-1]) for row in rows)))
    return found


# The index each of dashboard.figures's queries must read, in the order it asks them.
INDEXES = [
    "orders_paid_by_finished",  # revenue per day and route
    "orders_by_created_status",  # created per state
    "orders_in_review_by_created",  # of them in review
    "orders_paid_by_finished",  # median time to paid
    "orders_in_review",  # reviews of any day (0003's, for the console's list; 0005's will do)
    "orders_open_by_created",  # waiting longest
]


def test_every_query_reads_an_index_range_not_the_table(console_app):
    seed_shop(console_app.config, datetime.now(UTC).date())
    with console_app.app_context():
        db = get_db()
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append((statement, parameters))

        sa.event.listen(db, "before_cursor_execute", record)
        dashboard.figures(db, dashboard.Period.ending(datetime.now(UTC).date(), 30))
        sa.event.remove(db, "before_cursor_execute", record)
        found = plans(db, statements)
    assert len(found) == len(INDEXES)
    for (statement, plan), index in zip(found, INDEXES, strict=True):
        if index == "orders_in_review":
            # Both partial indexes of reviews hold only them; either answers a count of all.
            index = "orders_in_review_by_created" if index + "_by" in plan else index
        assert index in plan, (statement, plan)
        if is_postgresql(db):
            assert "Seq Scan" not in plan, (statement, plan)
            continue
        for line in plan.splitlines():
            if "orders" not in line:
                continue
            # A SEARCH reads a range of the index: here always the period's, or status's
            # 'done' and the period. Only the partial indexes that hold just what is asked
            # (the reviews; the open orders, read to the tenth) may be scanned.
            if index.startswith("orders_in_review") or index == "orders_open_by_created":
                assert re.match(rf"(SCAN|SEARCH) orders USING (COVERING )?INDEX {index}\b", line)
            else:
                assert re.match(
                    rf"SEARCH orders USING COVERING INDEX {index} \((status=\? AND )?"
                    r"(created_at|finished_at)>\? AND",
                    line,
                ), (statement, plan)


def test_orders_paid_through_the_sandbox_show_and_each_count_leads_to_its_orders(
    console_app, merchant
):
    paid, failed, waiting = buy(console_app, times=3)
    sandbox_set(console_app, paid["exchanger_uid"], "done")
    sandbox_set(console_app, failed["exchanger_uid"], "errorPayment")
    for order in (paid, failed):
        post_button(merchant, f"/console/orders/{order['token']}/refresh")

    page = Page(merchant.get("/console/dashboard").get_data(as_text=True))
    assert amount(page.text("revenue-total-usdttrc20").split()[0]) == Decimal(paid["price"])
    assert (page.text("paid"), page.text("created"), page.text("failed")) == ("1", "3", "1")
    assert page.text("conversion") == "33.3 %"
    # Each figure's link lists exactly the orders it counts.
    for link, tokens in (
        ("paid-created", [paid["token"]]),
        ("failed", [failed["token"]]),
        ("created", [waiting["token"], failed["token"], paid["token"]]),
        ("review", []),
    ):
        listed = merchant.get(page.links[link]).get_data(as_text=True)
        assert re.findall(r'data-token="([^"]+)"', listed) == tokens, link
    html = merchant.get("/console/dashboard").get_data(as_text=True)
    assert re.findall(r'<tr data-token="([^"]+)"', html) == [failed["token"], waiting["token"]]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "—"),
        (0, "0 s"),
        (40, "40 s"),
        (200, "3 min 20 s"),
        (3601, "1 h"),
        (7500, "2 h 5 min"),
        (100800, "1 d 4 h"),
    ],
)
def test_durations_read_in_their_two_largest_units(seconds, words):
    assert dashboard.duration_words(seconds) == words


def test_a_paid_order_refunded_between_the_count_and_the_median_is_no_500(console_app):
    """The dashboard counts the period's paid orders, then reads the middle one(s) of them in
    a second query; an order refunded in between leaves fewer than counted (here none)."""
    period = dashboard.Period.ending(datetime.now(UTC).date(), 30)
    with console_app.app_context():
        assert dashboard.median_seconds_to_paid(get_db(), period, paid=1) is None
