"""Payment links: made in the console, paid at /pay/<token> through the same checkout, refused
with their own page when unknown, used up, switched off or expired."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from shop import db
from tests.conftest import BOTH_ENGINES, ShopServer
from tests.helpers import (
    BTC_ADDRESS,
    BTC_ROUTE,
    SETTLEMENT,
    hidden_inputs,
    query,
)

pytestmark = BOTH_ENGINES

PASSWORD = "correct horse battery"
SANDBOX_API = "/sandbox/service/api/v1/"


# -- over the test client ---------------------------------------------------------------------


@pytest.fixture
def console_app(app):
    app.config.update(WTF_CSRF_ENABLED=True, CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD))
    return app


@pytest.fixture
def merchant(console_app):
    client = console_app.test_client()
    csrf = hidden_inputs(client.get("/console/login").get_data(as_text=True))["csrf_token"]
    answer = client.post("/console/login", data={"csrf_token": csrf, "password": PASSWORD})
    assert answer.status_code == 302
    return client


def links_page(merchant):
    return merchant.get("/console/links").get_data(as_text=True)


def create_link(merchant, **fields):
    """Post the console's new-link form; the answer (a redirect when the link was made)."""
    data = {"amount": "15.00", "description": "Invoice 7: consulting", **fields}
    data["csrf_token"] = hidden_inputs(links_page(merchant))["csrf_token"]
    return merchant.post("/console/links", data=data)


def only_payment(app):
    (payment,) = query(app.config, "SELECT * FROM payments")
    return payment


def pay_link_form(buyer, token, email="buyer@example.com"):
    """Open the link's BTC form and submit it (CSRF on): the answer to the submit."""
    page = buyer.get(f"/pay/{token}/{BTC_ROUTE}").get_data(as_text=True)
    return buyer.post(
        f"/pay/{token}/{BTC_ROUTE}",
        data={
            **hidden_inputs(page),
            "fromValues_0": BTC_ADDRESS,
            "routeValues_0": email,
            "agreement": "y",
        },
    )


def test_the_console_makes_a_link_that_opens_the_route_choice(console_app, merchant):
    made = create_link(merchant, reference="INV-7", buyer_email="client@example.com")
    assert made.status_code == 302
    payment = only_payment(console_app)
    assert payment["source"] == "link" and payment["reference"] == "INV-7"
    assert payment["amount"] in ("15.00", "15.00000000") and payment["single_use"]
    # Unguessable: 32 URL-safe characters from secrets.token_urlsafe(24).
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", payment["token"])
    listing = links_page(merchant)
    assert f"/pay/{payment['token']}" in listing and 'data-reference="INV-7"' in listing
    assert 'data-state="open"' in listing

    buyer = console_app.test_client()
    routes = buyer.get(f"/pay/{payment['token']}").get_data(as_text=True)
    assert "Payment for: Invoice 7: consulting" in routes
    assert f"15.00 {SETTLEMENT['symbol']}" in routes
    assert f'href="/pay/{payment["token"]}/{BTC_ROUTE}"' in routes
    form = buyer.get(f"/pay/{payment['token']}/{BTC_ROUTE}").get_data(as_text=True)
    assert f'href="/pay/{payment["token"]}"' in form  # "Choose another way" stays on the link


def test_a_link_payment_is_an_order_with_its_reference_and_no_cart(console_app, merchant):
    create_link(merchant, reference="INV-8", amount="24.50")
    payment = only_payment(console_app)
    buyer = console_app.test_client()
    csrf = hidden_inputs(buyer.get("/").get_data(as_text=True))["csrf_token"]
    buyer.post("/cart/add", data={"csrf_token": csrf, "product_id": "mug", "quantity": "1"})

    answer = pay_link_form(buyer, payment["token"])

    assert answer.status_code == 302 and "/sandbox/en/payment/" in answer.location
    (order,) = query(console_app.config, "SELECT * FROM orders")
    assert order["payment_id"] == payment["id"] and order["reference"] == "INV-8"
    assert order["price"] in ("24.50", "24.50000000") and order["status"] == "new"
    assert query(console_app.config, "SELECT * FROM order_items") == []
    # The buyer's own cart is not the link's business: it is still there.
    assert "Ledger mug" in buyer.get("/cart").get_data(as_text=True)
    back = buyer.get(f"/orders/{order['token']}/return").get_data(as_text=True)
    assert "Payment for: Invoice 7: consulting" in back


