"""Order rows, the status rules (`decide`), and the ONE writer that changes a status (design.md 6)."""

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from flask import abort, current_app
from flask_babel import gettext

from . import mail, webhooks
from .db import execute, get_db, is_postgresql, now, query, query_one, scalar, transaction
from .i18n import N_

EXCHANGER_STATUSES = (
    "new",
    "waitPayment",
    "errorPayment",
    "inProgress",
    "inProgressPayout",
    "errorPayout",
    "hold",
    "done",
    "returned",
    "deleted",
)
# Local pre-states: the row exists before the exchanger knows the order.
DRAFT, CREATE_FAILED = "draft", "create_failed"
FINAL = frozenset({"done", "returned", "deleted", CREATE_FAILED})
STATE_OF = {
    DRAFT: "pending",
    "new": "pending",
    "waitPayment": "pending",
    "inProgress": "processing",
    "inProgressPayout": "processing",
    "errorPayout": "processing",
    "hold": "processing",
    "errorPayment": "failed",
    CREATE_FAILED: "failed",
    "done": "paid",
    "returned": "refunded",
    "deleted": "cancelled",
}


# N_: the console shows each as a word, translated there (the code itself in English).
STATES = (
    N_("pending"),
    N_("processing"),
    N_("paid"),
    N_("failed"),
    N_("refunded"),
    N_("cancelled"),
    N_("review"),
)
# What apply_event answers, plus the IPN endpoint's own 'received' (logged) and 'rejected'.
IPN_OUTCOMES = (
    N_("applied"),
    N_("review"),
    N_("unchanged"),
    N_("duplicate"),
    N_("stale"),
    N_("rejected"),
    N_("received"),
)


# The states in words, for buyers (translated where shown).
STATE_LABELS = {
    "pending": N_("waiting for payment"),
    "processing": N_("payment received, being processed"),
    "paid": N_("paid"),
    "failed": N_("failed"),
    "refunded": N_("refunded"),
    "cancelled": N_("cancelled"),
    "review": N_("being checked by the shop"),
}


def payment_state(order):
    """What the buyer and the merchant are told: pending, processing, paid, failed, ... or review."""
    if order["review_reason"]:
        return "review"
    return STATE_OF.get(order["status"], "processing")


CANCELLABLE = frozenset({"new", "waitPayment"})


def is_final(order):
    return order["status"] in FINAL


def exchanger_knows(order):
    """True when the shop holds what order/get needs: the exchanger's uid and secret.

    A draft claimed by an IPN has the uid but not the secret, which only order/create's answer
    carries: such an order learns its status from IPNs alone.
    """
    return bool(order["exchanger_uid"]) and bool(order["exchanger_secret"])


def is_cancellable(order):
    """The exchanger lets an order be cancelled only before the buyer has paid."""
    return order["status"] in CANCELLABLE and exchanger_knows(order)


def find_by_token(token):
    return query_one(get_db(), "SELECT * FROM orders WHERE token = :token", {"token": token})


def get_order_by_token(token):
    order = find_by_token(token)
    if order is None:
        abort(404)
    return order


def find_by_checkout_key(checkout_key):
    if not checkout_key:
        return None
    return query_one(
        get_db(), "SELECT * FROM orders WHERE checkout_key = :key", {"key": checkout_key}
    )


def get_items(order_id):
    return query(
        get_db(),
        "SELECT * FROM order_items WHERE order_id = :order_id ORDER BY product_id",
        {"order_id": order_id},
    )


