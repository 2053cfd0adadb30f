"""In Chromium at phone and desktop width, en and ru: the journey a buyer sees (issue 14).

Each buyer page is checked for what a person would notice: no exchanger code where a word
belongs (codes taken from the route data and the status list), nothing sticking out of its box,
and no serious or critical accessibility violation by axe-core (from npm, injected here).
"""

import re
from pathlib import Path

import pytest
from babel.support import Translations
from playwright.sync_api import expect

from sandbox.routes import RouteBook
from shop.i18n import TRANSLATIONS
from shop.orders import CREATE_FAILED, DRAFT, EXCHANGER_STATUSES
from shop.words import STATUS_WORDS, STEPS
from tests.helpers import BTC_ADDRESS, BTC_ROUTE

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
assert AXE.exists(), "axe-core is missing: run `make test` (it runs `npm ci`)"
AXE_SOURCE = AXE.read_text(encoding="utf-8")
CURRENCIES = list(RouteBook().currencies.values())
# A code that is also the short unit people know (BTC) may stand after an amount; the others
# (USDTTRC20, CARDUSD) are the exchanger's, never a buyer's.
CURRENCY_CODES = [c["xml"] for c in CURRENCIES if c["xml"] != c["symbol"]]
# Status codes that cannot pass for an ordinary word in a sentence.
STATUS_CODES = [
    s for s in (*EXCHANGER_STATUSES, DRAFT, CREATE_FAILED) if s != s.lower() or "_" in s
]
WIDTHS = {"phone": (375, 740), "desktop": (1280, 800)}

# Elements whose right edge lies beyond their parent's, outside any scrolling box.
OVERFLOWING = """() => {
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const parent = el.parentElement;
    if (!parent || el.getClientRects().length === 0) continue;
    let scroller = parent, scrolls = false;
    while (scroller && scroller !== document.body) {
      if (getComputedStyle(scroller).overflowX !== "visible") { scrolls = true; break; }
      scroller = scroller.parentElement;
    }
    if (scrolls) continue;
    const box = el.getBoundingClientRect(), outer = parent.getBoundingClientRect();
    if (box.right > outer.right + 1 || box.left < outer.left - 1) {
      found.push(el.tagName + (el.id ? "#" + el.id : "") + "." + el.className);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth) found.push("page");
  return found;
}"""

SERIOUS = """async () => (await axe.run(document)).violations
  .filter(v => v.impact === "serious" || v.impact === "critical")
  .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "))"""


def check_buyer_page(page, screenshot, step):
    """What a buyer would notice on this page, then a screenshot of it."""
    page.wait_for_load_state("load")
    text = page.inner_text("body")
    for code in CURRENCY_CODES + STATUS_CODES:
        assert not re.search(rf"\b{re.escape(code)}\b", text), f"{code} shown on {page.url}"
    assert page.evaluate(OVERFLOWING) == [], page.url
    # Evaluated, not added as a <script>: the shop's CSP rightly refuses inline scripts.
    page.evaluate(AXE_SOURCE + "\n;true")
    assert page.evaluate(SERIOUS) == [], page.url
    screenshot(step)


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_buyer_pays_leaves_and_comes_back(
    page, screenshot, sandbox_server, shop_server, width, lang
):
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    page.goto(shop_server.url)
    if lang == "ru":
        page.get_by_role("button", name="Русский").click()
        expect(page.locator("html")).to_have_attribute("lang", "ru")
    check_buyer_page(page, screenshot, "catalogue")

    page.locator("#product-hoodie button[type=submit]").click()
    expect(page.locator("#cart-count")).to_contain_text("1")
    page.locator("#cart-link").click()
    check_buyer_page(page, screenshot, "cart")

    page.locator("a.button.primary").click()
    route = page.locator(f"li.route[data-route='{BTC_ROUTE}']")
    expect(route.locator("h2")).to_have_text("Bitcoin")
    # The rate as people read it: one of the dearer currency, in the other one.
    expect(route.locator(".rate")).to_contain_text("1 BTC ≈")
    check_buyer_page(page, screenshot, "routes")

    # The route card's button is reachable from the keyboard.
    link = route.locator("a.button")
    for _ in range(40):
        page.keyboard.press("Tab")
        if link.evaluate("el => el === document.activeElement"):
            break
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    page.get_by_label("Your BTC address (for refunds)").fill(BTC_ADDRESS)
    page.get_by_label("E-mail").fill("buyer@example.com")
    page.locator("input[type=checkbox]").check()
    check_buyer_page(page, screenshot, "requisites")
    page.locator("#place-order").click()
    expect(page.locator("#paid")).to_be_visible()
    assert f"/{lang}/payment/" in page.url

    # The buyer closes the exchanger's tab and comes back to the shop later.
    page.goto(shop_server.url)
    page.locator("#your-orders").click()
    check_buyer_page(page, screenshot, "your-orders")
    page.locator(".your-orders a").first.click()
    box = page.locator("#order-status")
    expect(box).to_have_attribute("data-state", "pending")
    expect(page.locator("#timeline [data-step='waiting']")).to_have_attribute(
        "aria-current", "step"
    )
    check_buyer_page(page, screenshot, "order-waiting")
    order_page = page.url

    page.locator("#continue-to-payment").click()
    page.locator("#paid").click()
    page.goto(order_page)
    # No reload from here: the page's own polling moves the timeline on.
    expect(page.locator("#timeline [data-step='received']")).to_have_attribute(
        "aria-current", "step", timeout=30_000
    )
    expect(page.locator("#continue")).to_be_hidden()
    check_buyer_page(page, screenshot, "order-received")
    sandbox_server.run_due(advance=10)
    sandbox_server.run_due(advance=10)
    sandbox_server.wait_ipns()
    expect(box).to_have_attribute("data-state", "paid", timeout=30_000)
    steps = page.locator("#timeline li")
    expect(steps).to_have_count(len(STEPS))
    expect(page.locator("#timeline li.done .time")).to_have_count(len(STEPS))
    expect(page.locator("#polling")).to_be_hidden()
    status = page.locator("#status")
    expect(status).to_have_attribute("data-status", "done")
    # The word for done in the buyer's language, from the message catalogue.
    catalogue = Translations.load(str(TRANSLATIONS), [lang])
    expect(status).to_have_text(catalogue.gettext(STATUS_WORDS["done"]))
    check_buyer_page(page, screenshot, "order-paid")
