"""Checkout: cart -> route -> requisites -> order/create -> the exchanger's payment page; return page.

The same steps pay a payment link or an API payment (shop/paylinks.py): a Purchase says what
is being paid, a cart or a payment, and where its pages are.
"""

import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from . import config, orders, routecache, throttle, words
from .buyer import remember_order
from .catalog import cart_lines, empty_cart
from .db import get_db
from .exchanger import ExchangerError, ExchangerRejected, ExchangerUnavailable, get_exchanger
from .forms import requisite_form_class
from .i18n import N_, current_lang, money
from .payments import for_order
from .pricing import Quote, RouteDataError, quote
from .reconcile import UNREACHABLE, refresh_order

bp = Blueprint("checkout", __name__)

ROUTE_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
LANG_BLOCK = re.compile(r"##([a-z]{2})##(.*?)(?=##)", re.DOTALL)
PROBLEM_TEXT = {
    "below_min": N_("Your total is below this route's minimum of %(limit)s %(symbol)s."),
    "above_max": N_("Your total is above this route's maximum of %(limit)s %(symbol)s."),
    "above_reserve": N_("The exchanger's reserve (%(limit)s) cannot cover this amount right now."),
}


def instructions_for(route, lang):
    """The route's createOrder instruction in lang, from the platform's '##en##...##ru##...##'."""
    for item in route.get("instructions") or []:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str) and item.get("step") == "createOrder":
            blocks = dict(LANG_BLOCK.findall(content))
            return blocks.get(lang) or blocks.get("en") or (None if "##" in content else content)
    return None


def problem_text(problem, route):
    kind, limit = problem
    return _(PROBLEM_TEXT[kind], limit=money(limit), symbol=route["from"].get("symbol", ""))


def payout_values(route):
    """toValues from PAYOUT_VALUES; None when one is missing or would be refused by its regexp."""
    fields = route["to"].get("fields") or []
    if any(config.payout_problem(current_app.config, field) for field in fields):
        return None
    return [
        {"key": str(field["_id"]), "value": config.payout_value(current_app.config, field)}
        for field in fields
    ]


def offers(total):
    """The routes into the settlement currency with their quotes, and whether any was stale.

    Served from the shared route cache: a warm page asks the exchanger nothing.
    """
    settlement = current_app.config["SETTLEMENT_XML"]
    lang = current_lang()
    listed = routecache.routes()
    found, stale = [], listed.stale
    for summary in listed.value:
        if summary.get("isShowWeb") is False or (summary.get("to") or {}).get("xml") != settlement:
            continue
        try:
            cached = routecache.route(summary["routeId"], lang)
            offer = quote(cached.value, total)
        except ExchangerRejected as exc:
            if not exc.route_unavailable:
                raise
            continue  # hidden or withdrawn since route/get: not on offer
        except RouteDataError as exc:
            current_app.logger.warning("route %s has unusable numbers: %s", summary["routeId"], exc)
            continue
        route = cached.value
        stale = stale or cached.stale
        if payout_values(route) is None:
            current_app.logger.error(
                "PAYOUT_VALUES lacks a required to-field of route %s", summary["routeId"]
            )
            continue
        problem = problem_text(offer.problem, route) if offer.problem else None
        found.append(
            {
                "route": route,
                "quote": offer,
                "problem": problem,
                "rate": words.rate_text(route),
                # Limits and reserve mean nothing to a buyer unless this order comes near one.
                "notes": [] if problem else words.limit_notes(route, offer.send, offer.receive),
            }
        )
    return found, stale


# Statuses in which the buyer still has something to do on the exchanger's payment page.
WAITING_FOR_BUYER = ("new", "waitPayment")


def time_left_text(minutes):
    return None if minutes is None else _("Time left to pay: %(minutes)s min.", minutes=minutes)


def unavailable(message, retry_url):
    return render_template("checkout/unavailable.html", message=message, retry_url=retry_url), 503


