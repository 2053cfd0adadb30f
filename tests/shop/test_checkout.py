"""Checkout against the embedded sandbox: routes, the form, exchanger errors, double submits."""

import re

import pytest

from shop.exchanger import ExchangerRejected, ExchangerUnavailable
from tests.conftest import BOTH_ENGINES
from tests.helpers import (
    BTC_ADDRESS,
    BTC_ROUTE,
    HIDDEN_ROUTE,
    TON_ROUTE,
    hidden_inputs,
    place_order,
    query,
)

pytestmark = BOTH_ENGINES


def rows(app, sql, *args):
    return query(app.config, sql, *args)


@pytest.fixture
def cart(client):
    client.post("/cart/add", data={"product_id": "mug", "quantity": "2"})
    return client


def form_for(client, route_id=BTC_ROUTE, **values):
    key = hidden_inputs(client.get(f"/checkout/{route_id}").get_data(as_text=True))["checkout_key"]
    data = {
        "checkout_key": key,
        "fromValues_0": BTC_ADDRESS,
        "routeValues_0": "buyer@example.com",
        "agreement": "y",
    }
    data.update(values)
    return data


def test_route_choice_offers_only_routes_into_the_settlement_currency(cart):
    html = cart.get("/checkout").get_data(as_text=True)
    offered = re.findall(r'data-route="(\w+)"', html)
    assert BTC_ROUTE in offered and HIDDEN_ROUTE not in offered
    assert "65f0c0ffee0000000000ab01" not in offered  # BTC -> card RUB
    assert (
        'data-send="0.00040467">0.00040467 BTC</strong>' in html
    )  # (25 + 1 fee) x rate, rounded up


def test_a_route_whose_limits_the_cart_misses_is_shown_but_not_offered(cart):
    html = cart.get("/checkout").get_data(as_text=True)
    card = html[html.index('data-route="65f0c0ffee0000000000aa06"') :]
    card = card[: card.index("</li>")]
    # Card USD needs at least 10 USD; 25 USDT is fine. XRP needs 20 XRP minimum: 25 USDT is 44 XRP.
    assert "Pay with" in card
    cart.post("/cart/update", data={"product_id": "mug", "quantity": "0"})
    cart.post("/cart/add", data={"product_id": "stickers", "quantity": "1"})
    html = cart.get("/checkout").get_data(as_text=True)
    card = html[html.index('data-route="65f0c0ffee0000000000aa06"') :]
    assert "below this route" in card[: card.index("</li>")]


def test_the_requisite_form_is_built_from_the_route(cart):
    html = cart.get(f"/checkout/{BTC_ROUTE}").get_data(as_text=True)
    assert "Your BTC address (for refunds)" in html and 'placeholder="bc1q..."' in html
    assert "E-mail" in html and 'name="agreement"' in html
    # The payout wallet is the merchant's, never asked of the buyer.
    assert "USDT TRC20 wallet" not in html


@pytest.mark.parametrize(
    "route_id", [HIDDEN_ROUTE, "65f0c0ffee0000000000ab01", "nope!", "65f0c0ffee0000000000ffff"]
)
def test_routes_not_on_offer_are_404(cart, route_id):
    assert cart.get(f"/checkout/{route_id}").status_code == 404