def create_draft(db, draft, lines):
    """Write the order and its items before the exchanger hears of it; returns (row, is_new).

    A second submit of the same checkout form (same checkout_key) returns the first one's row.
    """
    with transaction(db):
        stamp = now()
        # The unique checkout_key decides between two submits, on any host: the second one's
        # insert does nothing (it waits for the first's commit on PostgreSQL) and finds its row.
        order_id = scalar(
            db,
            "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency, price,"
            " route_id, from_xml, from_name, to_xml, send_amount, requisites, buyer_email,"
            " ipn_secret, status, next_poll_at, payment_id, reference)"
            " VALUES (:token, :checkout_key, :stamp, :stamp, :lang, :currency, :price, :route_id,"
            " :from_xml, :from_name, :to_xml, :send_amount, :requisites, :buyer_email,"
            " :ipn_secret, :status, :stamp, :payment_id, :reference)"
            " ON CONFLICT (checkout_key) DO NOTHING RETURNING id",
            # payment_id and reference: set when the order pays a payment link or API payment.
            {"payment_id": None, "reference": None, **draft, "stamp": stamp, "status": DRAFT},
        )
        if order_id is None:
            existing = query_one(
                db,
                "SELECT * FROM orders WHERE checkout_key = :key",
                {"key": draft["checkout_key"]},
            )
            return existing, False
        if lines:  # executemany of nothing is an error
            execute(
                db,
                "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)"
                " VALUES (:order_id, :product_id, :name, :unit_price, :quantity)",
                [
                    {
                        "order_id": order_id,
                        "product_id": p.id,
                        "name": p.name,
                        "unit_price": str(p.price),
                        "quantity": qty,
                    }
                    for p, qty, _ in lines
                ],
            )
        add_history(db, order_id, None, DRAFT, "checkout", stamp)
        return get_order(db, order_id), True


def get_order(db, order_id, for_update=False):
    """The order row; for_update locks it until the transaction ends (PostgreSQL).

    On SQLite the transaction's BEGIN IMMEDIATE already holds the only write lock there is.
    """
    sql = "SELECT * FROM orders WHERE id = :id"
    if for_update and is_postgresql(db):
        sql += " FOR UPDATE"
    return query_one(db, sql, {"id": order_id})


def add_history(db, order_id, old_status, new_status, source, stamp, provider_ts=None, note=None):
    """The one writer of status_history: a line for every change of an order, from any source."""
    execute(
        db,
        "INSERT INTO status_history (order_id, old_status, new_status, source, provider_ts,"
        " note, created_at) VALUES (:order_id, :old_status, :new_status, :source,"
        " :provider_ts, :note, :created_at)",
        {
            "order_id": order_id,
            "old_status": old_status,
            "new_status": new_status,
            "source": source,
            "provider_ts": provider_ts,
            "note": note,
            "created_at": stamp,
        },
    )


def record_created(db, order_id, created):
    """Store the exchanger's ids and quote for a draft and move it to 'new', in one transaction.

    One transaction, so an IPN that arrives the moment the ids are known cannot be overwritten
    by the 'new' that follows them.
    """
    with transaction(db):
        execute(
            db,
            "UPDATE orders SET exchanger_id = :exchanger_id, exchanger_uid = :uid,"
            " exchanger_rid = :rid, exchanger_secret = :secret, quoted_in = :quoted_in,"
            " quoted_out = :quoted_out, create_error = NULL, updated_at = :now WHERE id = :id",
            {
                "exchanger_id": created.id,
                "uid": created.uid,
                "rid": created.rid,
                "secret": created.secret,
                "quoted_in": str(created.in_amount),
                "quoted_out": str(created.out_amount),
                "now": now(),
                "id": order_id,
            },
        )
        return apply_event(db, order_id, Event("create", "new"))


def record_create_error(db, order_id, reason, final):
    """Note why creation failed; final=True when the exchanger surely made no order."""
    with transaction(db):
        execute(
            db,
            "UPDATE orders SET create_error = :reason, updated_at = :now WHERE id = :id",
            {"reason": reason, "now": now(), "id": order_id},
        )
        if final:
            apply_event(db, order_id, Event("create", CREATE_FAILED, note=reason))


# -- the status rules: one pure function, and the one writer that applies its decisions -------

# Final states that say the same thing about money: nothing was paid, nothing is owed. An order
# the shop gave up creating that the exchanger later reports cancelled is consistent, not a
# contradiction.
NO_MONEY_MOVED = frozenset({CREATE_FAILED, "deleted"})


