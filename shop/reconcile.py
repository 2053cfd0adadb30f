"""Asking the exchanger for orders' real status, because IPNs are sent once and can be lost.

Used by the return page and status endpoint (one order) and by `flask reconcile` (every open
order, and done orders whose refund check is due). Every answer goes through
orders.apply_event as a 'poll' event, which drops an answer overtaken by a newer change.
"""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from . import orders
from .db import get_db, now, query
from .exchanger import ExchangerError, ExchangerRejected, ExchangerUnavailable, get_exchanger
from .pricing import RouteDataError, number

# A poll overtaken by an IPN is asked again this many times in a row before giving up for now.
POLL_ATTEMPTS = 3
# [guess] Where order/get may carry the time of the order's last change. Mongo-backed sites
# usually keep `updatedAt`; with it, polls and IPNs are ordered exactly (see changed_at_ms).
CHANGED_AT_FIELDS = ("updatedAt", "statusChangedAt")


def changed_at_ms(remote):
    """The exchanger's time of the order's last change in milliseconds, or None when not given.

    A timestamp is only used to order a poll against IPNs; anything unreadable means 'unknown',
    never an error: the version check alone keeps polls safe.
    """
    for name in CHANGED_AT_FIELDS:
        value = remote.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**15:
            return value
        if isinstance(value, str) and len(value) <= 40:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                return int(moment.timestamp() * 1000)
    return None


def poll_event(remote, version, refund_check=False):
    """The orders.Event an order/get answer stands for; ExchangerUnavailable when it is unusable."""
    status = remote["status"]
    if status not in orders.EXCHANGER_STATUSES:
        raise ExchangerUnavailable(f"order/get: unknown status {status[:40]!r}")
    try:
        in_amount, out_amount = number(remote.get("inAmount")), number(remote.get("outAmount"))
    except RouteDataError:
        in_amount = out_amount = None
    return orders.Event(
        "poll",
        status,
        at_ms=changed_at_ms(remote),
        seen_version=version,
        in_amount=in_amount,
        out_amount=out_amount,
        refund_check=refund_check,
    )


def poll_order(order, min_seconds=0, refund_check=False, not_since=None):
    """order/get for one order, applied unless a change overtook it; returns the outcome.

    The order's version is read when the question is sent: an IPN applied while the answer was
    on its way makes that answer 'raced', and the order is asked again. 'skipped' when another
    worker asked less than min_seconds ago, or since the time not_since. Raises
    ExchangerError when the exchanger gave no usable answer; nothing changes then.
    """
    db = get_db()
    outcome = "raced"
    for _ in range(POLL_ATTEMPTS):
        version = orders.claim_poll(db, order["id"], min_seconds, not_since)
        if version is None:
            return "skipped"
        remote = get_exchanger().get_order(order["exchanger_uid"], order["exchanger_secret"])
        event = poll_event(remote, version, refund_check)
        outcome = orders.apply_event(db, order["id"], event)
        if outcome != "raced":
            return outcome
        min_seconds, not_since = 0, None
    return outcome


UNREACHABLE = "unreachable"


def refresh_order(order):
    """poll_order for a page view, at most once per STATUS_POLL_SECONDS per order.

    Returns the outcome, None when there was nothing to ask, or UNREACHABLE when the exchanger
    gave no usable answer: the stored status stands, and the page says it could not ask.
    """
    if not orders.exchanger_knows(order) or orders.is_final(order):
        return None
    try:
        return poll_order(order, current_app.config["STATUS_POLL_SECONDS"])
    except ExchangerError as exc:
        current_app.logger.warning("order/get for order %s failed: %s", order["id"], exc.message)
        return UNREACHABLE


