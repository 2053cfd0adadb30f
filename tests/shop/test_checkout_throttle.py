"""Checkout is throttled per buyer session and per address, with a clear message."""

from tests.conftest import BOTH_ENGINES
from tests.helpers import BTC_ROUTE, place_order, query, submit_requisites

pytestmark = BOTH_ENGINES

RU = {"Accept-Language": "ru"}
MESSAGE = "You have started many orders in a short time."


def try_order(client, headers=None):
    """Check out once more; the answer to the submit."""
    client.post("/cart/add", data={"product_id": "mug", "quantity": "1"})
    page = client.get(f"/checkout/{BTC_ROUTE}", headers=headers).get_data(as_text=True)
    return submit_requisites(client, page, headers=headers)


def exchanger_orders(app):
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/orders"
    return exchanger.session.get(url, timeout=5).json()["data"]["orders"]


def test_one_session_cannot_start_orders_without_end(app, client):
    for _ in range(app.config["CHECKOUT_LIMIT_PER_SESSION"]):
        place_order(client)
    refused = try_order(client)
    assert refused.status_code == 429 and MESSAGE in refused.get_data(as_text=True)
    assert len(query(app.config, "SELECT id FROM orders")) == 10
    assert len(exchanger_orders(app)) == 10
    # Another buyer is not held up by this one.
    assert "/payment/" in place_order(app.test_client())


def test_new_sessions_from_one_address_are_throttled_too(app):
    app.config["CHECKOUT_LIMIT_PER_ADDRESS"] = 3
    for _ in range(3):
        place_order(app.test_client())
    refused = try_order(app.test_client())
    assert refused.status_code == 429 and MESSAGE in refused.get_data(as_text=True)
    assert len(exchanger_orders(app)) == 3


def test_the_message_speaks_russian(app, client):
    app.config["CHECKOUT_LIMIT_PER_SESSION"] = 1
    place_order(client)
    refused = try_order(client, headers=RU).get_data(as_text=True)
    assert "Вы начали много заказов за короткое время." in refused
