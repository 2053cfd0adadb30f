"""Order rows, and the ONE function that changes an order's status (design.md section 6)."""

import json
from decimal import Decimal

from flask import abort

from .db import get_db, now, transaction
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


STATES = ("pending", "processing", "paid", "failed", "refunded", "cancelled", "review")
# What set_status answers, plus the IPN endpoint's own 'received' (logged) and 'rejected'.
IPN_OUTCOMES = ("applied", "unchanged", "duplicate", "stale", "final", "rejected", "received")


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


def is_final(order):
    return order["status"] in FINAL


def get_order_by_token(token):
    order = get_db().execute("SELECT * FROM orders WHERE token = ?", (token,)).fetchone()
    if order is None:
        abort(404)
    return order


def find_by_checkout_key(checkout_key):
    if not checkout_key:
        return None
    return (
        get_db().execute("SELECT * FROM orders WHERE checkout_key = ?", (checkout_key,)).fetchone()
    )


def get_items(order_id):
    return (
        get_db()
        .execute("SELECT * FROM order_items WHERE order_id = ? ORDER BY product_id", (order_id,))
        .fetchall()
    )


def create_draft(db, draft, lines):
    """Write the order and its items before the exchanger hears of it; returns (row, is_new).

    A second submit of the same checkout form (same checkout_key) returns the first one's row.
    """
    with transaction(db):
        existing = db.execute(
            "SELECT * FROM orders WHERE checkout_key = ?", (draft["checkout_key"],)
        ).fetchone()
        if existing is not None:
            return existing, False
        stamp = now()
        cursor = db.execute(
            "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency, price,"
            " route_id, from_xml, from_name, to_xml, send_amount, requisites, buyer_email,"
            " ipn_secret, status)"
            " VALUES (:token, :checkout_key, :stamp, :stamp, :lang, :currency, :price, :route_id,"
            " :from_xml, :from_name, :to_xml, :send_amount, :requisites, :buyer_email,"
            " :ipn_secret, :status)",
            {**draft, "stamp": stamp, "status": DRAFT},
        )
        order_id = cursor.lastrowid
        db.executemany(
            "INSERT INTO order_items (order_id, product_id, name, unit_price, quantity)"
            " VALUES (?, ?, ?, ?, ?)",
            [(order_id, p.id, p.name, str(p.price), qty) for p, qty, _ in lines],
        )
        db.execute(
            "INSERT INTO status_history (order_id, old_status, new_status, source, created_at)"
            " VALUES (?, NULL, ?, 'checkout', ?)",
            (order_id, DRAFT, stamp),
        )
        return db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone(), True


def record_created(db, order_id, created):
    """Store the exchanger's ids and quote for a draft and move it to 'new', in one transaction.

    One transaction, so an IPN that arrives the moment the ids are known cannot be overwritten
    by the 'new' that follows them.
    """
    with transaction(db):
        db.execute(
            "UPDATE orders SET exchanger_id = ?, exchanger_uid = ?, exchanger_rid = ?,"
            " exchanger_secret = ?, quoted_in = ?, quoted_out = ?, create_error = NULL,"
            " updated_at = ? WHERE id = ?",
            (
                created.id,
                created.uid,
                created.rid,
                created.secret,
                str(created.in_amount),
                str(created.out_amount),
                now(),
                order_id,
            ),
        )
        return set_status(db, order_id, "new", "create")


def record_create_error(db, order_id, reason, final):
    """Note why creation failed; final=True when the exchanger surely made no order."""
    with transaction(db):
        db.execute(
            "UPDATE orders SET create_error = ?, updated_at = ? WHERE id = ?",
            (reason, now(), order_id),
        )
        if final:
            set_status(db, order_id, CREATE_FAILED, "create", note=reason)


def set_status(
    db, order_id, new_status, source, event_ms=None, in_amount=None, out_amount=None, note=None
):
    """Apply a status from any source (create, ipn, poll, console): the only way a status changes.

    Returns 'applied', 'unchanged', 'duplicate', 'stale' or 'final' (refused: the order is final).
    Runs in one BEGIN IMMEDIATE transaction, so two IPNs for one order cannot interleave.
    """
    with transaction(db):
        order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        last_event = order["last_event_ms"]
        if event_ms is not None and last_event is not None and event_ms <= last_event:
            same = event_ms == last_event and new_status == order["status"]
            return "duplicate" if same else "stale"
        review = order["review_reason"]
        if order["status"] in FINAL and new_status != order["status"]:
            surprise = f"the exchanger reported {new_status} after {order['status']}"
            if source != "poll":
                # A verified notification that contradicts a final state: keep the state, but
                # a person must look (a refund after done, say), so flag it for review.
                flag_for_review(db, order, surprise, source, event_ms)
                return "final"
            # Only the exchanger's own answer may move a final order, and a person should look.
            review = surprise
        if new_status == "done":
            review = review or underpaid_reason(order, out_amount)
        reported_in = str(in_amount) if in_amount is not None else order["reported_in"]
        reported_out = str(out_amount) if out_amount is not None else order["reported_out"]
        events = [e for e in (last_event, event_ms) if e is not None]
        db.execute(
            "UPDATE orders SET status = ?, reported_in = ?, reported_out = ?, last_event_ms = ?,"
            " review_reason = ?, updated_at = ? WHERE id = ?",
            (
                new_status,
                reported_in,
                reported_out,
                max(events, default=None),
                review,
                now(),
                order_id,
            ),
        )
        if new_status == order["status"] and review == order["review_reason"]:
            return "unchanged"
        db.execute(
            "INSERT INTO status_history (order_id, old_status, new_status, source, provider_ts,"
            " note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order_id, order["status"], new_status, source, event_ms, note or review, now()),
        )
        return "applied"