def settle_unconfirmed_draft(order, cutoff):
    """A draft whose order/create never answered, and no IPN has claimed since: fail it when old.

    The buyer never saw a payment page for it, so an order the exchanger may have made cannot
    have been paid, and expires there unpaid. Until the cutoff an IPN may still identify it.
    """
    created = datetime.fromisoformat(order["created_at"])
    if datetime.now(UTC) - created < cutoff:
        return "waiting"
    note = "the exchanger never confirmed this order; any order it made expired unpaid"
    event = orders.Event("create", orders.CREATE_FAILED, note=note)
    return orders.apply_event(get_db(), order["id"], event)


def flag_unaskable(order):
    """An open order claimed by an IPN after order/create's answer was lost has no secret for
    order/get: IPNs are its only source. Past DRAFT_TIMEOUT_MINUTES a person must look (the
    exchanger's own pages know it), rather than reconcile passing over it for ever."""
    created = datetime.fromisoformat(order["created_at"])
    waited = datetime.now(UTC) - created
    if order["review_reason"] or waited < timedelta(
        minutes=current_app.config["DRAFT_TIMEOUT_MINUTES"]
    ):
        return "unaskable"
    note = (
        f"the shop cannot ask the exchanger about order {order['exchanger_uid']} (its"
        " order/create answer was lost) and no IPN has finished it: check it at the exchanger"
    )
    return orders.apply_event(
        get_db(), order["id"], orders.Event("flag", order["status"], note=note)
    )


def reconcile_one(order, attempts, backoff, run_started=None):
    """Bring one order to the exchanger's status, backing off on anti-flood and failures.

    An order already asked about since run_started (by this run on another host: cron runs
    reconcile on every host at once) is 'skipped': each order is asked once per run.
    """
    if not order["exchanger_uid"]:
        cutoff = timedelta(minutes=current_app.config["DRAFT_TIMEOUT_MINUTES"])
        return settle_unconfirmed_draft(order, cutoff)
    if not orders.exchanger_knows(order):
        return flag_unaskable(order)
    # A done order is here only because its refund check is due.
    refund_check = order["status"] == "done"
    for attempt in range(attempts):
        # Only the first attempt asks whether another run got there first; a retry is this
        # run's own claim again.
        since = run_started if attempt == 0 else None
        try:
            return poll_order(order, refund_check=refund_check, not_since=since)
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


def orders_to_check():
    """Every order that is not final, and every done order whose refund check is due."""
    final = dict(zip(("f0", "f1", "f2", "f3"), sorted(orders.FINAL), strict=True))
    return query(
        get_db(),
        "SELECT * FROM orders WHERE status NOT IN (:f0, :f1, :f2, :f3)"
        " OR settle_check_at <= :now ORDER BY id",
        {**final, "now": now()},
    )


def reconcile_all(concurrency=None, attempts=3, backoff=0.5, started=None):
    """reconcile_one for every order to check, a few at a time; returns a Counter of outcomes.

    Cron may run this on every host at once: an order that another host's run asked about
    after `started` (this run's start, a datetime) is skipped, so runs that overlap ask
    about each order once; claim_poll and the order's version keep a late answer from being
    applied over a newer one.
    """
    app = current_app._get_current_object()
    concurrency = concurrency or app.config["RECONCILE_CONCURRENCY"]
    started = started or datetime.now(UTC)

    def work(order):
        # Each worker thread has its own app context, so its own database connection.
        with app.app_context():
            return reconcile_one(order, attempts, backoff, started)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return Counter(pool.map(work, orders_to_check()))


@click.command("reconcile")
@with_appcontext
@click.option("--concurrency", type=click.IntRange(1, 64), default=None, help="Orders at once.")
def reconcile_command(concurrency):
    """Ask the exchanger about every open order and every done order due a refund check."""
    outcomes = reconcile_all(concurrency)
    summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    click.echo(f"Checked {sum(outcomes.values())} orders: {summary or 'nothing to do'}.")
    if outcomes["error"]:
        click.echo(f"{outcomes['error']} could not be checked; run again later.", err=True)
        raise SystemExit(1)