def test_an_abandoned_attempt_does_not_use_up_a_single_use_link(console_app, merchant):
    create_link(merchant)
    token = only_payment(console_app)["token"]
    assert pay_link_form(console_app.test_client(), token).status_code == 302
    # The buyer left the exchanger's page without paying: the order waits, the link still works.
    again = console_app.test_client().get(f"/pay/{token}")
    assert again.status_code == 200 and "How would you like to pay?" in again.get_data(as_text=True)


def paid_through_the_sandbox(client, order):
    """The embedded sandbox marks the order done; the shop's status poll learns it."""
    answer = client.post(
        f"{SANDBOX_API}sandbox/order/set-status",
        json={"orderUID": order["exchanger_uid"], "status": "done"},
    )
    assert answer.get_json()["success"], answer.get_data(as_text=True)
    assert client.get(f"/orders/{order['token']}/status").get_json()["state"] == "paid"


REFUSED = {
    "unknown": (404, "Payment link not found", "There is no payment at this address."),
    "used": (410, "Already paid", "This payment has already been made."),
    "disabled": (410, "Payment link switched off", "The seller has switched off this"),
    "expired": (410, "Payment link expired", "This payment link has expired."),
}
REFUSED_RU = {
    "unknown": "Ссылка на оплату не найдена",
    "used": "Уже оплачено",
    "disabled": "Ссылка на оплату отключена",
    "expired": "Срок действия ссылки истёк",
}


def refusal_of(client, path, lang="en"):
    answer = client.get(path, headers={"Accept-Language": lang})
    page = answer.get_data(as_text=True)
    reason = re.search(r'data-reason="([a-z]+)"', page)
    return answer.status_code, reason and reason.group(1), page


def test_each_refusal_has_its_own_page_and_status_in_english_and_russian(console_app, merchant):
    create_link(merchant, description="to be paid")
    create_link(merchant, description="to be switched off")
    create_link(merchant, description="to expire")
    paid, disabled, expiring = query(console_app.config, "SELECT * FROM payments ORDER BY id")

    buyer = console_app.test_client()
    pay_link_form(buyer, paid["token"])
    (order,) = query(console_app.config, "SELECT * FROM orders")
    paid_through_the_sandbox(buyer, order)

    csrf = hidden_inputs(links_page(merchant))["csrf_token"]
    switched = merchant.post(f"/console/links/{disabled['id']}/disable", data={"csrf_token": csrf})
    assert switched.status_code == 302
    assert "The payment link is switched off." in links_page(merchant)
    # Expired an hour ago (a form cannot make one in the past: set directly).
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    query(
        console_app.config, "UPDATE payments SET expires_at = ? WHERE id = ?", past, expiring["id"]
    )

    paths = {
        "unknown": "/pay/" + "x" * 32,
        "used": f"/pay/{paid['token']}",
        "disabled": f"/pay/{disabled['token']}",
        "expired": f"/pay/{expiring['token']}",
    }
    for reason, path in paths.items():
        status, shown, page = refusal_of(buyer, path)
        expected_status, title, words = REFUSED[reason]
        assert (status, shown) == (expected_status, reason), path
        assert f"<h1>{title}</h1>" in page and words in page
        # The requisite form refuses too, on GET and on submit: no new order.
        assert refusal_of(buyer, f"{path}/{BTC_ROUTE}")[:2] == (expected_status, reason)
        status_ru, _, page_ru = refusal_of(buyer, path, lang="ru")
        assert status_ru == expected_status and f"<h1>{REFUSED_RU[reason]}</h1>" in page_ru
    before = query(console_app.config, "SELECT COUNT(*) AS n FROM orders")[0]["n"]
    assert pay_link_form(buyer, disabled["token"]).status_code == 410
    assert query(console_app.config, "SELECT COUNT(*) AS n FROM orders")[0]["n"] == before

    listing = links_page(merchant)
    assert f'data-payment="{paid["id"]}" data-state="paid"' in listing
    assert f'data-payment="{disabled["id"]}" data-state="disabled"' in listing
    assert f'data-payment="{expiring["id"]}" data-state="expired"' in listing


