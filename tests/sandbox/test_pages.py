"""The payer's pages and the operator's page, as a browser would use them (real HTTP, CSRF on)."""

import re

import pytest
import requests

from tests.helpers import hidden_inputs


def create(server, **changes):
    from tests.helpers import btc_order

    return server.data("POST", "public/exchanger/order/create", json=btc_order(**changes))


def page(server, order, lang="en", kind="payment", session=None):
    http = session or requests
    return http.get(f"{server.url}/{lang}/{kind}/{order['uid']}/{order['secret']}", timeout=10)


def press(server, session, order, action, lang="en"):
    """Click a payer page button: load the page for its CSRF token, then post the form."""
    html = page(server, order, lang, session=session).text
    token = hidden_inputs(html)["csrf_token"]
    url = f"{server.url}/{lang}/payment/{order['uid']}/{order['secret']}/{action}"
    return session.post(url, data={"csrf_token": token}, timeout=10)


def test_payment_page_says_what_to_send_where_and_how_long_is_left(sandbox_server):
    order = create(sandbox_server)
    response = page(sandbox_server, order)
    assert response.status_code == 200
    html = response.text
    assert "0.01 BTC" in html and "bc1qsandbox0demo0deposit0address0btc7k3q9" in html
    assert re.search(r'class="time-left">(29|30) min', html)
    assert 'http-equiv="refresh"' in html and "I have paid" in html and "Cancel the order" in html
    # hideOutData: the merchant's payout wallet is not shown.
    assert "TMerchantPayoutWa11etSandboxDemoXq" not in html


def test_payment_page_in_russian_and_the_order_page_with_payout_shown(sandbox_server):
    order = create(sandbox_server, hideOutData=False)
    russian = page(sandbox_server, order, lang="ru").text
    assert "Я оплатил" in russian and "Ожидает оплаты" in russian and "Отправьте ровно" in russian
    shown = page(sandbox_server, order, kind="order").text
    assert "TMerchantPayoutWa11etSandboxDemoXq" in shown


@pytest.mark.parametrize("wrong", ["secret", "uid", "lang", "huge_uid", "text_uid"])
def test_a_wrong_uid_secret_or_language_is_a_plain_404(sandbox_server, wrong):
    order = create(sandbox_server)
    uid, secret, lang = order["uid"], order["secret"], "en"
    if wrong == "secret":
        secret = "A" * 24
    elif wrong == "uid":
        uid = uid + 1
    elif wrong == "huge_uid":
        uid = 10**30
    elif wrong == "text_uid":
        uid = "1e3"
    else:
        lang = "de"
    response = requests.get(f"{sandbox_server.url}/{lang}/payment/{uid}/{secret}", timeout=10)
    assert response.status_code == 404
    assert order["secret"] not in response.text


def test_i_have_paid_moves_to_in_progress_and_cancel_is_then_refused(sandbox_server):
    order = create(sandbox_server)
    session = requests.Session()
    # A cancel button left open in another tab, with a valid token.
    token = hidden_inputs(page(sandbox_server, order, session=session).text)["csrf_token"]
    html = press(sandbox_server, session, order, "paid").text
    assert sandbox_server.orders()[order["uid"]]["status"] == "inProgress"
    assert "Cancel the order" not in html and "Payment being checked" in html
    url = f"{sandbox_server.url}/en/payment/{order['uid']}/{order['secret']}/cancel"
    assert session.post(url, data={"csrf_token": token}, timeout=10).status_code == 200
    assert sandbox_server.orders()[order["uid"]]["status"] == "inProgress"


def test_cancel_ends_the_order_with_a_way_back_that_says_error(sandbox_server):
    order = create(sandbox_server, clientCallbackUrl="http://127.0.0.1:9/orders/t/return?ref=a")
    session = requests.Session()
    html = press(sandbox_server, session, order, "cancel").text
    assert sandbox_server.orders()[order["uid"]]["status"] == "deleted"
    back = re.search(r'id="back-to-shop" href="([^"]+)"', html).group(1)
    assert back == "http://127.0.0.1:9/orders/t/return?ref=a&amp;status=error"
    assert 'http-equiv="refresh"' not in html


def test_a_done_order_returns_with_status_success(sandbox_server):
    order = create(sandbox_server)
    sandbox_server.set_status(order["uid"], "done")
    html = page(sandbox_server, order).text
    assert 'href="http://127.0.0.1:9/orders/abc/return?status=success"' in html


def test_buttons_need_the_csrf_token(sandbox_server):
    order = create(sandbox_server)
    url = f"{sandbox_server.url}/en/payment/{order['uid']}/{order['secret']}/paid"
    assert requests.post(url, timeout=10).status_code == 400
    assert sandbox_server.orders()[order["uid"]]["status"] == "waitPayment"


def test_the_payers_buttons_need_the_right_secret(sandbox_server):
    order = create(sandbox_server)
    session = requests.Session()
    token = hidden_inputs(page(sandbox_server, order, session=session).text)["csrf_token"]
    url = f"{sandbox_server.url}/en/payment/{order['uid']}/{'B' * 24}/paid"
    assert session.post(url, data={"csrf_token": token}, timeout=10).status_code == 404
    assert sandbox_server.orders()[order["uid"]]["status"] == "waitPayment"


def test_operator_page_lists_orders_and_moves_one_to_any_status(sandbox_server):
    order = create(sandbox_server)
    session = requests.Session()
    html = session.get(f"{sandbox_server.url}/operator", timeout=10).text
    assert f'data-uid="{order["uid"]}">waitPayment' in html
    token = hidden_inputs(html)["csrf_token"]
    url = f"{sandbox_server.url}/operator/orders/{order['uid']}/status"
    answer = session.post(url, data={"csrf_token": token, "status": "hold"}, timeout=10)
    assert f'data-uid="{order["uid"]}">hold' in answer.text
    session.post(url, data={"csrf_token": token, "status": "bogus"}, timeout=10)
    assert sandbox_server.orders()[order["uid"]]["status"] == "hold"
    assert session.post(url, data={"status": "done"}, timeout=10).status_code == 400


def test_operator_api_sets_any_status_and_refuses_nonsense(sandbox_server, receiver):
    order = create(sandbox_server, ipnUrl=f"{receiver.url}/ipn")
    assert sandbox_server.set_status(order["uid"], "errorPayout")["ok"] == 1
    assert sandbox_server.set_status(order["uid"], "errorPayout")["ok"] == 0
    assert sandbox_server.set_status(order["uid"], "returned")["ok"] == 1
    for body in ({"orderUID": order["uid"], "status": "paid"}, {"orderUID": "x", "status": "done"}):
        answer = sandbox_server.api("POST", "sandbox/order/set-status", json=body)
        assert answer["success"] is False
    sandbox_server.wait_ipns()
    assert [d["new_status"] for d in sandbox_server.deliveries(order["uid"])] == [
        "errorPayout",
        "returned",
    ]