@dataclass(frozen=True)
class Event:
    """Something that says what an order's status is, from one of four sources.

    kind: 'ipn' (the exchanger's notification), 'poll' (its order/get answer), 'console' (the
    merchant's action, already accepted by the exchanger), 'create' (the order/create outcome,
    or the shop giving up on it) or 'flag' (the shop asks a person to look: note says why).
    at_ms: the exchanger's time of this status in milliseconds: an IPN's timestamp, or the
    order/get answer's time of last change when it carries one; None when unknown.
    seen_version: for a poll, the order's version when the question was sent.
    refund_check: for a poll, that reconcile made it because the done order's refund check
    was due; only such a poll counts as one (a page's poll just after done must not).
    """

    kind: str
    status: str
    at_ms: int | None = None
    seen_version: int | None = None
    in_amount: Decimal | None = None
    out_amount: Decimal | None = None
    note: str | None = None
    refund_check: bool = False


@dataclass(frozen=True)
class Decision:
    """What an event does to an order.

    outcome: 'applied'; 'review' (applied, and a person must look: review_reason says why);
    'unchanged' (it says what the order already says); 'duplicate' or 'stale' (older than what
    the order knows: nothing changes); 'raced' (a poll answer overtaken by a change made while
    it was on its way: dropped, ask again).
    settle: 'start' when the order becomes done (its refund checks begin), 'stop' when it
    reaches another final state, 'check' when a poll found a done order still done.
    """

    outcome: str
    status: str | None = None
    review_reason: str | None = None
    settle: str | None = None

    @property
    def changes_order(self):
        return self.outcome in ("applied", "review")


def decide(order, event):
    """The status rules (design.md section 6), as a pure function of the order row and an event."""
    status = order["status"]
    last_ms = order["last_event_ms"]
    if event.kind == "create":
        # Only a draft waits for its creation outcome; an IPN may have moved it on already.
        if status != DRAFT:
            return Decision("stale")
        return Decision("applied", event.status, settle="stop" if event.status in FINAL else None)
    if event.kind == "flag":
        # The first reason stands until a person resolves it.
        return (
            Decision("unchanged")
            if order["review_reason"]
            else Decision("review", status, event.note)
        )
    if event.kind == "poll" and event.seen_version != order["version"]:
        return Decision("raced")
    if event.at_ms is not None and last_ms is not None:
        if event.kind == "ipn" and event.at_ms <= last_ms:
            same = event.at_ms == last_ms and event.status == status
            return Decision("duplicate" if same else "stale")
        if event.at_ms < last_ms and event.status != status:
            return Decision("stale")
    if event.status == status:
        checked = event.kind == "poll" and event.refund_check and status == "done"
        return Decision("unchanged", settle="check" if checked else None)
    if status in FINAL:
        return after_final(order, event)
    if event.status == "done":
        reason = underpaid_reason(order, event.out_amount)
        return Decision("review" if reason else "applied", "done", reason, settle="start")
    return Decision("applied", event.status, settle="stop" if event.status in FINAL else None)


def after_final(order, event):
    """An event that disagrees with a final state: stale, or a contradiction a person must see.

    The exchanger's `returned` and `deleted` are terminal, and `done` can be followed only by a
    refund or a removal. So a non-final status after a final one, or any final after `returned`
    or `deleted`, is an earlier step arriving late: it changes nothing and flags nothing. A
    refund after `done` is real news: the status follows the exchanger, so that nothing counts
    the order as paid, and the order goes to review. The shop's own `create_failed` means it
    gave up on an order the exchanger may have made after all: `deleted` agrees with it,
    anything else means money moved and a person must look.
    """
    status = order["status"]
    if event.status not in FINAL or status in ("returned", "deleted"):
        return Decision("stale")
    if {status, event.status} <= NO_MONEY_MOVED:
        return Decision("unchanged")
    reason = f"the exchanger reported {event.status} after {status}"
    settle = "start" if event.status == "done" else "stop"
    return Decision("review", event.status, reason, settle=settle)


def underpaid_reason(order, out_amount):
    """Why a 'done' is not 'paid': the exchanger must report paying out at least the price."""
    if out_amount is None:
        return "done without a reported out amount"
    if Decimal(str(out_amount)) < Decimal(order["price"]):
        return (
            f"done, but the exchanger paid out {out_amount} of {order['price']} {order['currency']}"
        )
    return None


