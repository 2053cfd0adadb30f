"""In Chromium: a Russian buyer's checkout, and a merchant working in the console."""

import re

import pytest
import requests
from playwright.sync_api import expect
from werkzeug.security import generate_password_hash

from tests.browser.test_buyer_journey_browser import AXE_SOURCE, OVERFLOWING, SERIOUS
from tests.conftest import ShopServer
from tests.helpers import BTC_ADDRESS, SETTLEMENT, buy_over_http

pytestmark = pytest.mark.browser
PASSWORD = "merchant console password"


def test_a_russian_buyer_switches_language_and_pays(page, screenshot, sandbox_server, shop_server):
    page.goto(shop_server.url)
    page.get_by_role("button", name="Русский").click()
    expect(page.get_by_role("heading", name="Каталог")).to_be_visible()
    expect(page.locator("#product-hoodie .price")).to_have_text(f"49,00 {SETTLEMENT['symbol']}")
    screenshot("catalogue-ru")

    page.locator("#product-hoodie").get_by_role("button", name="В корзину").click()
    expect(page.get_by_text("«Худи «Песочница»» в корзине.")).to_be_visible()
    page.get_by_role("link", name="Оформить заказ").click()
    expect(page.get_by_role("heading", name="Как вы хотите оплатить?")).to_be_visible()
    screenshot("routes-ru")
    page.get_by_role("link", name="Оплатить: Bitcoin").click()
    expect(page.locator("#instructions")).to_contain_text("Отправьте ровно указанную сумму")

    page.get_by_role("button", name="Перейти к оплате").click()
    expect(page.get_by_text("Чтобы продолжить, примите условия.")).to_be_visible()
    page.get_by_label("Your BTC address (for refunds)").fill(BTC_ADDRESS)
    page.get_by_label("E-mail").fill("pokupatel@example.com")
    page.get_by_label("Я принимаю условия").check()
    screenshot("requisites-ru")
    page.get_by_role("button", name="Перейти к оплате").click()

    expect(page.get_by_role("button", name="Я оплатил")).to_be_visible()
    assert "/ru/payment/" in page.url
    screenshot("exchanger-ru")
    page.get_by_role("button", name="Я оплатил").click()
    sandbox_server.run_due(advance=10)
    sandbox_server.run_due(advance=10)
    sandbox_server.wait_ipns()
    page.reload()
    page.get_by_role("link", name="Вернуться в магазин").click()
    expect(page.get_by_role("heading", name="Ваш заказ")).to_be_visible()
    expect(page.locator("#state")).to_have_text("оплачен")
    screenshot("return-ru")
    (order,) = shop_server.query("SELECT lang FROM orders")
    assert order["lang"] == "ru"


@pytest.fixture
def console_shop(tmp_path, sandbox_server):
    server = ShopServer(
        str(tmp_path / "console-shop.sqlite"),
        sandbox_server.url,
        CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
    )
    yield server
    server.stop()