@dataclass(frozen=True)
class Purchase:
    """What the buyer pays for: the session's cart (lines), or a payment (no lines)."""

    lines: list
    total: Decimal
    payment: dict | None = None

    def routes_url(self):
        if self.payment is None:
            return url_for("checkout.choose_route")
        return url_for("paylinks.choose_route", token=self.payment["token"])

    def requisites_url(self, route_id):
        if self.payment is None:
            return url_for("checkout.requisites", route_id=route_id)
        return url_for("paylinks.requisites", token=self.payment["token"], route_id=route_id)


def cart_purchase():
    """The session's cart as a Purchase; None when it is empty."""
    lines, total = cart_lines()
    return Purchase(lines, total) if lines else None


@bp.route("/checkout")
def choose_route():
    """Pick how to pay: every route into the settlement currency, with rate and amount to send."""
    purchase = cart_purchase()
    if purchase is None:
        flash(_("Your cart is empty."), "error")
        return redirect(url_for("catalog.cart"))
    return show_routes(purchase)


def show_routes(purchase):
    """The route choice for a purchase."""
    try:
        found, stale = offers(purchase.total)
    except ExchangerError as exc:
        current_app.logger.warning("route list failed: %s", exc.message)
        return unavailable(
            _("We cannot reach the payment service right now."), purchase.routes_url()
        )
    return render_template(
        "checkout/routes.html",
        offers=found,
        stale=stale,
        total=purchase.total,
        purchase=purchase,
        currency=current_app.config["SETTLEMENT_XML"],
    )


def load_route(route_id, fresh):
    """The route's definition: cached for showing the form, fresh for creating the order."""
    if not ROUTE_ID.match(route_id):
        abort(404)
    try:
        route = routecache.route(route_id, current_lang(), fresh=fresh).value
    except ExchangerRejected as exc:
        if exc.route_unavailable:
            abort(404)
        raise
    to_xml = (route.get("to") or {}).get("xml")
    if to_xml != current_app.config["SETTLEMENT_XML"] or payout_values(route) is None:
        abort(404)
    return route


@dataclass
class RequisitePage:
    """One route's requisite form for the current cart, with what the buyer will send."""

    route: dict
    offer: Quote
    purchase: Purchase
    form: FlaskForm
    fields: list

    @property
    def total(self):
        return self.purchase.total

    def render(self, problem=None, status=200):
        return render_template(
            "checkout/requisites.html",
            form=self.form,
            fields=self.fields,
            route=self.route,
            offer=self.offer,
            problem=problem,
            total=self.total,
            purchase=self.purchase,
            currency=current_app.config["SETTLEMENT_XML"],
            instructions=instructions_for(self.route, current_lang()),
        ), status


@bp.route("/checkout/<route_id>", methods=("GET", "POST"))
def requisites(route_id):
    """The route's requisite form; on a valid submit, the order is placed."""
    earlier = resubmitted()
    if earlier is not None:
        return earlier
    purchase = cart_purchase()
    if purchase is None:
        flash(_("Your cart is empty."), "error")
        return redirect(url_for("catalog.cart"))
    return fill_requisites(purchase, route_id)


def resubmitted():
    """For the same form sent again (double click, back and resubmit), the way to its order."""
    if request.method == "POST":
        earlier = orders.find_by_checkout_key(request.form.get("checkout_key"))
        if earlier is not None:
            # Never a second order.
            return redirect(url_for("checkout.pay", token=earlier["token"]))
    return None


def fill_requisites(purchase, route_id):
    """The requisite form for a purchase; on a valid submit, the order is placed."""
    total = purchase.total
    try:
        # A submit re-reads the route, so the amount is computed at the exchanger's current rate.
        route = load_route(route_id, fresh=request.method == "POST")
        offer = quote(route, total)
    except ExchangerError:
        return unavailable(
            _("We cannot reach the payment service right now."),
            purchase.requisites_url(route_id),
        )
    except RouteDataError:
        return unavailable(
            _("This payment method is misconfigured at the exchanger."),
            purchase.routes_url(),
        )
    form_class, fields = requisite_form_class(route)
    page = RequisitePage(route, offer, purchase, form_class(), fields)
    if request.method == "GET":
        page.form.checkout_key.data = secrets.token_urlsafe(24)
        prefill_email(page)
    if offer.problem:
        return page.render(problem=problem_text(offer.problem, route))
    if page.form.validate_on_submit():
        return place_order(page)
    return page.render()