def claim_draft(db, order_id, fields):
    """Give a draft in limbo the exchanger ids its verified IPN carries; False if taken.

    Called inside the IPN's transaction, so the ids and the status change commit together.
    `exchanger_id IS NULL` in the UPDATE decides between two IPNs at once, on any host (on
    PostgreSQL the second waits for the first's row lock, then re-reads the row): the same
    order's second IPN finds its own id there and goes on; another order's is refused.
    """
    claimed = execute(
        db,
        "UPDATE orders SET exchanger_id = :exchanger_id, exchanger_uid = :uid, updated_at = :now"
        " WHERE id = :id AND exchanger_id IS NULL",
        {
            "exchanger_id": fields["orderId"],
            "uid": int(fields["orderUID"]),
            "now": now(),
            "id": order_id,
        },
    ).rowcount
    if claimed:
        return True
    return get_order(db, order_id)["exchanger_id"] == fields["orderId"]


def claim_poll(db, order_id, min_seconds=0, not_since=None):
    """Note that order/get is being asked for this order; returns the version it is asked at.

    None when someone (another worker or host) asked less than min_seconds ago, or after the
    time not_since: pages share one question per order per STATUS_POLL_SECONDS, however many
    buyers and workers look, and reconcile runs on several hosts one per run.
    """
    stamp = datetime.now(UTC)
    # Microseconds: reconcile runs started on several hosts in the same second still see
    # which orders another run has claimed since it began.
    cutoff = (not_since or stamp - timedelta(seconds=min_seconds)).isoformat(
        timespec="microseconds"
    )
    last = query_one(db, "SELECT last_polled_at FROM orders WHERE id = :id", {"id": order_id})
    if last["last_polled_at"] and last["last_polled_at"] > cutoff:
        # Asked recently: answered without the write lock, which IPNs need.
        return None
    with transaction(db):
        # One conditional UPDATE: on PostgreSQL a second host's waits for the first's commit,
        # then re-reads last_polled_at and finds it claimed, so one question per order.
        claimed = query_one(
            db,
            "UPDATE orders SET last_polled_at = :stamp WHERE id = :id"
            " AND (last_polled_at IS NULL OR last_polled_at <= :cutoff) RETURNING version",
            {"stamp": stamp.isoformat(timespec="microseconds"), "id": order_id, "cutoff": cutoff},
        )
    return None if claimed is None else claimed["version"]


def apply_event(db, order_id, event):
    """The only way an order's status changes: decide under the write lock, then write.

    The row, its history line and its refund-check schedule change in one transaction (with the
    caller's IPN log line when the caller holds one open). Returns the decision's outcome.
    """
    with transaction(db):
        # FOR UPDATE: a second writer of this order, on any host, waits here until this one
        # commits, then decides on what it wrote (its version, its last event).
        order = get_order(db, order_id, for_update=True)
        decision = decide(order, event)
        if decision.outcome in ("duplicate", "stale", "raced"):
            return decision.outcome
        stamp = now()
        written = write_order(db, order, event, decision, stamp)
        mail.enqueue_for(db, order, decision)  # the buyer's mail commits with the change
        webhooks.enqueue_for(db, order, written)  # so do the merchant's events
        if decision.changes_order:
            add_history(
                db,
                order_id,
                order["status"],
                decision.status,
                event.kind,
                stamp,
                provider_ts=event.at_ms,
                note=event.note or decision.review_reason,
            )
        return decision.outcome


def write_order(db, order, event, decision, stamp):
    """The order row after a decision: status, review, amounts reported, event time, schedule.

    Returns the row as written (RETURNING: no second read inside the writer's lock).
    """
    status = decision.status or order["status"]
    events = [ms for ms in (order["last_event_ms"], event.at_ms) if ms is not None]
    finished_at, checks, check_at = settle_schedule(order, decision.settle, stamp)
    next_poll_at = poll_schedule(order, status, check_at, stamp)
    return query_one(
        db,
        "UPDATE orders SET status = :status, review_reason = :review_reason,"
        " reported_in = :reported_in, reported_out = :reported_out,"
        " last_event_ms = :last_event_ms, finished_at = :finished_at,"
        " settle_checks = :settle_checks, settle_check_at = :settle_check_at,"
        " next_poll_at = :next_poll_at, version = version + :bump, updated_at = :stamp"
        " WHERE id = :id RETURNING *",
        {
            "status": status,
            # A review stays until a person resolves it.
            "review_reason": order["review_reason"] or decision.review_reason,
            "reported_in": amount_text(event.in_amount, order["reported_in"]),
            "reported_out": amount_text(event.out_amount, order["reported_out"]),
            "last_event_ms": max(events, default=None),
            "finished_at": finished_at,
            "settle_checks": checks,
            "settle_check_at": check_at,
            "next_poll_at": next_poll_at,
            "bump": 1 if decision.changes_order else 0,
            "stamp": stamp,
            "id": order["id"],
        },
    )


