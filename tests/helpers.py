"""Shared test data: the sandbox's demo route ids, valid requisites, and page scraping."""

import re
import threading

BTC_ROUTE = "65f0c0ffee0000000000aa01"
CARD_ROUTE = "65f0c0ffee0000000000aa06"
USDT_MULTI_ROUTE = "65f0c0ffee0000000000aa05"
TON_ROUTE = "65f0c0ffee0000000000aa07"
HIDDEN_ROUTE = "65f0c0ffee0000000000ac01"
BTC_ADDRESS_FIELD = "65f0c0ffee00000000000d01"
USDT_PAYOUT_FIELD = "65f0c0ffee00000000000d10"
EMAIL_FIELD = "65f0c0ffee00000000000e01"
BTC_ADDRESS = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"
PAYOUT_WALLET = "TMerchantPayoutWa11etSandboxDemoXq"
# Odd values for the no-500 fuzz: empty, negative, huge, NUL, non-ASCII, markup, traversal.
ODD_VALUES = [
    "x",
    "",
    "0",
    "-1",
    "9" * 40,
    "%00",
    "é",
    "<script>",
    "../..",
    "a" * 500,
    "1e309",
    "null",
]


def btc_order(**changes):
    """A valid order/create payload for the BTC -> USDT TRC20 demo route, as the shop sends it.

    With skipPreview, as the shop sends it: the order waits for payment at once. Tests of the
    confirm step (`new`, the sandbox's default without it) pass skipPreview=None.
    """
    payload = {
        "routeId": BTC_ROUTE,
        "amount": 0.01,
        "fromValues": [{"key": BTC_ADDRESS_FIELD, "value": BTC_ADDRESS}],
        "toValues": [{"key": USDT_PAYOUT_FIELD, "value": PAYOUT_WALLET}],
        "routeValues": [{"key": EMAIL_FIELD, "value": "buyer@example.com"}],
        "lang": "en",
        "agreement": True,
        "hideOutData": True,
        "clientCallbackUrl": "http://127.0.0.1:9/orders/abc/return",
        "ipnUrl": "",
        "ipnSecret": "per-order-secret",
        "skipPreview": True,
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


def hidden_inputs(html):
    """name -> value of every hidden input of a page (CSRF tokens, checkout keys)."""
    found = {}
    for tag in re.findall(r"<input[^>]*>", html):
        if 'type="hidden"' in tag:
            name, value = re.search(r'name="([^"]+)"', tag), re.search(r'value="([^"]*)"', tag)
            if name and value:
                found[name.group(1)] = value.group(1)
    return found


def submit_requisites(client, form_page, route_id=BTC_ROUTE, headers=None):
    """Post the BTC route's form (test client) with valid requisites and the page's checkout key."""
    data = {
        "checkout_key": hidden_inputs(form_page)["checkout_key"],
        "fromValues_0": BTC_ADDRESS,
        "routeValues_0": "buyer@example.com",
        "agreement": "y",
    }
    return client.post(f"/checkout/{route_id}", data=data, headers=headers)


def place_order(client, route_id=BTC_ROUTE, product="mug", quantity=1, headers=None):
    """Buy through the test client (CSRF off): returns the payment page URL it redirects to."""
    client.post("/cart/add", data={"product_id": product, "quantity": str(quantity)})
    page = client.get(f"/checkout/{route_id}", headers=headers).get_data(as_text=True)
    answer = submit_requisites(client, page, route_id, headers)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return answer.location


def add_to_cart_over_http(buyer, base, product, quantity):
    token = hidden_inputs(buyer.get(f"{base}/", timeout=10).text)["csrf_token"]
    data = {"csrf_token": token, "product_id": product, "quantity": str(quantity)}
    buyer.post(f"{base}/cart/add", data=data, timeout=10)


def submit_requisites_over_http(buyer, base, form_page, follow=True, **values):
    """Post the BTC route's form with valid requisites (or the given ones) and its hidden fields."""
    data = {
        **hidden_inputs(form_page),
        "fromValues_0": BTC_ADDRESS,
        "routeValues_0": "me@example.com",
        "agreement": "y",
        **values,
    }
    return buyer.post(f"{base}/checkout/{BTC_ROUTE}", data=data, allow_redirects=follow, timeout=10)


def buy_over_http(buyer, base, product="mug", quantity=1, follow=True):
    """Cart, then the BTC route's form with valid requisites: the answer to that submit."""
    add_to_cart_over_http(buyer, base, product, quantity)
    form_page = buyer.get(f"{base}/checkout/{BTC_ROUTE}", timeout=10).text
    return submit_requisites_over_http(buyer, base, form_page, follow=follow)


def query(where, sql, *args):
    """Rows of the shop's database as dicts; `?` parameters, on either engine.

    where: a SQLite path, or an app's config (its DATABASE_URL when set, else DATABASE).
    Statements commit at once (both connections are in autocommit).
    """
    from shop.db import connect

    if not isinstance(where, str) and where.get("DATABASE_URL"):
        import psycopg
        from psycopg.rows import dict_row

        url = where["DATABASE_URL"]
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as db:
            cursor = db.execute(sql.replace("?", "%s"), args)
            return [normal(row) for row in cursor.fetchall()] if cursor.description else []
    db = connect(where if isinstance(where, str) else where["DATABASE"])
    try:
        return [dict(row) for row in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def normal(row):
    """A PostgreSQL row as SQLite returns it: NUMERIC money as its decimal text."""
    from decimal import Decimal

    return {k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def rows_when(shop, sql, predicate, timeout=20):
    """A live shop's rows of sql once predicate(rows) holds, re-reading the table: for what a
    background sender does after the response has gone out."""
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        while True:
            rows = shop.query(sql)
            if predicate(rows):
                return rows
            assert not stop.wait(0.05), f"never got there: {rows}"
    finally:
        timer.cancel()


def create_shop(config):
    """The shop app with its database migrated, as `flask init-db` does before a start."""
    from app import create_app
    from shop import db

    app = create_app(config)
    db.upgrade(app.config)
    return app


def sandbox_currency(xml):
    """The sandbox's route data for a currency code: what buyer pages must name it by."""
    from sandbox.routes import RouteBook

    return next(c for c in RouteBook().currencies.values() if c["xml"] == xml)


SETTLEMENT = sandbox_currency("USDTTRC20")