def test_invalid_requisites_show_errors_and_create_nothing(app, cart):
    answer = cart.post(
        f"/checkout/{BTC_ROUTE}", data=form_for(cart, fromValues_0="not-btc", agreement="")
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "Enter a valid Bitcoin address" in html and "Please accept the terms" in html
    assert rows(app, "SELECT * FROM orders") == []


def test_a_valid_checkout_creates_one_order_and_redirects_to_the_payment_page(app, client):
    location = place_order(client, quantity=2)
    (order,) = rows(app, "SELECT * FROM orders")
    assert (
        location
        == f"http://127.0.0.1:1/sandbox/en/payment/{order['exchanger_uid']}/{order['exchanger_secret']}"
    )
    assert (
        order["status"] == "new"
        and order["price"] == "25.00"
        and order["buyer_email"] == "buyer@example.com"
    )
    assert len(order["ipn_secret"]) >= 40 and order["quoted_out"] is not None
    # Hex, so `flask ipn send TOKEN` never mistakes a token starting with "-" for an option.
    assert re.fullmatch(r"[0-9a-f]{32}", order["token"])
    items = rows(app, "SELECT product_id, unit_price, quantity FROM order_items")
    assert items == [{"product_id": "mug", "unit_price": "12.50", "quantity": 2}]
    history = rows(app, "SELECT old_status, new_status, source FROM status_history ORDER BY id")
    assert [(h["new_status"], h["source"]) for h in history] == [
        ("draft", "checkout"),
        ("new", "create"),
    ]
    assert "Your cart is empty" in client.get("/cart").get_data(as_text=True)


def test_what_the_exchanger_was_sent(app, client):
    sent = []
    exchanger = app.extensions["exchanger"]
    original = exchanger.create_order
    exchanger.create_order = lambda payload: sent.append(payload) or original(payload)
    place_order(client)
    (order,) = rows(app, "SELECT * FROM orders")
    (payload,) = sent
    assert payload["clientCallbackUrl"] == f"http://127.0.0.1:1/orders/{order['token']}/return"
    assert (
        payload["ipnUrl"] == "http://127.0.0.1:1/ipn"
        and payload["ipnSecret"] == order["ipn_secret"]
    )
    assert (
        payload["hideOutData"] is True and payload["agreement"] is True and payload["lang"] == "en"
    )
    # The buyer is sent straight to pay: no confirm step at the exchanger.
    assert payload["skipPreview"] is True
    assert payload["toValues"] == [
        {"key": "65f0c0ffee00000000000d10", "value": "TMerchantPayoutWa11etSandboxDemoXq"}
    ]
    assert str(payload["amount"]) == order["send_amount"]


def test_a_double_submit_creates_one_order(app, cart):
    data = form_for(cart)
    first = cart.post(f"/checkout/{BTC_ROUTE}", data=data)
    second = cart.post(f"/checkout/{BTC_ROUTE}", data=data)
    assert len(rows(app, "SELECT * FROM orders")) == 1
    token = rows(app, "SELECT token FROM orders")[0]["token"]
    assert second.location == f"/orders/{token}/pay"
    assert cart.get(second.location).location == first.location


def test_a_requisite_the_exchanger_refuses_is_shown_on_its_field(app, cart):
    exchanger = app.extensions["exchanger"]

    def refuse(payload):
        raise ExchangerRejected(
            "Param fromValues isn't valid",
            code=6231546409213868,
            obj={"fieldId": "65f0c0ffee00000000000d01", "type": "fromValues", "err": "regexp"},
        )

    exchanger.create_order = refuse
    answer = cart.post(f"/checkout/{BTC_ROUTE}", data=form_for(cart))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="fromValues_0-error">The exchanger did not accept this value.' in html
    (order,) = rows(app, "SELECT * FROM orders")
    assert order["status"] == "create_failed" and "6231546409213868" in order["create_error"]
    # The form comes back with a fresh key, so correcting it makes a new order.
    assert hidden_inputs(html)["checkout_key"] != order["checkout_key"]


@pytest.mark.parametrize(("acted", "status"), [(False, "create_failed"), (True, "draft")])
def test_an_exchanger_that_does_not_answer_gets_a_retry_page_and_a_record(app, cart, acted, status):
    exchanger = app.extensions["exchanger"]

    def down(payload):
        raise ExchangerUnavailable("order/create: ReadTimeout", may_have_acted=acted)

    exchanger.create_order = down
    answer = cart.post(f"/checkout/{BTC_ROUTE}", data=form_for(cart))
    html = answer.get_data(as_text=True)
    assert answer.status_code == 503 and "Try again" in html and "ReadTimeout" not in html
    (order,) = rows(app, "SELECT * FROM orders")
    assert order["status"] == status and order["create_error"] == "order/create: ReadTimeout"
    assert "Your cart is empty" not in cart.get("/cart").get_data(as_text=True)


@pytest.mark.parametrize("kind", ["envelope", "http500", "html", "badjson"])
def test_a_broken_exchanger_never_shows_a_500(app, cart, kind):
    form = form_for(cart)
    faults = app.extensions["exchanger"]
    faults.session.request(
        "POST",
        f"{faults.base_url}/service/api/v1/sandbox/faults",
        json={"api_error": 1, "api_error_kinds": [kind]},
        timeout=5,
    )
    app.config["ROUTE_CACHE_SECONDS"] = 0  # every page must ask the broken exchanger
    pages = [cart.get("/checkout"), cart.get(f"/checkout/{BTC_ROUTE}")]
    # Pages may show what the route cache holds (with a notice) or a clear error page.
    for answer in pages:
        assert answer.status_code in (200, 503), answer.status_code
        assert "Traceback" not in answer.get_data(as_text=True)
    # Placing the order reads the route fresh: no stale rate, so a clear error instead.
    placed = cart.post(f"/checkout/{BTC_ROUTE}", data=form)
    assert placed.status_code in (503, 422) and "Traceback" not in placed.get_data(as_text=True)


def test_the_return_page_shows_the_stored_status_not_the_claim(app, client):
    place_order(client)
    (order,) = rows(app, "SELECT * FROM orders")
    html = client.get(f"/orders/{order['token']}/return?status=success").get_data(as_text=True)
    assert 'data-claim="success"' in html and "as soon as the exchanger confirms" in html
    assert 'data-state="pending"' in html
    assert 'data-final="false"' in html
    # The return visit asked the exchanger: the order waits for payment there.
    status = client.get(f"/orders/{order['token']}/status").get_json()
    assert (status["status"], status["state"], status["final"]) == ("waitPayment", "pending", False)


def test_the_return_page_ignores_odd_claims_and_unknown_tokens_are_404(app, client):
    place_order(client)
    (order,) = rows(app, "SELECT * FROM orders")
    html = client.get(f"/orders/{order['token']}/return?status=<script>").get_data(as_text=True)
    assert 'id="claimed"' not in html and "<script>" not in html
    assert client.get("/orders/no-such-token/return").status_code == 404
    assert client.get("/orders/no-such-token/status").status_code == 404
    assert client.get("/orders/no-such-token/pay").status_code == 404


def test_a_route_above_the_exchangers_reserve_says_so(client):
    client.post("/cart/add", data={"product_id": "hoodie", "quantity": "25"})
    html = client.get(f"/checkout/{TON_ROUTE}").get_data(as_text=True)
    assert "reserve" in html and 'id="requisites-form"' not in html