def amount_text(amount, stored):
    """The amount an event reports, or the stored one: decimal text (NUMERIC on PostgreSQL)."""
    if amount is not None:
        return str(amount)
    return None if stored is None else str(stored)


def settle_schedule(order, settle, stamp):
    """(finished_at, settle_checks, settle_check_at) after a decision.

    A done order is asked about again SETTLEMENT_CHECK_HOURS after it finished (1 h, 24 h, 7
    days by default), because a refund's single IPN can be lost like any other. A poll that
    finds it still done when a check is due counts as that check.
    """
    finished_at, checks, check_at = (
        order["finished_at"],
        order["settle_checks"],
        order["settle_check_at"],
    )
    if settle == "start" and not exchanger_knows(order):
        # Without the exchanger's secret order/get cannot be asked: no checks to schedule.
        return stamp, 0, None
    if settle == "start":
        finished_at, checks = stamp, 0
    elif settle == "stop":
        return finished_at or stamp, checks, None
    elif settle == "check" and check_at is not None and check_at <= stamp:
        checks += 1
    else:
        return finished_at, checks, check_at
    return finished_at, checks, settle_check_due(finished_at, checks)


def settle_check_due(finished_at, checks):
    """When refund check number `checks` (from 0) is due, or None when all were made."""
    hours = current_app.config["SETTLEMENT_CHECK_HOURS"]
    if checks >= len(hours):
        return None
    due = datetime.fromisoformat(finished_at) + timedelta(hours=hours[checks])
    return due.isoformat(timespec="seconds")


# -- when reconcile asks next (next_poll_at) -------------------------------------------------

# How often reconcile asks the exchanger about an open order, by the order's age: (younger
# than, at most this often). A fresh order is asked on every run (cron's, say each minute), so a
# lost IPN of a buyer's payment shows at once; one that has waited hours is mostly a buyer who
# never paid, or an exchanger's operator at work (errorPayment, hold), which an hour's delay
# does not hurt. Older than the last step: daily, until OPEN_ORDER_REVIEW_DAYS; then weekly.
POLL_STEPS = (
    (timedelta(hours=1), timedelta(0)),
    (timedelta(hours=6), timedelta(minutes=10)),
    (timedelta(days=1), timedelta(hours=1)),
)
POLL_DAILY = timedelta(days=1)
# Past the review age a person has been told (the order is in review) and the console can ask
# at any time; a weekly question still finds an exchanger that finishes it late, at a cost of
# one call per order per week however many such orders pile up.
POLL_WEEKLY = timedelta(days=7)


def poll_schedule(order, status, check_at, stamp):
    """next_poll_at after a change at stamp: when reconcile asks next, or None for never.

    A done order's next question is its refund check; other final orders are never asked
    again. An open order is asked again after poll_interval of its age.
    """
    if status == "done":
        return check_at
    if status in FINAL:
        return None
    moment = datetime.fromisoformat(stamp)
    every = poll_interval(moment - datetime.fromisoformat(order["created_at"]))
    if every >= POLL_DAILY:
        # Orders scheduled together (every open order at an upgrade, a day's unpaid orders)
        # would stay due in one run every day or week; up to an eighth later, by id, spreads
        # them over the runs of a few hours.
        every += every * (order["id"] % 64) / 512
    return (moment + every).isoformat(timespec="seconds")


def poll_interval(age):
    """How long an open order of this age waits between two questions (POLL_STEPS)."""
    for younger_than, every in POLL_STEPS:
        if age < younger_than:
            return every
    if age < timedelta(days=current_app.config["OPEN_ORDER_REVIEW_DAYS"]):
        return POLL_DAILY
    return POLL_WEEKLY


