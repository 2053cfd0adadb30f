"""Words a buyer understands: status words, rates, limits, the timeline, and "Your orders"."""

import re
from decimal import Decimal

import pytest
from babel.support import Translations

from sandbox.routes import RouteBook
from shop import words
from shop.i18n import TRANSLATIONS
from shop.orders import CREATE_FAILED, DRAFT, EXCHANGER_STATUSES
from tests.helpers import BTC_ROUTE, place_order

ALL_STATUSES = (*EXCHANGER_STATUSES, DRAFT, CREATE_FAILED)
BOOK = RouteBook()


def definition(route_id=BTC_ROUTE):
    return BOOK.definition(BOOK.get(route_id))


def test_every_status_has_a_word_and_a_next_step_in_english_and_russian():
    russian = Translations.load(str(TRANSLATIONS), ["ru"])
    for table in (words.STATUS_WORDS, words.NEXT_STEP):
        assert set(table) == set(ALL_STATUSES)
        assert len(set(table.values())) == len(table), "two statuses read the same"
        for text in table.values():
            assert russian.gettext(text) != text


def test_status_pages_show_words_not_codes(app):
    with app.test_request_context():
        for status in ALL_STATUSES:
            assert words.status_word(status) == words.STATUS_WORDS[status]
        assert words.status_word("somethingNew") == words.UNKNOWN_STATUS


@pytest.mark.parametrize("route", list(BOOK.routes.values()), ids=lambda r: r["routeId"])
def test_rates_read_one_of_the_dearer_currency(app, route):
    if not route["isShowWeb"]:
        return
    data = BOOK.definition(route)
    rate = Decimal(data["rate"]["rateFullNumber"])
    with app.test_request_context():
        text = words.rate_text(data)
    # Symbols, or names when both currencies share a symbol (USDT on two networks).
    key = "name" if data["from"]["symbol"] == data["to"]["symbol"] else "symbol"
    one, value, other = re.fullmatch(r"1 (.+) ≈ ([\d,.]+) (.+)", text).groups()
    if rate < 1:
        assert (one, other) == (data["from"][key], data["to"][key])
        exact = 1 / rate
    else:
        assert (one, other) == (data["to"][key], data["from"][key])
        exact = rate
    shown = Decimal(value.replace(",", ""))
    # Rounded for reading (4 digits, or the currency's own decimals, e.g. cents), and at least 1.
    places = (data["to"] if other == data["to"][key] else data["from"])["decimal"]
    allowed = max(exact * Decimal("0.0005"), Decimal(1).scaleb(-places) / 2)
    assert shown >= 1 and abs(shown - exact) <= allowed
    assert len(value.replace(",", "").replace(".", "").lstrip("0")) <= 8


@pytest.mark.parametrize(
    ("rate", "decimal"),
    [("1e-40", 2), ("64250.5", "two"), ("64250.5", True), ("64250.5", -3), ("1e40", None)],
)
def test_odd_route_data_gives_no_rate_or_a_plain_one_never_an_error(app, rate, decimal):
    data = {
        "rate": {"rateFullNumber": rate},
        "from": {"symbol": "BTC", "xml": "BTC"},
        "to": {"symbol": "USDT", "xml": "USDTTRC20", "decimal": decimal},
    }
    with app.test_request_context():
        text = words.rate_text(data)
    assert text is None or re.fullmatch(r"1 \S+ ≈ [\d,.]+ \S+", text)


def test_limits_and_reserve_are_mentioned_only_near_them(app):
    route = definition()
    low, high = Decimal(route["from"]["min"]), Decimal(route["from"]["max"])
    reserve = Decimal(route["rate"]["amount"])
    with app.test_request_context():
        assert words.limit_notes(route, (low + high) / 2, reserve / 10) == []
        assert len(words.limit_notes(route, low, reserve / 10)) == 1
        assert len(words.limit_notes(route, high, reserve / 10)) == 1
        assert len(words.limit_notes(route, (low + high) / 2, reserve)) == 1


def test_the_timeline_follows_the_history_and_ends_in_the_failure(app):
    order = {"status": "deleted", "created_at": "2026-11-28T10:00:00+00:00", "review_reason": None}
    history = [
        {"new_status": "draft", "created_at": "2026-11-28T10:00:00+00:00"},
        {"new_status": "waitPayment", "created_at": "2026-11-28T10:00:02+00:00"},
        {"new_status": "deleted", "created_at": "2026-11-28T10:30:00+00:00"},
    ]
    with app.test_request_context():
        steps = words.timeline(order, history)
    assert [s["key"] for s in steps] == ["placed", "waiting", "failed"]
    assert all(s["done"] and s["time"] for s in steps)
    assert [s["current"] for s in steps] == [False, False, True]


def test_your_orders_lists_this_browsers_orders_only(app, client):
    place_order(client)
    page = client.get("/orders").get_data(as_text=True)
    (token,) = [row["token"] for row in rows(app)]
    assert f"/orders/{token}/return" in page and 'id="your-orders"' in page
    stranger = app.test_client().get("/orders").get_data(as_text=True)
    assert token not in stranger and 'id="your-orders"' not in stranger


def test_the_favicon_is_served(client):
    answer = client.get("/favicon.ico", follow_redirects=True)
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"


def rows(app):
    from tests.helpers import query

    return query(app.config, "SELECT id, token FROM orders")


def test_the_order_page_shows_the_time_left_to_pay_from_the_routes_ttl(app, client):
    place_order(client)
    (token,) = [row["token"] for row in rows(app)]
    ttl = BOOK.routes[BTC_ROUTE]["orderTTL"]
    status = client.get(f"/orders/{token}/status").get_json()
    # Just created: the whole limit, or a minute less if a minute turned meanwhile.
    assert status["minutes_left"] in (ttl, ttl - 1)
    page = client.get(f"/orders/{token}/return").get_data(as_text=True)
    assert 'id="time-left"' in page and f"{status['minutes_left']} min" in page


def test_no_time_left_once_the_order_is_cancelled(app, client):
    place_order(client)
    (token,) = [row["token"] for row in rows(app)]
    with app.app_context():
        from shop import orders
        from shop.db import get_db

        (order_id,) = [r["id"] for r in rows(app)]
        orders.apply_event(get_db(), order_id, orders.Event("console", "deleted"))
    status = client.get(f"/orders/{token}/status").get_json()
    assert status["minutes_left"] is None and status["time_left"] is None
    assert 'id="time-left"' not in client.get(f"/orders/{token}/return").get_data(as_text=True)