def test_a_merchant_finds_refreshes_and_cancels_orders(
    page, screenshot, sandbox_server, console_shop
):
    for _ in range(2):
        buy_over_http(requests.Session(), console_shop.url, follow=False)
    paid, unpaid = console_shop.query("SELECT token, exchanger_uid FROM orders ORDER BY id")
    # The buyer paid, but the exchanger's notification was lost: only a refresh can tell.
    sandbox_server.set_faults(ipn_drop=1)
    sandbox_server.set_status(paid["exchanger_uid"], "inProgress")

    page.goto(f"{console_shop.url}/console/")
    expect(page.get_by_role("heading", name="Merchant console")).to_be_visible()
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong password.")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    expect(page.locator("tr[data-token]")).to_have_count(2)
    screenshot("orders")

    page.get_by_placeholder("Token, exchanger uid or e-mail").fill(str(paid["exchanger_uid"]))
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-token]")).to_have_count(1)
    page.locator(f"tr[data-token='{paid['token']}'] a").click()
    expect(page.locator("#status")).to_have_text("new")
    page.get_by_role("button", name="Refresh from the exchanger").click()
    expect(page.get_by_text("Asked the exchanger: applied.")).to_be_visible()
    expect(page.locator("#status")).to_have_text("inProgress")
    expect(page.get_by_role("button", name="Cancel this unpaid order")).to_have_count(0)
    screenshot("refreshed")

    page.get_by_role("link", name="All orders").click()
    page.locator(f"tr[data-token='{unpaid['token']}'] a").click()
    page.get_by_role("button", name="Cancel this unpaid order").click()
    expect(page.get_by_text("The order is cancelled.")).to_be_visible()
    expect(page.locator("#state")).to_have_text("cancelled")
    screenshot("cancelled")
    assert sandbox_server.orders()[unpaid["exchanger_uid"]]["status"] == "deleted"

    # The exchanger finishes the paid order: the dashboard draws its revenue and names it.
    sandbox_server.set_status(paid["exchanger_uid"], "done")
    page.goto(f"{console_shop.url}/console/orders/{paid['token']}")
    page.get_by_role("button", name="Refresh from the exchanger").click()
    expect(page.locator("#state")).to_have_text("paid")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Paid revenue per day"))).to_be_visible()
    expect(page.locator("#paid")).to_have_text("1")
    expect(page.locator("#conversion")).to_have_text("50.0 %")
    page.get_by_text("The numbers behind this chart").first.click()
    screenshot("dashboard")
    assert page.evaluate(OVERFLOWING) == []
    page.evaluate(AXE_SOURCE + "\n;true")  # evaluated: the shop's CSP refuses inline scripts
    assert page.evaluate(SERIOUS) == []

    page.get_by_role("button", name="Log out").click()
    page.goto(f"{console_shop.url}/console/")
    expect(page.get_by_role("heading", name="Merchant console")).to_be_visible()


def test_a_merchant_works_in_russian_on_a_phone(page, screenshot, sandbox_server, console_shop):
    """The switcher on the login page turns the whole console Russian; every page fits 375 px."""
    buy_over_http(requests.Session(), console_shop.url, follow=False)
    (order,) = console_shop.query("SELECT token FROM orders")
    page.set_viewport_size({"width": 375, "height": 740})

    page.goto(f"{console_shop.url}/console/")
    page.get_by_role("button", name="Русский").click()
    expect(page.get_by_role("heading", name="Консоль продавца")).to_be_visible()
    assert page.url.startswith(f"{console_shop.url}/console/login")  # back where it was
    page.get_by_label("Пароль").fill("not it")
    page.get_by_role("button", name="Войти").click()
    expect(page.get_by_text("Неверный пароль.")).to_be_visible()
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    expect(page.get_by_role("heading", name="Заказы")).to_be_visible()
    expect(page.locator(f"tr[data-token='{order['token']}'] td.state-pending")).to_have_text(
        "ожидает оплаты"
    )

    pages = [
        ("Заказы", "Заказы", "orders-ru"),
        ("Сводка", "Сводка", "dashboard-ru"),
        ("Платёжные ссылки", "Платёжные ссылки", "links-ru"),
        ("Ключи API", "Ключи API", "api-keys-ru"),
        ("Журнал IPN", "Журнал IPN", "ipn-ru"),
        ("Вебхуки", "Вебхуки", "webhooks-ru"),
        ("Входы", "Входы в консоль", "logins-ru"),
    ]
    for link, heading, step in pages:
        page.get_by_role("link", name=link, exact=True).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        check_console_page(page, screenshot, step)
    page.goto(f"{console_shop.url}/console/orders/{order['token']}")
    expect(page.get_by_role("heading", name="История статусов")).to_be_visible()
    check_console_page(page, screenshot, "order-ru")

    # Back to English from a console page: the same page, in English.
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Status history")).to_be_visible()
    assert page.url == f"{console_shop.url}/console/orders/{order['token']}"


def check_console_page(page, screenshot, step):
    page.wait_for_load_state("load")
    assert page.locator("html").get_attribute("lang") == "ru"
    overflowing = page.evaluate(OVERFLOWING)
    assert overflowing == [], (page.url, overflowing)
    page.evaluate(AXE_SOURCE + "\n;true")  # evaluated: the shop's CSP refuses inline scripts
    assert page.evaluate(SERIOUS) == [], page.url
    screenshot(step)
