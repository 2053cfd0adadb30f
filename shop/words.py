"""What buyers read: currency names, rates, status words and the order timeline (issue 14).

Buyer pages never show the exchanger's codes (USDTTRC20, inProgress); the code is at most a
hint beside the name the route data gives.
"""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask import current_app, g
from flask_babel import format_datetime, get_timezone
from flask_babel import gettext as _

from . import orders, routecache
from .exchanger import ExchangerError
from .i18n import N_, money

# One word per status, the 10 of the exchanger and the shop's own two (translated where shown).
STATUS_WORDS = {
    orders.DRAFT: N_("Order placed"),
    orders.CREATE_FAILED: N_("Could not be created"),
    "new": N_("Waiting for you to confirm"),
    "waitPayment": N_("Waiting for your payment"),
    "errorPayment": N_("Payment not received"),
    "inProgress": N_("Payment received, exchanging"),
    "inProgressPayout": N_("Payment received, paying out"),
    "errorPayout": N_("Payment received, payout delayed"),
    "hold": N_("Payment received, held for a check"),
    "done": N_("Completed"),
    "returned": N_("Refunded"),
    "deleted": N_("Cancelled"),
}

# What happens next, in one sentence, per status.
NEXT_STEP = {
    orders.DRAFT: N_("We are creating your order at the exchanger."),
    orders.CREATE_FAILED: N_("Nothing was charged. You can go back to the cart and try again."),
    "new": N_("Confirm the order on the exchanger's payment page, then pay there."),
    "waitPayment": N_("Send the amount on the exchanger's payment page; this page follows it."),
    "errorPayment": N_(
        "The exchanger did not receive a valid payment. If you sent money, contact the shop."
    ),
    "inProgress": N_("Nothing to do: the exchanger is converting your payment."),
    "inProgressPayout": N_("Nothing to do: the exchanger is paying the shop."),
    "errorPayout": N_("Nothing to do: the exchanger is retrying the payout to the shop."),
    "hold": N_("Nothing to do: the exchanger is checking the payment. This can take a while."),
    "done": N_("Your order is paid. Thank you!"),
    "returned": N_("Your payment was refunded by the exchanger."),
    "deleted": N_("This order was cancelled. Nothing more will happen."),
}
UNKNOWN_STATUS = N_("Being processed")
REVIEW_NEXT = N_("The shop is checking this payment by hand and will contact you.")

# The happy path, each step reached by the first status of its group in the history.
STEPS = (
    ("placed", N_("Order placed"), {orders.DRAFT}),
    ("waiting", N_("Waiting for your payment"), {"new", "waitPayment"}),
    ("received", N_("Payment received"), {"inProgress", "inProgressPayout", "errorPayout", "hold"}),
    ("done", N_("Completed"), {"done"}),
)
FAILURES = {orders.CREATE_FAILED, "errorPayment", "returned", "deleted"}


def status_word(status):
    """The buyer's word for a status; an unknown code still never shows raw."""
    return _(STATUS_WORDS.get(status, UNKNOWN_STATUS))


def next_step(order):
    if order["review_reason"]:
        return _(REVIEW_NEXT)
    return _(NEXT_STEP.get(order["status"], NEXT_STEP["inProgress"]))


def when(stamp):
    """An ISO timestamp from the history, in the buyer's format; None if unreadable."""
    try:
        # Shown in the shop's timezone (Flask-Babel's default, UTC), so it says which.
        return f"{format_datetime(datetime.fromisoformat(stamp), 'short')} {get_timezone().zone}"
    except (TypeError, ValueError):
        return None


def timeline(order, history):
    """The order's steps with the time each was reached, the current one marked; then a failure."""
    reached = {}
    for row in history:
        for key, _label, statuses in STEPS:
            if row["new_status"] in statuses and key not in reached:
                reached[key] = row["created_at"]
    reached.setdefault("placed", order["created_at"])
    failed = order["status"] in FAILURES
    steps = []
    for key, label, statuses in STEPS:
        if failed and key not in reached:
            continue
        steps.append(
            {
                "key": key,
                "label": _(label),
                "time": when(reached.get(key)),
                "done": key in reached,
                "current": order["status"] in statuses,
            }
        )
    if failed:
        stamp = next((r["created_at"] for r in history if r["new_status"] == order["status"]), None)
        steps.append(
            {
                "key": "failed",
                "label": status_word(order["status"]),
                "time": when(stamp),
                "done": True,
                "current": True,
            }
        )
    return steps


