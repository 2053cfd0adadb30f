"""In Chromium: a merchant reads the dashboard, adds a webhook endpoint, makes a payment link; a
buyer pays it; the merchant sees it paid on the dashboard and its webhook delivered."""

from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.security import generate_password_hash

from tests.conftest import ShopServer
from tests.helpers import BTC_ADDRESS, SETTLEMENT
from tests.shop.test_webhooks import EventReceiver

pytestmark = pytest.mark.browser
PASSWORD = "merchant console password"


@pytest.fixture
def link_shop(tmp_path, sandbox_server):
    server = ShopServer(
        str(tmp_path / "link-shop.sqlite"),
        sandbox_server.url,
        CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
    )
    yield server
    server.stop()


@pytest.fixture
def receiver():
    """The merchant's own system: the guide's receiver example on 127.0.0.1."""
    server = EventReceiver()
    yield server
    server.stop()


@pytest.fixture
def buyer_page(browser, pytestconfig, request):
    """A second browser (its own cookies): the buyer is not the merchant. With shot(step)."""
    context = browser.new_context()
    page = context.new_page()
    folder = Path(pytestconfig.getoption("output")) / "screenshots" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def shot(step):
        page.screenshot(path=str(folder / f"buyer-{step}.png"), full_page=True)

    page.shot = shot
    yield page
    context.close()


def test_a_merchant_makes_a_payment_link_and_sees_it_paid(
    page, buyer_page, screenshot, sandbox_server, link_shop, receiver
):
    page.goto(f"{link_shop.url}/console/")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    screenshot("dashboard-empty")

    # The merchant's system is to hear of the payment: an endpoint, its secret shown once.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("URL").fill(receiver.endpoint)
    page.get_by_role("button", name="Add endpoint").click()
    receiver.use_secret(page.locator("#secret").inner_text())
    screenshot("webhook-endpoint")

    page.get_by_role("link", name="Payment links").click()
    expect(page.get_by_role("heading", name="Payment links")).to_be_visible()
    expect(page.get_by_text("No payment links yet.")).to_be_visible()

    # A mistake first: the form says what is wrong, next to the field.
    page.get_by_label("Amount").fill("25,00")
    page.get_by_label("Description").fill("Logo design, first half")
    page.get_by_role("button", name="Create link").click()
    expect(page.locator("#amount-error")).to_contain_text("Amount must be a decimal string")
    screenshot("link-form-error")
    page.get_by_label("Amount").fill("25.00")
    page.get_by_label("Your reference (optional)").fill("DESIGN-17")
    page.get_by_role("button", name="Create link").click()
    expect(page.get_by_text("Payment link created.")).to_be_visible()
    row = page.locator("tr[data-payment]")
    expect(row).to_have_attribute("data-state", "open")
    screenshot("link-created")
    link = row.locator("a.link-url").get_attribute("href")
    assert link.startswith(f"{link_shop.url}/pay/")

    buyer = buyer_page
    buyer.goto(link)
    expect(buyer.get_by_role("heading", name="How would you like to pay?")).to_be_visible()
    expect(buyer.locator("#payment-description")).to_have_text(
        "Payment for: Logo design, first half"
    )
    expect(buyer.get_by_text(f"Your total is 25.00 {SETTLEMENT['symbol']}")).to_be_visible()
    buyer.shot("routes")
    buyer.get_by_role("link", name="Pay with Bitcoin").click()
    buyer.get_by_label("Your BTC address (for refunds)").fill(BTC_ADDRESS)
    buyer.get_by_label("E-mail").fill("client@example.com")
    buyer.get_by_label("I agree").check()
    buyer.shot("requisites")
    buyer.get_by_role("button", name="Continue to payment").click()
    expect(buyer.get_by_role("button", name="I have paid")).to_be_visible()
    buyer.shot("exchanger")
    buyer.get_by_role("button", name="I have paid").click()
    sandbox_server.autopilot_to_done()
    buyer.reload()
    buyer.locator("#back-to-shop").click()
    expect(buyer.locator("#state")).to_have_text("paid")
    expect(buyer.locator("#payment-description")).to_have_text(
        "Payment for: Logo design, first half"
    )
    buyer.shot("paid")

    page.reload()
    expect(row).to_have_attribute("data-state", "paid")
    expect(row).to_have_attribute("data-reference", "DESIGN-17")
    expect(row.locator("[data-order-state]")).to_have_attribute("data-order-state", "paid")
    screenshot("link-paid")

    # The merchant's system heard of it, signed (the receiver checks), with the reference.
    with receiver.changed:
        assert receiver.changed.wait_for(
            lambda: any(e["type"] == "payment.paid" for e in receiver.events), timeout=20
        )
        paid = [e for e in receiver.events if e["type"] == "payment.paid"]
    assert [e["data"]["reference"] for e in paid] == ["DESIGN-17"]
    page.get_by_role("link", name="Webhooks").click()
    delivered = page.locator("#events tr[data-event]", has_text="payment.paid")
    expect(delivered).to_have_attribute("data-state", "delivered")
    screenshot("webhook-delivered")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#paid")).to_have_text("1")
    screenshot("dashboard-paid")
    page.get_by_role("link", name="Payment links").click()

    # Single use: the buyer (or anyone with the link) is told it is paid.
    buyer.goto(link)
    expect(buyer.get_by_role("heading", name="Already paid")).to_be_visible()
    buyer.shot("link-used")

    # Switched off, it says so instead.
    page.get_by_role("button", name="Switch off").click()
    expect(page.get_by_text("The payment link is switched off.")).to_be_visible()
    (order,) = link_shop.query("SELECT reference, status FROM orders")
    assert order == {"reference": "DESIGN-17", "status": "done"}
