"""The buyer's whole journey over real HTTP: the shop and the sandbox each live on a free port."""

import re

import pytest
import requests

from shop.words import NEXT_STEP, STATUS_WORDS, STEPS
from tests.conftest import BOTH_ENGINES
from tests.helpers import (
    BTC_ROUTE,
    SETTLEMENT,
    add_to_cart_over_http,
    buy_over_http,
    hidden_inputs,
    submit_requisites_over_http,
)

pytestmark = BOTH_ENGINES


def test_buy_pay_and_see_the_order_done(sandbox_server, shop_server):
    buyer = requests.Session()
    shop = shop_server.url

    add_to_cart_over_http(buyer, shop, "tee", 2)
    assert f"48.00 {SETTLEMENT['symbol']}" in buyer.get(f"{shop}/cart", timeout=10).text

    routes = buyer.get(f"{shop}/checkout", timeout=10).text
    assert f'data-route="{BTC_ROUTE}"' in routes
    form_page = buyer.get(f"{shop}/checkout/{BTC_ROUTE}", timeout=10).text
    invalid = submit_requisites_over_http(
        buyer, shop, form_page, fromValues_0="my wallet", routeValues_0="me"
    )
    assert (
        "Enter a valid Bitcoin address" in invalid.text and "Enter a valid e-mail" in invalid.text
    )
    assert shop_server.query("SELECT * FROM orders") == []

    to_payment = submit_requisites_over_http(buyer, shop, invalid.text, follow=False)
    payment_url = to_payment.headers["Location"]
    assert payment_url.startswith(f"{sandbox_server.url}/en/payment/")

    # On the exchanger's page: pay, then let the exchanger's autopilot finish the order.
    # The shop sends skipPreview, so though the sandbox starts orders in `new` by default, the
    # buyer pays at once: no confirm step, here or on the shop's order page.
    payment_page = buyer.get(payment_url, timeout=10).text
    assert (
        "I have paid" in payment_page and "TMerchantPayoutWa11etSandboxDemoXq" not in payment_page
    )
    assert 'id="confirm"' not in payment_page
    (draft,) = shop_server.query("SELECT token FROM orders")
    before = buyer.get(f"{shop}/orders/{draft['token']}/return", timeout=10).text
    assert "Continue to payment" in before and 'id="confirm-step"' not in before
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(payment_page), timeout=10)
    sandbox_server.autopilot_to_done()

    (order,) = shop_server.query("SELECT * FROM orders")
    assert order["status"] == "done" and order["review_reason"] is None
    sources = shop_server.query("SELECT new_status, source FROM status_history ORDER BY id")
    assert [s["source"] for s in sources].count("ipn") == 3
    outcomes = [row["outcome"] for row in shop_server.query("SELECT outcome FROM ipn_log")]
    assert outcomes == ["applied", "applied", "applied"]

    done_page = buyer.get(payment_url, timeout=10).text
    back = re.search(r'id="back-to-shop" href="([^"]+)"', done_page).group(1).replace("&amp;", "&")
    assert back == f"{shop}/orders/{order['token']}/return?status=success"
    returned = buyer.get(back, timeout=10).text
    assert 'data-state="paid"' in returned and "Hash T-shirt" in returned
    status = buyer.get(f"{shop}/orders/{order['token']}/status", timeout=10).json()
    steps = status.pop("steps")
    assert status == {
        "status": "done",
        "status_word": STATUS_WORDS["done"],
        "state": "paid",
        "label": "paid",
        "next_step": NEXT_STEP["done"],
        "can_pay": False,
        "minutes_left": None,  # paid: no clock
        "time_left": None,
        "final": True,
        "reported_out": order["reported_out"],
        "unreachable": None,  # final: nothing left to ask
    }
    # Every step of the timeline reached, each with its time from the status history.
    assert [s["key"] for s in steps] == [key for key, _label, _statuses in STEPS]
    assert all(s["done"] and s["time"] for s in steps) and steps[-1]["current"]


def test_a_lost_ipn_is_made_good_by_the_return_page(sandbox_server, shop_server):
    sandbox_server.set_faults(ipn_drop=1)
    buyer = requests.Session()
    shop = shop_server.url
    buy_over_http(buyer, shop, "cap", follow=False)
    (order,) = shop_server.query("SELECT * FROM orders")
    sandbox_server.set_status(order["exchanger_uid"], "done")
    sandbox_server.wait_ipns()
    assert shop_server.query("SELECT status FROM orders")[0]["status"] == "new"
    page = buyer.get(f"{shop}/orders/{order['token']}/return?status=success", timeout=10).text
    assert 'data-state="paid"' in page
    history = shop_server.query("SELECT new_status, source FROM status_history ORDER BY id")
    assert history[-1] == {"new_status": "done", "source": "poll"}


# Every reading of what the docs leave open, as the sandbox plays it; each run also forges a
# `done` for every change. The shop must pay out on the real ones and refuse every forgery.
FLOW_VARIANTS = (
    [
        {"ipn_checksum_field": name, "ipn_checksum_in": where}
        for name in ("hash", "sign", "signature", "checksum")
        for where in ("body", "query")
    ]
    + [
        {"ipn_encoding": encoding, "ipn_amounts": amounts}
        for encoding in ("form", "json")
        for amounts in ("plain", "zeros", "exponent")
    ]
    # A site that ignores the shop's skipPreview: the buyer confirms first; and a site that
    # starts every order waiting for payment.
    + [
        {"skip_preview": "ignored"},
        {"skip_preview": "ignored", "ipn_encoding": "json"},
        {"start_status": "waitPayment"},
    ]
)


@pytest.mark.parametrize("variant", FLOW_VARIANTS, ids=lambda v: "-".join(v.values()))
def test_the_journey_in_every_variant_with_forgeries(sandbox_server, shop_server, variant):
    sandbox_server.set_faults(ipn_forge=1, seed=3, **variant)
    buyer = requests.Session()
    shop = shop_server.url
    payment_url = buy_over_http(buyer, shop, "mug", follow=False).headers["Location"]
    (order,) = shop_server.query("SELECT * FROM orders")
    changes = 3
    if variant.get("skip_preview") == "ignored":
        # The exchanger waits for the payer to confirm; the shop's order page says so.
        page = buyer.get(f"{shop}/orders/{order['token']}/return", timeout=10).text
        assert 'id="confirm-step"' in page and "Continue to payment" in page
        confirm_page = buyer.get(payment_url, timeout=10).text
        assert 'id="confirm"' in confirm_page and 'id="paid"' not in confirm_page
        buyer.post(f"{payment_url}/confirm", data=hidden_inputs(confirm_page), timeout=10)
        changes += 1
    payment_page = buyer.get(payment_url, timeout=10).text
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(payment_page), timeout=10)
    sandbox_server.autopilot_to_done()

    (order,) = shop_server.query("SELECT * FROM orders")
    assert order["status"] == "done" and order["review_reason"] is None
    log = shop_server.query("SELECT outcome, checksum_field FROM ipn_log")
    applied = [row for row in log if row["outcome"] == "applied"]
    assert len(applied) == changes and len(log) == 2 * changes
    assert [row["outcome"] for row in log].count("rejected") == changes
    where = f"{variant.get('ipn_checksum_in', 'body')}:{variant.get('ipn_checksum_field', 'hash')}"
    assert {row["checksum_field"] for row in applied} == {where}
    status = buyer.get(f"{shop}/orders/{order['token']}/status", timeout=10).json()
    assert status["state"] == "paid"