def prefill_email(page):
    """A payment's buyer e-mail, given by the merchant, in the route's e-mail field (editable)."""
    email = (page.purchase.payment or {}).get("buyer_email")
    for f in page.fields if email else ():
        # Platform fields have no type: an e-mail shows only through its name.
        if "mail" in f.label.lower():
            page.form[f.form_name].data = email


def draft_for(page):
    """The local order row for a submitted form, before the exchanger hears of it."""
    values = [
        {
            "group": f.group,
            "key": f.field_id,
            "name": f.label,
            "value": page.form[f.form_name].data or "",
        }
        for f in page.fields
    ]
    # Platform fields have no type: an e-mail shows only through its name.
    email = next((v["value"] for v in values if "mail" in v["name"].lower() and v["value"]), None)
    payment = page.purchase.payment or {}
    source = page.route["from"]
    return {
        # Hex: safe in URLs, and never starts with "-" (which a command line would take for an option).
        "token": secrets.token_hex(16),
        "checkout_key": page.form.checkout_key.data,
        "lang": current_lang(),
        "currency": current_app.config["SETTLEMENT_XML"],
        "price": str(page.total),
        "route_id": page.route["routeId"],
        "from_xml": source["xml"],
        "from_name": str(source.get("name") or source["xml"]),
        "to_xml": page.route["to"]["xml"],
        "send_amount": str(page.offer.send),
        "requisites": json.dumps(values),
        "buyer_email": email or payment.get("buyer_email"),
        "payment_id": payment.get("id"),
        "reference": payment.get("reference"),
        # Random per order: a leaked secret exposes one order's IPNs, not the shop's.
        "ipn_secret": secrets.token_urlsafe(32),
    }


def create_payload(order, route):
    """order/create's body for a draft (merchant docs, 'Create order')."""
    public = current_app.config["PUBLIC_URL"]
    values = orders.requisites(order)

    def group(name):
        return [{"key": v["key"], "value": v["value"]} for v in values if v["group"] == name]

    return {
        "routeId": route["routeId"],
        "amount": float(Decimal(order["send_amount"])),
        "fromValues": group("fromValues"),
        "toValues": payout_values(route),
        "routeValues": group("routeValues"),
        "lang": order["lang"],
        "agreement": True,
        "hideOutData": True,
        # The payer goes straight to paying, as from the platform's own deposit pop-up (the only
        # place its front-end sends skipPreview, also with hideOutData, then to /payment/).
        # Without it a site starts the order in `new` and its payment page asks the payer to
        # confirm first; a site that ignores it does the same, and the shop's order page says so.
        "skipPreview": True,
        "clientCallbackUrl": f"{public}/orders/{order['token']}/return",
        "ipnUrl": f"{public}/ipn",
        "ipnSecret": order["ipn_secret"],
    }


def place_order(page):
    """Write the order, create it at the exchanger, and send the buyer to pay."""
    if not throttle.allow_checkout():
        message = _(
            "You have started many orders in a short time. Please wait a few minutes, then try again."
        )
        return page.render(problem=message, status=429)
    db = get_db()
    order, is_new = orders.create_draft(db, draft_for(page), page.purchase.lines)
    if not is_new:
        # A concurrent submit of the same form won the race: never a second order.
        return redirect(url_for("checkout.pay", token=order["token"]))
    # Before the buyer leaves for the exchanger: a closed tab must not lose the way back.
    remember_order(order["token"])
    try:
        created = get_exchanger().create_order(create_payload(order, page.route))
    except ExchangerRejected as exc:
        reason = f"rejected {exc.code}: {exc.message}"
        orders.record_create_error(db, order["id"], reason, final=True)
        if exc.captcha_required:
            current_app.logger.error(
                "order/create asks for a captcha: this site takes server-side orders only with"
                " a merchant key (EXCHANGER_API_KEY) or after its operator allows them"
            )
        return rejected(page, exc)
    except ExchangerUnavailable as exc:
        orders.record_create_error(db, order["id"], exc.message, final=not exc.may_have_acted)
        current_app.logger.warning("order/create for order %s failed: %s", order["id"], exc.message)
        return unavailable(
            _("The payment service did not answer. Nothing has been charged; please try again."),
            page.purchase.requisites_url(page.route["routeId"]),
        )
    orders.record_created(db, order["id"], created)
    if page.purchase.payment is None:
        empty_cart()
    return redirect(get_exchanger().payment_url(order["lang"], created.uid, created.secret))