def test_a_reusable_link_takes_payment_after_payment(console_app, merchant):
    create_link(merchant, reusable="y")
    payment = only_payment(console_app)
    for round_ in range(2):
        buyer = console_app.test_client()
        assert buyer.get(f"/pay/{payment['token']}").status_code == 200, round_
        pay_link_form(buyer, payment["token"])
        order = query(console_app.config, "SELECT * FROM orders ORDER BY id DESC")[0]
        paid_through_the_sandbox(buyer, order)
    listing = links_page(merchant)
    assert listing.count('data-order-state="paid"') == 2


def test_a_reusable_link_s_pages_do_not_read_its_orders(console_app, merchant):
    """A reusable link (a donation, a price list) gathers orders without end; whether the
    buyer may pay it does not depend on them, so its pages cost the same at the thousandth
    payment as at the first."""
    create_link(merchant, reusable="y")
    payment = only_payment(console_app)
    buyer = console_app.test_client()
    pay_link_form(buyer, payment["token"])
    statements = []
    with console_app.app_context():
        engine = db.engine()

    def record(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"FROM orders\b", statement):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert buyer.get(f"/pay/{payment['token']}").status_code == 200
        assert buyer.get(f"/pay/{payment['token']}/{BTC_ROUTE}").status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert statements == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": ""}, "Amount must be a decimal string"),
        ({"amount": "12,50"}, "Amount must be a decimal string"),
        ({"amount": "0"}, "Amount must be more than 0"),
        ({"amount": "1.123456789"}, "Amount must be a decimal string"),
        ({"description": "  "}, "Description is required"),
        ({"description": "x" * 201}, "Description must be at most 200 characters"),
        ({"buyer_email": "not an address"}, "must be an e-mail address"),
        ({"expires_at": "2001-01-01T10:00"}, "The expiry must be in the future (UTC)."),
        ({"expires_at": "tomorrow"}, "Not a valid datetime value."),
    ],
)
def test_the_console_form_says_what_is_wrong(console_app, merchant, fields, message):
    answer = create_link(merchant, **fields)
    assert answer.status_code == 422
    assert message in answer.get_data(as_text=True)
    assert query(console_app.config, "SELECT * FROM payments") == []


def test_links_pages_need_a_login_and_a_csrf_token(console_app, merchant):
    stranger = console_app.test_client()
    assert stranger.get("/console/links").status_code == 302
    create_link(merchant)
    payment = only_payment(console_app)
    # Refused before the login check even looks: the stranger has no CSRF token.
    assert stranger.post(f"/console/links/{payment['id']}/disable").status_code == 400
    assert merchant.post(f"/console/links/{payment['id']}/disable").status_code == 400
    assert (
        merchant.post("/console/links", data={"amount": "1", "description": "x"}).status_code == 400
    )
    assert only_payment(console_app)["disabled_at"] is None
    assert len(query(console_app.config, "SELECT * FROM payments")) == 1


def test_a_link_made_in_another_settlement_currency_is_refused_not_charged_in_the_new_one(
    console_app, merchant
):
    """The amount means the currency the link was made in: after the shop settles in another
    (SETTLEMENT_XML changed), 15 of the old must not be charged as 15 of the new."""
    create_link(merchant)
    payment = only_payment(console_app)
    assert payment["currency"] == console_app.config["SETTLEMENT_XML"]
    console_app.config["SETTLEMENT_XML"] = "BTC"
    buyer = console_app.test_client()
    status, reason, _ = refusal_of(buyer, f"/pay/{payment['token']}")
    assert (status, reason) == (410, "disabled")
    assert pay_link_form(buyer, payment["token"]).status_code == 410
    assert query(console_app.config, "SELECT * FROM orders") == []
    assert f'data-payment="{payment["id"]}" data-state="disabled"' in links_page(merchant)