def minutes_left(order, history):
    """Whole minutes the buyer has left to pay, when the route gives a time limit; else None.

    The platform deletes orders left unpaid orderTTL minutes after creation (exchanger-api.md
    section 6), so the clock starts when the exchanger created the order (its first status).
    """
    if order["status"] not in ("new", "waitPayment"):
        return None
    started = next((r["created_at"] for r in history if r["old_status"] == orders.DRAFT), None)
    try:
        route = routecache.route(order["route_id"], order["lang"]).value
        ttl = Decimal(str(route["orderTTL"]))
        started = datetime.fromisoformat(started)
    except (ExchangerError, KeyError, TypeError, ValueError, InvalidOperation):
        return None
    # The exchanger's number: a day at most is a payment window; beyond, it says nothing.
    if not ttl.is_finite() or not 0 < ttl <= 24 * 60:
        return None
    left = started + timedelta(minutes=float(ttl)) - datetime.now(UTC)
    return max(0, int(left.total_seconds() // 60))


def currencies():
    """{xml: {"name", "symbol"}} of every currency in the route list; {} when it cannot be had.

    From the shared route cache, once per request: a warm page asks the exchanger nothing.
    """
    if "currencies" not in g:
        try:
            summaries = routecache.routes().value
        except ExchangerError:
            summaries = []
        found = {}
        for summary in summaries:
            for side in (summary.get("from"), summary.get("to")):
                if isinstance(side, dict) and isinstance(side.get("xml"), str):
                    found.setdefault(
                        side["xml"],
                        {
                            "name": str(side.get("name") or side["xml"]),
                            "symbol": str(side.get("symbol") or side["xml"]),
                        },
                    )
        g.currencies = found
    return g.currencies


def currency_name(xml):
    """The name the exchanger gives a currency code, e.g. 'Tether TRC20'; else the code."""
    return currencies().get(xml, {}).get("name", xml)


def unit(xml):
    """The short unit written after an amount (USDT, BTC, USD): the symbol, not the code."""
    return currencies().get(xml, {}).get("symbol", xml)


def settlement_name():
    return currency_name(current_app.config["SETTLEMENT_XML"])


def settlement_unit():
    return unit(current_app.config["SETTLEMENT_XML"])


def rounded(value, places):
    """value rounded for reading: whole numbers from 1,000, else 4 significant digits.

    Off by at most 0.05 %: near enough to judge a rate, and the amount to send is never rounded.
    """
    quantum = Decimal(1) if value >= 1000 else Decimal(1).scaleb(value.adjusted() - 3)
    # places is the exchanger's `decimal`: used only when it is a sensible whole number.
    if isinstance(places, int) and not isinstance(places, bool) and 0 <= places <= 18:
        quantum = max(quantum, Decimal(1).scaleb(-places))
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


def rate_text(route):
    """The rate the way people read it: one of the dearer currency in the cheaper, '1 BTC ≈ 64,250 USDT'.

    rateFullNumber is how many from-units buy one to-unit.
    """
    try:
        rate = Decimal(str(route["rate"]["rateFullNumber"]))
    except (KeyError, TypeError, InvalidOperation):
        return None
    if not rate.is_finite() or rate <= 0:
        return None
    source, target = route["from"], route["to"]
    if rate < 1:
        one, other, value = source, target, 1 / rate
    else:
        one, other, value = target, source, rate
    # "1 USDT ≈ 1.010 USDT" says nothing: two currencies with one symbol go by their names.
    key = "name" if one.get("symbol") == other.get("symbol") else "symbol"
    try:
        shown = money(rounded(value, other.get("decimal")))
    except InvalidOperation:
        return None  # a rate too far out to write in 28 digits: no rate is better than a 500
    return _(
        "1 %(one)s ≈ %(value)s %(other)s",
        one=one.get(key) or one.get("xml"),
        value=shown,
        other=other.get(key) or other.get("xml"),
    )


# An order within this share of a route's limit or reserve is "near" it, worth a word.
NEAR = Decimal("0.8")


def limit_notes(route, send, receive):
    """Limits and reserve in words, only when this order comes near one of them."""
    notes = []
    source = route["from"]
    symbol = source.get("symbol") or source.get("xml")
    try:
        low = Decimal(str(source.get("min") or "0"))
        high = Decimal(str(source.get("max") or "0"))
        reserve = Decimal(str(route["rate"].get("amount") or "0"))
    except (InvalidOperation, AttributeError):
        return notes
    if low > 0 and send < low / NEAR:
        notes.append(
            _(
                "The minimum for this method is %(limit)s %(symbol)s.",
                limit=money(low),
                symbol=symbol,
            )
        )
    if high > 0 and send > high * NEAR:
        notes.append(
            _(
                "The maximum for this method is %(limit)s %(symbol)s.",
                limit=money(high),
                symbol=symbol,
            )
        )
    if reserve > 0 and receive > reserve * NEAR:
        notes.append(_("The exchanger's reserve for this method is nearly used up."))
    return notes


def init_app(app):
    app.jinja_env.filters["status_word"] = status_word
    app.jinja_env.filters["when"] = when
    # Functions, not values: only pages that show a currency look it up.
    app.jinja_env.globals.update(
        currency_name=currency_name,
        unit=unit,
        settlement_name=settlement_name,
        settlement_unit=settlement_unit,
    )
