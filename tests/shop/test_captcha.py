"""A site that wants a captcha for server-side orders (error 1601588666628861): a clear refusal.

Whether real sites do is not public; the sandbox's `captcha: unsigned` variant plays it.
"""

import logging

from tests.helpers import BTC_ROUTE, create_shop, query, submit_requisites
from tests.shop.test_discovery import run, shop_for


def shop(tmp_path, **settings):
    return create_shop(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE": str(tmp_path / "shop.sqlite"),
            "WTF_CSRF_ENABLED": False,
            "SANDBOX": {"BACKGROUND": False, "FAULTS": {"captcha": "unsigned"}, **settings},
        }
    )


def test_checkout_tells_the_buyer_and_the_merchant_log_says_why(tmp_path, caplog):
    app = shop(tmp_path)
    client = app.test_client()
    client.post("/cart/add", data={"product_id": "mug", "quantity": "1"})
    page = client.get(f"/checkout/{BTC_ROUTE}").get_data(as_text=True)
    with caplog.at_level(logging.ERROR):
        answer = submit_requisites(client, page)
    assert answer.status_code == 422
    assert "The exchanger could not take this order" in answer.get_data(as_text=True)
    (order,) = query(app.config, "SELECT status, create_error FROM orders")
    assert order["status"] == "create_failed" and "1601588666628861" in order["create_error"]
    assert "asks for a captcha" in caplog.text and "EXCHANGER_API_KEY" in caplog.text


def test_create_test_order_names_the_captcha(tmp_path, sandbox_server):
    sandbox_server.set_faults(captcha="unsigned")
    result = run(shop_for(tmp_path, sandbox_server.url), "check", "--create-test-order")
    assert result.exit_code == 1 and "asks for a captcha (1601588666628861)" in result.output
    assert sandbox_server.orders() == {}
