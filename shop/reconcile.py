"""Asking the exchanger for orders' real status, because IPNs are sent once and can be lost.

Used by the return page and status endpoint (one order) and by `flask reconcile` (every open
order). Every change goes through orders.set_status with source 'poll'.
"""

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from . import orders
from .db import get_db, now, transaction
from .exchanger import ExchangerError, ExchangerRejected, ExchangerUnavailable, get_exchanger
from .pricing import RouteDataError, number


def poll_order(order):
    """order/get for one order, applied through the status function; returns the outcome.

    Raises ExchangerError when the exchanger gave no usable answer; nothing changes then.
    """
    db = get_db()
    with transaction(db):
        db.execute("UPDATE orders SET last_polled_at = ? WHERE id = ?", (now(), order["id"]))
    remote = get_exchanger().get_order(order["exchanger_uid"], order["exchanger_secret"])
    status = remote["status"]
    if status not in orders.EXCHANGER_STATUSES:
        raise ExchangerUnavailable(f"order/get: unknown status {status[:40]!r}")
    try:
        in_amount, out_amount = number(remote.get("inAmount")), number(remote.get("outAmount"))
    except RouteDataError:
        in_amount = out_amount = None
    return orders.set_status(
        db, order["id"], status, "poll", in_amount=in_amount, out_amount=out_amount
    )


def refresh_order(order):
    """poll_order for a page view: a failure is logged and the stored status stands."""
    if not order["exchanger_uid"] or not order["exchanger_secret"]:
        return None
    try:
        return poll_order(order)
    except ExchangerError as exc:
        current_app.logger.warning("order/get for order %s failed: %s", order["id"], exc.message)
        return None


def due_for_poll(order, seconds):
    """True when the order is open and was not asked about in the last `seconds`."""
    if orders.is_final(order):
        return False
    if not order["last_polled_at"]:
        return True
    last = datetime.fromisoformat(order["last_polled_at"])
    return datetime.now(UTC) - last >= timedelta(seconds=seconds)


def settle_unconfirmed_draft(order, cutoff):
    """A draft whose order/create never answered, and no IPN has claimed since: fail it when old.

    The buyer never saw a payment page for it, so an order the exchanger may have made cannot
    have been paid, and expires there unpaid. Until the cutoff an IPN may still identify it.
    """
    created = datetime.fromisoformat(order["created_at"])
    if datetime.now(UTC) - created < cutoff:
        return "waiting"
    note = "the exchanger never confirmed this order; any order it made expired unpaid"
    return orders.set_status(get_db(), order["id"], orders.CREATE_FAILED, "poll", note=note)


def reconcile_one(order, attempts, backoff):
    """Bring one order to the exchanger's status, backing off on anti-flood and failures."""
    if not order["exchanger_uid"]:
        cutoff = timedelta(minutes=current_app.config["DRAFT_TIMEOUT_MINUTES"])
        return settle_unconfirmed_draft(order, cutoff)
    for attempt in range(attempts):
        try:
            return poll_order(order)
        except ExchangerRejected as exc:
            if exc.retry_after is None:
                current_app.logger.warning("reconcile order %s: %s", order["id"], exc.message)
                return "error"
            wait = exc.retry_after
        except ExchangerUnavailable as exc:
            current_app.logger.warning("reconcile order %s: %s", order["id"], exc.message)
            wait = backoff * 2**attempt
        if attempt + 1 < attempts:
            time.sleep(wait)
    return "error"


def open_orders():
    """Every order that is not final, oldest first."""
    final = json.dumps(sorted(orders.FINAL))
    return (
        get_db()
        .execute(
            "SELECT * FROM orders WHERE status NOT IN (SELECT value FROM json_each(?)) ORDER BY id",
            (final,),
        )
        .fetchall()
    )


def reconcile_all(concurrency=None, attempts=3, backoff=0.5):
    """reconcile_one for every open order, a few at a time; returns a Counter of outcomes."""
    app = current_app._get_current_object()
    concurrency = concurrency or app.config["RECONCILE_CONCURRENCY"]

    def work(order):
        # Each worker thread has its own app context, so its own database connection.
        with app.app_context():
            return reconcile_one(order, attempts, backoff)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return Counter(pool.map(work, open_orders()))


@click.command("reconcile")
@with_appcontext
@click.option("--concurrency", type=click.IntRange(1, 64), default=None, help="Orders at once.")
def reconcile_command(concurrency):
    """Ask the exchanger about every order that is not final, and apply what it says."""
    outcomes = reconcile_all(concurrency)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    click.echo(f"Checked {sum(outcomes.values())} open orders: {summary or 'nothing to do'}.")
    if outcomes["error"]:
        click.echo(f"{outcomes['error']} could not be checked; run again later.", err=True)
        raise SystemExit(1)


def init_app(app):
    app.cli.add_command(reconcile_command)