def flag_for_review(db, order, reason, source, event_ms):
    """Record a reason for a person to look, without changing the status (inside a transaction)."""
    if order["review_reason"]:
        return
    db.execute(
        "UPDATE orders SET review_reason = ?, updated_at = ? WHERE id = ?",
        (reason, now(), order["id"]),
    )
    db.execute(
        "INSERT INTO status_history (order_id, old_status, new_status, source, provider_ts,"
        " note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (order["id"], order["status"], order["status"], source, event_ms, reason, now()),
    )


def underpaid_reason(order, out_amount):
    """Why a 'done' is not 'paid': the exchanger must report paying out at least the price."""
    if out_amount is None:
        return "done without a reported out amount"
    if Decimal(str(out_amount)) < Decimal(order["price"]):
        return (
            f"done, but the exchanger paid out {out_amount} of {order['price']} {order['currency']}"
        )
    return None


def requisites(order):
    return json.loads(order["requisites"])


# -- the merchant console's questions -------------------------------------------------------


def statuses_in(state):
    return sorted(status for status, of in STATE_OF.items() if of == state)


def order_filter(state=None, date_from=None, date_to=None, search=None):
    """(WHERE clause, parameters) for the console's filters; dates are 'YYYY-MM-DD' strings."""
    clauses, params = [], []
    if state == "review":
        clauses.append("review_reason IS NOT NULL")
    elif state:
        clauses.append("review_reason IS NULL AND status IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(statuses_in(state)))
    if date_from:
        clauses.append("created_at >= ?")
        params.append(date_from)
    if date_to:
        # created_at is an ISO timestamp: everything on date_to sorts before the next day.
        clauses.append("created_at < date(?, '+1 day')")
        params.append(date_to)
    if search:
        clauses.append(
            "(token = ? OR CAST(exchanger_uid AS TEXT) = ? OR buyer_email LIKE ? ESCAPE '\\')"
        )
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [search, search, f"%{escaped}%"]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def find_orders(filters, limit=None, offset=0):
    """Orders matching the filters, newest first."""
    where, params = order_filter(**filters)
    sql = f"SELECT * FROM orders{where} ORDER BY id DESC"  # noqa: S608 - where holds only placeholders
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = [*params, limit, offset]
    return get_db().execute(sql, params).fetchall()


def count_by_state(filters):
    """{state: number of orders} for the filters other than state, every state present."""
    where, params = order_filter(**{**filters, "state": None})
    rows = (
        get_db()
        .execute(
            f"SELECT status, review_reason IS NOT NULL AS review, COUNT(*) AS n FROM orders{where}"  # noqa: S608
            " GROUP BY status, review",
            params,
        )
        .fetchall()
    )
    counts = dict.fromkeys(STATES, 0)
    for row in rows:
        counts["review" if row["review"] else STATE_OF.get(row["status"], "processing")] += row["n"]
    return counts


def get_history(order_id):
    return (
        get_db()
        .execute("SELECT * FROM status_history WHERE order_id = ? ORDER BY id", (order_id,))
        .fetchall()
    )


def get_ipns(order_id):
    return (
        get_db()
        .execute("SELECT * FROM ipn_log WHERE order_id = ? ORDER BY id", (order_id,))
        .fetchall()
    )


def resolve_review(db, order_id, note):
    """A person looked at a review and says why it is settled; kept in the history."""
    with transaction(db):
        order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if not order["review_reason"]:
            return False
        db.execute(
            "UPDATE orders SET review_reason = NULL, updated_at = ? WHERE id = ?", (now(), order_id)
        )
        db.execute(
            "INSERT INTO status_history (order_id, old_status, new_status, source, note, created_at)"
            " VALUES (?, ?, ?, 'console', ?, ?)",
            (order_id, order["status"], order["status"], f"review resolved: {note}", now()),
        )
        return True