def postpone_poll(db, order):
    """Schedule the next look at an open order reconcile could not ask about (a draft still
    waiting, an order without the exchanger's secret): nothing changed, only time passed."""
    stamp = now()
    with transaction(db):
        execute(
            db,
            "UPDATE orders SET next_poll_at = :next_poll_at WHERE id = :id AND version = :version",
            {
                "next_poll_at": poll_schedule(order, order["status"], None, stamp),
                "id": order["id"],
                # A change since the order was read has scheduled it already.
                "version": order["version"],
            },
        )


def note_flagged_for_age(db, order_id):
    """Remember that reconcile sent this open order to review for its age: that happens once."""
    execute(
        db,
        "UPDATE orders SET age_flagged_at = :now WHERE id = :id",
        {"now": now(), "id": order_id},
    )


def requisites(order):
    return json.loads(order["requisites"])


# -- the merchant console's questions -------------------------------------------------------


def statuses_in(state):
    return sorted(status for status, of in STATE_OF.items() if of == state)


# What a console search was taken for: an order token (32 hex digits, as checkout makes them),
# an exchanger order number, or else the start of a buyer's e-mail. Each is one index lookup;
# nothing searches inside a text, which would read every order.
TOKEN_TEXT = re.compile(r"[0-9a-fA-F]{32}")
NUMBER_TEXT = re.compile(r"[0-9]{1,30}")
BIGGEST_UID = 2**63 - 1  # exchanger_uid is a BIGINT
# After every text that starts with a prefix, in code point order (a non-character).
AFTER_PREFIX = "\U0010ffff"


# What the console's list says of a search (translated there), per kind of search.
SEARCH_SHOWS = {
    "token": N_("the order with token %(text)s"),
    "number": N_("the order with exchanger order number %(text)s"),
    "email": N_("orders whose buyer e-mail starts with %(text)s"),
}
SEARCH_FOUND_NONE = {
    "token": N_("No order has the token %(text)s"),
    "number": N_("No order has the exchanger order number %(text)s"),
    "email": N_("No buyer e-mail starts with %(text)s"),
}


@dataclass(frozen=True)
class Search:
    """A console search: kind is 'token', 'number' or 'email' (the start of one)."""

    kind: str
    text: str

    @classmethod
    def of(cls, typed):
        if TOKEN_TEXT.fullmatch(typed):
            return cls("token", typed.lower())
        if NUMBER_TEXT.fullmatch(typed):
            return cls("number", typed.lstrip("0") or "0")
        return cls("email", typed)

    def describe(self):
        """What the page says it shows."""
        return gettext(SEARCH_SHOWS[self.kind], text=self.text)

    def none_found(self):
        return gettext(SEARCH_FOUND_NONE[self.kind], text=self.text)

    def clause(self, db):
        """(SQL condition, parameters): each kind through its own index."""
        if self.kind == "token":
            return "token = :token", {"token": self.text}
        if self.kind == "number":
            if int(self.text) > BIGGEST_UID:
                return "1 = 0", {}  # no order has it, and PostgreSQL's BIGINT could not hold it
            return "exchanger_uid = :uid", {"uid": int(self.text)}
        # A range over the index on lower(buyer_email): "C" order on PostgreSQL, as indexed.
        email = 'lower(buyer_email) COLLATE "C"' if is_postgresql(db) else "lower(buyer_email)"
        return (
            f"{email} >= lower(:prefix) AND {email} < lower(:prefix) || :after_prefix",
            {"prefix": self.text, "after_prefix": AFTER_PREFIX},
        )


def order_filter(db, date_from=None, date_to=None, search=None):
    """([SQL condition], parameters) for the console's filters but the state (see
    state_branches) and the page position (see position_clauses); dates are 'YYYY-MM-DD'
    strings, search a Search."""
    clauses, params = [], {}
    if date_from:
        clauses.append("created_at >= :date_from")
        params["date_from"] = date_from
    if date_to and date_to < date.max.isoformat():
        # created_at is an ISO timestamp: everything on date_to sorts before the next day.
        # (To 9999-12-31, the last day a date can be, is no limit: it has no next day.)
        clauses.append("created_at < :day_after")
        params["day_after"] = (date.fromisoformat(date_to) + timedelta(days=1)).isoformat()
    if search:
        clause, values = search.clause(db)
        clauses.append(clause)
        params.update(values)
    return clauses, params