def rejected(page, exc):
    """Show the exchanger's refusal on the field it names, or above the form."""
    by_id = {(f.group, f.field_id): f.form_name for f in page.fields}
    name = exc.field and by_id.get(exc.field)
    if name:
        page.form[name].errors = [
            *page.form[name].errors,
            _("The exchanger did not accept this value."),
        ]
    else:
        flash(
            _(
                "The exchanger could not take this order. Please check the details or choose another way to pay."
            ),
            "error",
        )
    # The failed order keeps its key; a corrected form is a new order.
    page.form.checkout_key.data = secrets.token_urlsafe(24)
    return page.render(status=422)


@bp.route("/orders/<token>/pay")
def pay(token):
    """Continue to the exchanger's payment page of an order that was created."""
    order = orders.get_order_by_token(token)
    if not orders.exchanger_knows(order) or orders.is_final(order):
        return redirect(url_for("checkout.order_return", token=token))
    return redirect(
        get_exchanger().payment_url(
            order["lang"], order["exchanger_uid"], order["exchanger_secret"]
        )
    )


@bp.route("/orders/<token>/return")
def order_return(token):
    """Where the exchanger sends the buyer back; its ?status= is shown, never trusted."""
    order = orders.get_order_by_token(token)
    asked = refresh_order(order)
    if asked:
        order = orders.get_order_by_token(token)
    claimed = request.args.get("status", "")
    state = orders.payment_state(order)
    history = orders.get_history(order["id"])
    return render_template(
        "checkout/return.html",
        order=order,
        payment=for_order(order),
        items=orders.get_items(order["id"]),
        line_total=lambda item: Decimal(item["unit_price"]) * item["quantity"],
        state=state,
        state_label=orders.STATE_LABELS[state],
        steps=words.timeline(order, history),
        next_step=words.next_step(order),
        minutes_left=words.minutes_left(order, history),
        final=orders.is_final(order),
        claimed=claimed if claimed in ("success", "error") else None,
        unreachable=asked == UNREACHABLE,
    )


@bp.route("/orders/<token>/status")
def order_status(token):
    """The stored status as JSON, refreshed from the exchanger at most every few seconds."""
    order = orders.get_order_by_token(token)
    asked = refresh_order(order)
    if asked:
        order = orders.get_order_by_token(token)
    state = orders.payment_state(order)
    history = orders.get_history(order["id"])
    return jsonify(
        status=order["status"],
        status_word=words.status_word(order["status"]),
        state=state,
        label=_(orders.STATE_LABELS[state]),
        steps=words.timeline(order, history),
        next_step=words.next_step(order),
        minutes_left=words.minutes_left(order, history),
        time_left=time_left_text(words.minutes_left(order, history)),
        # The way back to the exchanger's page stays only while it waits for the buyer.
        can_pay=orders.exchanger_knows(order) and order["status"] in WAITING_FOR_BUYER,
        final=orders.is_final(order),
        reported_out=order["reported_out"],
        # Whether the exchanger answered this time; None when the shop did not ask (another
        # page asked less than STATUS_POLL_SECONDS ago), and the page keeps what it showed.
        unreachable=None if asked in (None, "skipped") else asked == UNREACHABLE,
    )