@pytest.mark.parametrize("position", ["9" * 40, "-1", "0", "x", "1e3"])
def test_odd_page_positions_and_ids_on_the_links_pages_are_no_500(console_app, merchant, position):
    create_link(merchant)
    page = merchant.get(f"/console/links?before={position}")
    # An odd position shows the newest page, with the link on it.
    assert page.status_code == 200
    assert "Invoice 7: consulting" in page.get_data(as_text=True)
    csrf = hidden_inputs(links_page(merchant))["csrf_token"]
    huge = "9" * 40
    assert (
        merchant.post(f"/console/links/{huge}/disable", data={"csrf_token": csrf}).status_code
        == 404
    )
    assert only_payment(console_app)["disabled_at"] is None


# -- over HTTP, paid through the live sandbox ------------------------------------------------


@pytest.fixture
def merchant_shop(store, sandbox_server):
    server = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
        **store,
    )
    yield server
    server.stop()


def log_in_over_http(base):
    session = requests.Session()
    csrf = hidden_inputs(session.get(f"{base}/console/login", timeout=10).text)["csrf_token"]
    answer = session.post(
        f"{base}/console/login", data={"csrf_token": csrf, "password": PASSWORD}, timeout=10
    )
    assert answer.ok and "Payment links" in answer.text
    return session


def test_a_link_paid_through_the_sandbox_shows_paid_with_its_reference(
    sandbox_server, merchant_shop
):
    shop = merchant_shop.url
    console = log_in_over_http(shop)
    page = console.get(f"{shop}/console/links", timeout=10).text
    made = console.post(
        f"{shop}/console/links",
        data={
            "csrf_token": hidden_inputs(page)["csrf_token"],
            "amount": "20.00",
            "description": "Deposit for the workshop",
            "reference": "WS-2026-11",
        },
        timeout=10,
    )
    assert made.ok and "Payment link created." in made.text
    link = re.search(r'class="link-url" href="([^"]+)"', made.text).group(1)
    assert link.startswith(f"{shop}/pay/")

    buyer = requests.Session()
    assert "Deposit for the workshop" in buyer.get(link, timeout=10).text
    form = buyer.get(f"{link}/{BTC_ROUTE}", timeout=10).text
    to_pay = buyer.post(
        f"{link}/{BTC_ROUTE}",
        data={
            **hidden_inputs(form),
            "fromValues_0": BTC_ADDRESS,
            "routeValues_0": "buyer@example.com",
            "agreement": "y",
        },
        allow_redirects=False,
        timeout=10,
    )
    payment_url = to_pay.headers["Location"]
    assert payment_url.startswith(f"{sandbox_server.url}/en/payment/")
    payment_page = buyer.get(payment_url, timeout=10).text
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(payment_page), timeout=10)
    sandbox_server.autopilot_to_done()

    (order,) = merchant_shop.query("SELECT * FROM orders")
    assert order["status"] == "done" and order["reference"] == "WS-2026-11"
    back = buyer.get(f"{shop}/orders/{order['token']}/return", timeout=10).text
    assert 'data-state="paid"' in back and "Deposit for the workshop" in back
    listing = console.get(f"{shop}/console/links", timeout=10).text
    row = re.search(r'<tr id="payment-\d+"[^>]*>', listing).group(0)
    assert 'data-state="paid"' in row and 'data-reference="WS-2026-11"' in row
    assert f"{order['token'][:8]}… paid" in listing
    order_page = console.get(f"{shop}/console/orders/{order['token']}", timeout=10).text
    assert '<strong id="reference">WS-2026-11</strong>' in order_page
    # The export carries the reference too, for the merchant's books.
    exported = list(csv.DictReader(io.StringIO(console.get(f"{shop}/console/orders.csv").text)))
    assert [(row["token"], row["state"], row["reference"]) for row in exported] == [
        (order["token"], "paid", "WS-2026-11")
    ]
    # Single use, and paid: the link now says so.
    again = buyer.get(link, timeout=10)
    assert again.status_code == 410 and "This payment has already been made." in again.text
