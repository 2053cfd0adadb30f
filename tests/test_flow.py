"""The buyer's whole journey over real HTTP: the shop and the sandbox each live on a free port."""

import re

import requests

from tests.helpers import (
    BTC_ROUTE,
    add_to_cart_over_http,
    buy_over_http,
    hidden_inputs,
    submit_requisites_over_http,
)


def test_buy_pay_and_see_the_order_done(sandbox_server, shop_server):
    buyer = requests.Session()
    shop = shop_server.url

    add_to_cart_over_http(buyer, shop, "tee", 2)
    assert "48.00 USDTTRC20" in buyer.get(f"{shop}/cart", timeout=10).text

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
    payment_page = buyer.get(payment_url, timeout=10).text
    assert (
        "I have paid" in payment_page and "TMerchantPayoutWa11etSandboxDemoXq" not in payment_page
    )
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(payment_page), timeout=10)
    sandbox_server.run_due(advance=10)
    sandbox_server.run_due(advance=10)
    sandbox_server.wait_ipns()

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
    assert status == {
        "status": "done",
        "state": "paid",
        "label": "paid",
        "final": True,
        "reported_out": order["reported_out"],
    }


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