def list_keys(filters):
    """The columns the list is sorted by, newest first.

    By id, through the key or a state's index; but a date range without a search is sorted by
    (created_at, id), the order of orders_by_created_at and orders_by_state_created, so that a
    page of a month reads that page's entries of the index. Sorted by id, it would read every
    order of the month and sort them all to keep the newest 50 (a month of a million orders:
    83,000). A search picks its own index and finds few orders: it keeps the id order.
    """
    dated = filters.get("date_from") or filters.get("date_to")
    return ("created_at", "id") if dated and not filters.get("search") else ("id",)


def position_clauses(db, keys, before=None, after=None):
    """([SQL condition], parameters) for the orders older than the id `before`, newer than the
    id `after`, in the list's order; None when that order is not there (no page follows it).

    A page's link carries only the id; sorted by (created_at, id), the id's own created_at is
    read by the key, and one row-value comparison is one range of the index.
    """
    clauses, params = [], {}
    for name, position, sign in (("before", before, "<"), ("after", after, ">")):
        if position is None:
            continue
        params[name] = position
        if keys == ("id",):
            clauses.append(f"id {sign} :{name}")
            continue
        stamp = scalar(db, "SELECT created_at FROM orders WHERE id = :id", {"id": position})
        if stamp is None:
            return None
        clauses.append(f"(created_at, id) {sign} (:{name}_at, :{name})")
        params[f"{name}_at"] = stamp
    return clauses, params


def state_branches(state):
    """[(SQL condition, parameters)] whose union is the state, each one range of an index in
    the list's order: a review, or one status of the state not under review (orders_by_state,
    or orders_by_state_created for a date range)."""
    if state == "review":
        return [("review_reason IS NOT NULL", {})]
    if state:
        return [
            (f"review_reason IS NULL AND status = :status_{n}", {f"status_{n}": status})
            for n, status in enumerate(statuses_in(state))
        ]
    return [(None, {})]


def find_orders(filters, limit, before=None, after=None):
    """Up to `limit` orders matching the filters, newest first: those older than the order
    `before` (an id), or the oldest ones newer than the order `after`.

    A state of several statuses reads each status's newest from its index and keeps the
    newest of them all: no sort of every order in the state.
    """
    db = get_db()
    filters = {**filters}
    state = filters.pop("state", None)
    keys = list_keys(filters)
    common, params = order_filter(db, **filters)
    position = position_clauses(db, keys, before=before, after=after)
    if position is None:
        return []
    common += position[0]
    params.update(position[1])
    direction = "ASC" if after is not None else "DESC"
    order = ", ".join(f"{key} {direction}" for key in keys)
    selects = []
    for condition, values in state_branches(state):
        where = " AND ".join(([condition] if condition else []) + common)
        selects.append(
            f"SELECT * FROM orders{' WHERE ' + where if where else ''}"  # noqa: S608 - placeholders only
            f" ORDER BY {order} LIMIT :limit"
        )
        params.update(values)
    if len(selects) == 1:
        sql = selects[0]
    else:
        branches = " UNION ALL ".join(
            f"SELECT * FROM ({select}) AS branch_{n}"  # noqa: S608 - placeholders only
            for n, select in enumerate(selects)
        )
        sql = f"{branches} ORDER BY {order} LIMIT :limit"
    rows = query(db, sql, {**params, "limit": limit})
    return rows[::-1] if after is not None else rows


# Every status an order can have (the IPN, reconcile and the merchant command refuse any other):
# the date range's counts count each one's range of an index.
ALL_STATUSES = (DRAFT, CREATE_FAILED, *EXCHANGER_STATUSES)


