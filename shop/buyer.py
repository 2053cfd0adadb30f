"""The buyer's way back: the last few orders of this browser, kept in its session."""

from flask import Blueprint, render_template, session

from . import orders
from .catalog import cart_quantities

bp = Blueprint("buyer", __name__)

# How many of this browser's orders "Your orders" lists.
REMEMBERED_ORDERS = 5


def remembered_tokens():
    kept = session.get("orders")
    if not isinstance(kept, list):
        return []
    return [token for token in kept if isinstance(token, str)][:REMEMBERED_ORDERS]


def remember_order(token):
    """Keep the order's token in the buyer's session, newest first, for "Your orders"."""
    kept = [t for t in remembered_tokens() if t != token]
    session["orders"] = [token, *kept][:REMEMBERED_ORDERS]


def remembered_orders():
    """This browser's orders, newest first; tokens of orders that no longer exist are skipped."""
    tokens = remembered_tokens()
    # At most REMEMBERED_ORDERS lookups, each by the unique token index.
    rows = (orders.find_by_token(t) for t in tokens)
    return [row for row in rows if row is not None]


@bp.route("/orders")
def your_orders():
    """The orders placed in this browser, each with its status in words and its page."""
    found = remembered_orders()
    return render_template(
        "buyer/orders.html",
        orders=found,
        states={order["token"]: orders.payment_state(order) for order in found},
    )


def init_app(app):

    @app.context_processor
    def header_counts():
        # The header shows "Your orders" only to a browser that has some.
        return {
            "has_orders": bool(remembered_tokens()),
            "cart_count": sum(cart_quantities().values()),
        }
