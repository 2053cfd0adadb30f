"""Asking the exchanger for orders' real status, because IPNs are sent once and can be lost.

Used by the return page and status endpoint (one order) and by `flask reconcile` (the orders
due a check: open orders on a schedule that backs off with their age, done orders whose refund
check is due). Every answer goes through orders.apply_event as a 'poll' event, which drops an
answer overtaken by a newer change, and schedules the order's next check (next_poll_at).
"""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from . import orders
from .db import get_db, now, query, scalar, transaction
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
        return look_again_later(order, settle_unconfirmed_draft(order, cutoff))
    if not orders.exchanger_knows(order):
        return look_again_later(order, flag_unaskable(order))
    outcome = ask_exchanger(order, attempts, backoff, run_started)
    if outcome in ("error", "stale") and not orders.is_final(order):
        # Nothing was written, so nothing scheduled: without this an open order the exchanger
        # refuses to tell about (or answers older news for) would be due on every run for ever.
        # (A done order's refund check stays due: its schedule is the check's, not its age's.)
        orders.postpone_poll(get_db(), order)
    # An order the exchanger will not tell about (an error, stale news) is no less old: past
    # the review age a person looks, rather than reconcile asking weekly for ever unseen.
    if outcome in ("applied", "unchanged", "review", "error", "stale") and open_too_long(order):
        return review_for_age(order["id"]) or outcome
    return outcome


def look_again_later(order, outcome):
    """An order reconcile could only look at, not ask about, is looked at again on its schedule."""
    if outcome in ("waiting", "unaskable"):
        orders.postpone_poll(get_db(), order)
    return outcome


def ask_exchanger(order, attempts, backoff, run_started):
    """poll_order, retried on anti-flood and failures; the outcome, or 'error'."""
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


REVIEW_FOR_AGE = "review for age"


def open_too_long(order):
    """True when an open order has waited OPEN_ORDER_REVIEW_DAYS and was never flagged for it."""
    if orders.is_final(order) or order["age_flagged_at"]:
        return False
    waited = datetime.now(UTC) - datetime.fromisoformat(order["created_at"])
    return waited >= timedelta(days=current_app.config["OPEN_ORDER_REVIEW_DAYS"])


def review_for_age(order_id):
    """Send an open order the exchanger has not finished in time to review, once.

    Returns REVIEW_FOR_AGE when it went now; None when it is final after all, or already in
    review for another reason (that reason stands; this one is raised at a later check).
    From then on the order is asked about weekly (orders.POLL_STEPS), not every day for ever.
    """
    days = current_app.config["OPEN_ORDER_REVIEW_DAYS"]
    db = get_db()
    with transaction(db):
        order = orders.get_order(db, order_id, for_update=True)
        if not open_too_long(order):
            return None
        note = (
            f"the exchanger has not finished this order in {days} days"
            f" (its status there is {order['status']}): check it at the exchanger"
        )
        flagged = orders.apply_event(db, order_id, orders.Event("flag", order["status"], note=note))
        if flagged != "review":
            return None
        orders.note_flagged_for_age(db, order_id)
        return REVIEW_FOR_AGE


def orders_to_check():
    """The orders due a check (next_poll_at has come), most overdue first.

    next_poll_at is NULL for an order nothing can change any more, and the partial index
    orders_due_for_poll holds only the others: a run reads the due orders, never the rest.
    The open orders' schedule and the done orders' refund checks both live in that column.
    """
    return query(get_db(), DUE_ORDERS, {"now": now()})


DUE_ORDERS = "SELECT * FROM orders WHERE next_poll_at <= :now ORDER BY next_poll_at"


def next_check_due():
    """The earliest next_poll_at of any order (through the index), or None."""
    return scalar(get_db(), "SELECT MIN(next_poll_at) FROM orders WHERE next_poll_at IS NOT NULL")


def check_due_orders(concurrency=None, attempts=3, backoff=0.5, started=None):
    """reconcile_one for every order due, a few at a time: a list of (order, outcome).

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

    due = orders_to_check()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(zip(due, pool.map(work, due), strict=True))


def reconcile_all(concurrency=None, attempts=3, backoff=0.5, started=None):
    """check_due_orders, as a Counter of outcomes."""
    return Counter(
        outcome for _, outcome in check_due_orders(concurrency, attempts, backoff, started)
    )


@click.command("reconcile")
@with_appcontext
@click.option("--concurrency", type=click.IntRange(1, 64), default=None, help="Orders at once.")
def reconcile_command(concurrency):
    """Ask the exchanger about the open orders due a check and the done orders due a refund check."""
    checked = check_due_orders(concurrency)
    outcomes = Counter(outcome for _, outcome in checked)
    # Drafts and orders without the exchanger's secret are looked at, not asked about.
    asked = sum(
        1 for order, outcome in checked if orders.exchanger_knows(order) and outcome != "skipped"
    )
    summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    click.echo(f"Checked {len(checked)} orders due: {summary or 'nothing to do'}.")
    click.echo(
        f"Asked the exchanger about {asked}; {outcomes['skipped']} skipped (another run asked)."
    )
    if outcomes[REVIEW_FOR_AGE]:
        days = current_app.config["OPEN_ORDER_REVIEW_DAYS"]
        click.echo(f"{outcomes[REVIEW_FOR_AGE]} open for {days} days or more went to review.")
    click.echo(f"Next check due: {next_check_due() or 'none, no order can still change'}.")
    if outcomes["error"]:
        click.echo(f"{outcomes['error']} could not be checked; run again later.", err=True)
        raise SystemExit(1)
