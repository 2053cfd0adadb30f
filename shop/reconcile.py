"""Asking the exchanger for an order's real status, because IPNs are sent once and can be lost."""

from datetime import UTC, datetime, timedelta

from flask import current_app

from . import orders
from .db import get_db, now, transaction
from .exchanger import ExchangerError
from .pricing import number


def exchanger():
    return current_app.extensions["exchanger"]


def refresh_order(order):
    """order/get for one order, applied through the status function; returns the outcome or None.

    Orders the exchanger has not confirmed yet (no uid) have nothing to ask about.
    """
    if not order["exchanger_uid"] or not order["exchanger_secret"]:
        return None
    db = get_db()
    with transaction(db):
        db.execute("UPDATE orders SET last_polled_at = ? WHERE id = ?", (now(), order["id"]))
    try:
        remote = exchanger().get_order(order["exchanger_uid"], order["exchanger_secret"])
    except ExchangerError as exc:
        current_app.logger.warning("order/get for order %s failed: %s", order["id"], exc.message)
        return None
    status = remote["status"]
    if status not in orders.EXCHANGER_STATUSES:
        current_app.logger.warning("order/get for order %s: unknown status %r", order["id"], status)
        return None
    try:
        in_amount, out_amount = number(remote.get("inAmount")), number(remote.get("outAmount"))
    except ValueError:
        in_amount = out_amount = None
    return orders.set_status(
        db, order["id"], status, "poll", in_amount=in_amount, out_amount=out_amount
    )


def due_for_poll(order, seconds):
    """True when the order is open and was not asked about in the last `seconds`."""
    if orders.is_final(order):
        return False
    if not order["last_polled_at"]:
        return True
    last = datetime.fromisoformat(order["last_polled_at"])
    return datetime.now(UTC) - last >= timedelta(seconds=seconds)
