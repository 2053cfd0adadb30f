"""Payment links: /pay/<token> for the buyer, and the console's pages that make and list them.

The buyer's side is the shop's own checkout (shop/checkout.py) with a payment instead of a
cart: route choice, requisites, order/create, the exchanger's page, the return page.
"""

from decimal import Decimal
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from . import checkout, orders, payments
from .api import MAX_ID
from .console import POSITION, require_login
from .db import get_db
from .forms import ButtonForm, PaymentLinkForm
from .i18n import N_

bp = Blueprint("paylinks", __name__)
console_bp = Blueprint("links", __name__, url_prefix="/console")
# The console's login guard, not a copy of it.
console_bp.before_request(require_login)

PAGE_SIZE = 50

# Each refusal has its own words: the buyer should know whether to ask for a new link.
REFUSALS = {
    "unknown": (
        404,
        N_("Payment link not found"),
        N_(
            "There is no payment at this address. Check that you copied the whole link, or ask"
            " the seller for a new one."
        ),
    ),
    "used": (
        410,
        N_("Already paid"),
        N_("This payment has already been made. Nothing more is due on this link."),
    ),
    "disabled": (
        410,
        N_("Payment link switched off"),
        N_(
            "The seller has switched off this payment link. Ask them for a new one if you"
            " still need to pay."
        ),
    ),
    "expired": (
        410,
        N_("Payment link expired"),
        N_("This payment link has expired. Ask the seller for a new one."),
    ),
}


def refused(reason):
    status, title, message = REFUSALS[reason]
    return render_template(
        "checkout/paylink_refused.html", reason=reason, title=_(title), message=_(message)
    ), status


def open_payment(token):
    """(Purchase, None) for a payment the buyer may pay now, else (None, the refusal page)."""
    payment = payments.find_by_token(token)
    if payment is None:
        return None, refused("unknown")
    # Only a single-use payment's orders can refuse it: a reusable one's (without end, for a
    # donation link) are not read on every buyer's page.
    its_orders = payments.orders_of([payment["id"]])[payment["id"]] if payment["single_use"] else []
    reason = payments.refusal(payment, its_orders)
    if reason is not None:
        return None, refused(reason)
    return checkout.Purchase([], Decimal(payment["amount"]), dict(payment)), None


@bp.route("/pay/<token>")
def choose_route(token):
    """A payment link: its description and amount, and every way to pay it."""
    purchase, refusal = open_payment(token)
    if refusal is not None:
        return refusal
    return checkout.show_routes(purchase)


@bp.route("/pay/<token>/<route_id>", methods=("GET", "POST"))
def requisites(token, route_id):
    """The same requisite form as a cart's; a submit places an order carrying the payment."""
    earlier = checkout.resubmitted()
    if earlier is not None:
        return earlier
    # Checked again on submit: a link disabled, expired or paid meanwhile takes no new order.
    purchase, refusal = open_payment(token)
    if refusal is not None:
        return refusal
    return checkout.fill_requisites(purchase, route_id)


# -- the console ------------------------------------------------------------------------------


@console_bp.route("/links", methods=("GET", "POST"))
def links_page():
    """Payment links and API payments, newest first, each with its orders; a form for a new link."""
    form = PaymentLinkForm()
    if form.validate_on_submit():
        payment, _replayed = payments.create_payment(
            get_db(),
            source="link",
            amount=form.amount.data,
            description=form.description.data,
            reference=form.reference.data or None,
            buyer_email=form.buyer_email.data or None,
            single_use=not form.reusable.data,
            expires_at=payments.expiry_from_form(form.expires_at.data),
        )
        flash(_("Payment link created."), "success")
        return redirect(url_for("links.links_page", _anchor=f"payment-{payment['id']}"))
    # The console's page positions: anything else (negative, huge, text) is the newest page.
    position = request.args.get("before", "")
    before = int(position) if POSITION.fullmatch(position) else None
    rows = payments.list_payments(PAGE_SIZE + 1, before=before)
    page = rows[:PAGE_SIZE]
    its_orders = payments.orders_of([p["id"] for p in page])
    status = 422 if form.errors else 200
    return render_template(
        "console/paylinks.html",
        form=form,
        payments=page,
        orders_of=its_orders,
        state_of=payments.state,
        order_state=orders.payment_state,
        checkout_url=payments.checkout_url,
        button=ButtonForm(),
        next_before=page[-1]["id"] if len(rows) > PAGE_SIZE else None,
    ), status


@console_bp.post("/links/<int:payment_id>/disable")
def disable(payment_id):
    """Switch a link off: it takes no new attempt; orders already made go on."""
    if not ButtonForm().validate_on_submit():
        abort(400)
    # Ids are 32-bit on PostgreSQL, and SQLite takes no integer past 64 bits: a larger one is none.
    if payment_id > MAX_ID or payments.get_payment(get_db(), payment_id) is None:
        abort(404)
    if payments.disable(get_db(), payment_id):
        flash(_("The payment link is switched off."), "success")
    else:
        flash(_("That payment link was already switched off."), "error")
    return redirect(url_for("links.links_page", _anchor=f"payment-{payment_id}"))


def url_host(url):
    """The host a return URL leads to, shown on its link so the buyer sees where it goes."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def init_app(app):
    app.jinja_env.filters["url_host"] = url_host
