"""Catalogue and cart: add, change, remove, totals in Decimal; CSRF on every form."""

import re

import pytest

from tests.conftest import UNREACHABLE_SHOP
from tests.helpers import SETTLEMENT, create_shop, hidden_inputs


def total(client):
    match = re.search(
        r'id="cart-total" data-total="([\d.]+)"', client.get("/cart").get_data(as_text=True)
    )
    return match.group(1) if match else None


def test_the_catalogue_lists_products_with_prices_and_images(client):
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="product"') >= 5
    assert (
        f"12.50 {SETTLEMENT['symbol']}" in html
        and "USDTTRC20" not in html
        and "/static/img/mug.svg" in html
    )


def test_add_change_and_remove(client):
    client.post("/cart/add", data={"product_id": "mug", "quantity": "2"})
    client.post("/cart/add", data={"product_id": "stickers", "quantity": "3"})
    assert total(client) == "37.60"  # 2 x 12.50 + 3 x 4.20, exactly
    client.post("/cart/update", data={"product_id": "mug", "quantity": "1"})
    assert total(client) == "25.10"
    client.post(
        "/cart/update", data={"product_id": "stickers", "quantity": "3", "remove": "Remove"}
    )
    assert total(client) == "12.50"
    client.post("/cart/update", data={"product_id": "mug", "quantity": "0"})
    assert "Your cart is empty" in client.get("/cart").get_data(as_text=True)


def test_adding_more_never_passes_the_maximum(client):
    for _ in range(3):
        client.post("/cart/add", data={"product_id": "mug", "quantity": "60"})
    assert total(client) == "1237.50"  # 99 x 12.50


@pytest.mark.parametrize(
    "data",
    [
        {"product_id": "mug", "quantity": "0"},
        {"product_id": "mug", "quantity": "-3"},
        {"product_id": "mug", "quantity": "100"},
        {"product_id": "mug", "quantity": "two"},
        {"product_id": "", "quantity": "1"},
    ],
)
def test_bad_quantities_are_refused_with_a_message(client, data):
    answer = client.post("/cart/add", data=data, follow_redirects=True)
    assert answer.status_code == 200 and "Choose a quantity" in answer.get_data(as_text=True)
    assert total(client) is None


def test_unknown_products_are_404(client):
    assert (
        client.post("/cart/add", data={"product_id": "yacht", "quantity": "1"}).status_code == 404
    )
    assert (
        client.post("/cart/update", data={"product_id": "yacht", "quantity": "1"}).status_code
        == 404
    )


def test_a_tampered_session_cart_is_ignored(app, client):
    with client.session_transaction() as session:
        session["cart"] = {"mug": 2, "yacht": 1, "tee": "lots", "cap": -1}
    assert total(client) == "25.00"


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(client):
    answer = client.get("/checkout")
    assert answer.status_code == 302 and answer.location.endswith("/cart")


@pytest.fixture
def csrf_client(tmp_path):
    app = create_shop(
        {
            "TESTING": True,
            "PUBLIC_URL": UNREACHABLE_SHOP,
            "DATABASE": str(tmp_path / "s.sqlite"),
            "SANDBOX": {"BACKGROUND": False},
        }
    )
    return app.test_client()


@pytest.mark.parametrize(
    "path", ["/cart/add", "/cart/update", "/checkout/65f0c0ffee0000000000aa01"]
)
def test_every_form_needs_its_csrf_token(csrf_client, path):
    answer = csrf_client.post(path, data={"product_id": "mug", "quantity": "1"})
    assert answer.status_code == 400 and "Form expired" in answer.get_data(as_text=True)


def test_with_the_token_the_form_works(csrf_client):
    token = hidden_inputs(csrf_client.get("/").get_data(as_text=True))["csrf_token"]
    answer = csrf_client.post(
        "/cart/add", data={"product_id": "mug", "quantity": "1", "csrf_token": token}
    )
    assert answer.status_code == 302
    assert total(csrf_client) == "12.50"