def count_by_state(filters):
    """{state: number of orders} for the filters other than state, every state present.

    Without a date or a search these are the counters the database keeps (order_counts); with
    a search, the few orders it finds are counted through its index. A date range counts, for
    each status, its range of orders_by_state_created (the index alone, no sort and no group),
    and the reviews in the range through orders_in_review_by_created: a month of a million
    orders is 83,000 index entries stepped over, not 83,000 rows grouped.
    """
    db = get_db()
    common, params = order_filter(
        db,
        date_from=filters.get("date_from"),
        date_to=filters.get("date_to"),
        search=filters.get("search"),
    )
    review = "CASE WHEN review_reason IS NULL THEN 0 ELSE 1 END"
    where = " AND ".join(common)
    if filters.get("search"):
        sql = f"SELECT status, {review} AS review, COUNT(*) AS n FROM orders WHERE {where}"  # noqa: S608 - placeholders only
        rows = query(db, f"{sql} GROUP BY status, {review}", params)
    elif common:
        counts = [
            f"SELECT :status_{n} AS status, 0 AS review, COUNT(*) AS n FROM orders"  # noqa: S608 - placeholders only
            f" WHERE review_reason IS NULL AND status = :status_{n} AND {where}"
            for n in range(len(ALL_STATUSES))
        ]
        counts.append(
            "SELECT status, 1 AS review, COUNT(*) AS n FROM orders"  # noqa: S608 - placeholders only
            f" WHERE review_reason IS NOT NULL AND {where} GROUP BY status"
        )
        params.update({f"status_{n}": status for n, status in enumerate(ALL_STATUSES)})
        rows = query(db, " UNION ALL ".join(counts), params)
    else:
        rows = query(db, "SELECT status, review, n FROM order_counts")
    counts = dict.fromkeys(STATES, 0)
    for row in rows:
        counts["review" if row["review"] else STATE_OF.get(row["status"], "processing")] += row["n"]
    return counts


def get_history(order_id):
    return query(
        get_db(),
        "SELECT * FROM status_history WHERE order_id = :order_id ORDER BY id",
        {"order_id": order_id},
    )


def get_ipns(order_id):
    return query(
        get_db(),
        "SELECT * FROM ipn_log WHERE order_id = :order_id ORDER BY id",
        {"order_id": order_id},
    )


def ipn_log_entries(outcome=None, limit=50, before=None, after=None):
    """IPN log rows, newest first, with the token of the order each was for: those older than
    the id `before`, or the oldest ones newer than the id `after` (through ipn_log_by_outcome_id
    when filtered by outcome, else the key)."""
    clauses, params = [], {"limit": limit}
    if outcome:
        clauses.append("l.outcome = :outcome")
        params["outcome"] = outcome
    if before is not None:
        clauses.append("l.id < :before")
        params["before"] = before
    if after is not None:
        clauses.append("l.id > :after")
        params["after"] = after
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    order = "ASC" if after is not None else "DESC"
    rows = query(
        get_db(),
        f"SELECT l.*, o.token FROM ipn_log l LEFT JOIN orders o ON o.id = l.order_id{where}"  # noqa: S608
        f" ORDER BY l.id {order} LIMIT :limit",
        params,
    )
    return rows[::-1] if after is not None else rows


def ipn_log_suppressed(limit=20):
    """The latest per-minute counts of rejected IPNs that were not logged one by one."""
    return query(
        get_db(),
        "SELECT * FROM ipn_log_suppressed ORDER BY minute DESC, count DESC LIMIT :limit",
        {"limit": limit},
    )


def prune_ipn_log(cutoff):
    """Delete IPN log entries and flood counts older than cutoff (ISO time); how many entries."""
    db = get_db()
    with transaction(db):
        removed = execute(
            db, "DELETE FROM ipn_log WHERE received_at < :cutoff", {"cutoff": cutoff}
        ).rowcount
        execute(
            db, "DELETE FROM ipn_log_suppressed WHERE minute < :cutoff", {"cutoff": cutoff[:16]}
        )
    return removed


def resolve_review(db, order_id, note):
    """A person looked at a review and says why it is settled; kept in the history."""
    with transaction(db):
        order = get_order(db, order_id, for_update=True)
        if not order["review_reason"]:
            return False
        stamp = now()
        execute(
            db,
            "UPDATE orders SET review_reason = NULL, updated_at = :now WHERE id = :id",
            {"now": stamp, "id": order_id},
        )
        note = f"review resolved: {note}"
        add_history(db, order_id, order["status"], order["status"], "console", stamp, note=note)
        # Out of review is a change of state too (review -> paid, say): the merchant's systems hear it.
        webhooks.enqueue_for(db, order, get_order(db, order_id))
        return True
