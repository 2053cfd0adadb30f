"""A buyer clicks through the whole journey in a real Chromium: catalogue to a paid order."""

import pytest
from playwright.sync_api import expect

from tests.helpers import BTC_ADDRESS, SETTLEMENT

pytestmark = pytest.mark.browser


def test_a_buyer_checks_out_pays_and_sees_the_order_paid(
    page, screenshot, sandbox_server, shop_server
):
    page.goto(shop_server.url)
    expect(page.get_by_role("heading", name="Catalogue")).to_be_visible()
    screenshot("catalogue")

    page.locator("#product-tee").get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart-total")).to_have_text(f"24.00 {SETTLEMENT['symbol']}")
    screenshot("cart")

    page.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", name="How would you like to pay?")).to_be_visible()
    screenshot("routes")
    page.get_by_role("link", name="Pay with Bitcoin").click()

    page.get_by_label("Your BTC address (for refunds)").fill("not an address")
    page.get_by_label("E-mail").fill("buyer@example.com")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_text("Enter a valid Bitcoin address")).to_be_visible()
    expect(page.get_by_text("Please accept the terms to continue.")).to_be_visible()
    screenshot("requisites-invalid")

    page.get_by_label("Your BTC address (for refunds)").fill(BTC_ADDRESS)
    page.get_by_label("I agree").check()
    screenshot("requisites-valid")
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("button", name="I have paid")).to_be_visible()
    assert page.url.startswith(f"{sandbox_server.url}/en/payment/")
    expect(page.locator(".amount")).to_contain_text("BTC")
    screenshot("exchanger-payment-page")
    page.get_by_role("button", name="I have paid").click()
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "inProgress")

    # The exchanger's operator (here: its autopilot on a moved clock) completes the order.
    sandbox_server.run_due(advance=10)
    sandbox_server.run_due(advance=10)
    sandbox_server.wait_ipns()
    page.reload()
    screenshot("exchanger-done")
    page.get_by_role("link", name="Return to the shop").click()

    expect(page.get_by_role("heading", name="Your order")).to_be_visible()
    expect(page.locator("#order-status")).to_have_attribute("data-state", "paid")
    expect(page.locator("#state")).to_have_text("paid")
    expect(page.locator("#claimed")).to_have_attribute("data-claim", "success")
    screenshot("return-page")


def test_the_return_page_updates_itself_when_the_ipn_arrives(
    page, screenshot, sandbox_server, shop_server
):
    page.goto(shop_server.url)
    page.locator("#product-cap").get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Check out").click()
    page.get_by_role("link", name="Pay with Bitcoin").click()
    page.get_by_label("Your BTC address (for refunds)").fill(BTC_ADDRESS)
    page.get_by_label("E-mail").fill("buyer@example.com")
    page.get_by_label("I agree").check()
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_role("button", name="I have paid")).to_be_visible()

    (order,) = shop_server.query("SELECT token, exchanger_uid FROM orders")
    page.goto(f"{shop_server.url}/orders/{order['token']}/return")
    expect(page.locator("#state")).to_have_text("waiting for payment")
    screenshot("pending")
    sandbox_server.set_status(order["exchanger_uid"], "done")
    # No reload: the page's own polling shows the change.
    expect(page.locator("#order-status")).to_have_attribute("data-state", "paid", timeout=20_000)
    expect(page.locator("#state")).to_have_text("paid")
    expect(page.locator("#polling")).to_be_hidden()
    screenshot("paid-without-reload")
