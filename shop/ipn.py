"""POST /ipn: the exchanger's notifications, logged raw, verified, then applied (design.md 7).

Protected by its checksum alone (no CSRF, no session): sha256 over the raw posted strings with
the order's own ipnSecret. Every request is answered without calling anyone else.
"""

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import click
import requests
from flask import Blueprint, current_app, g, request
from flask.cli import AppGroup

from . import orders
from .db import get_db, now, transaction

bp = Blueprint("ipn", __name__)

REQUIRED = (
    "orderUID",
    "orderId",
    "newStatus",
    "inAmount",
    "outAmount",
    "xml_from",
    "xml_to",
    "timestamp",
)
HASH_FIELDS = ("hash", "sign", "signature")
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
AMOUNT = re.compile(r"^\d{1,20}(\.\d{1,18})?$")
TOKEN = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_FIELD_LENGTH = 256
LOGGED_HEADERS = ("User-Agent", "X-Forwarded-For", "X-Real-IP", "Content-Length")


class Rejected(Exception):
    def __init__(self, http_status, reason):
        super().__init__(reason)
        self.http_status = http_status
        self.reason = reason


def checksum(fields, secret):
    """The docs' sha256(orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp:ipnSecret)."""
    signed = ":".join(fields[name] for name in REQUIRED[1:]) + ":" + secret
    return hashlib.sha256(signed.encode()).hexdigest()


def parse(body):
    """The fields of a form-encoded IPN; Rejected(400) for anything malformed."""
    try:
        text = body.decode("ascii") if body.isascii() else body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "not a form-encoded body") from None
    fields = {}
    for name, value in pairs:
        if name in fields and not name.startswith("toValues"):
            raise Rejected(400, f"field {name} given twice")
        fields[name] = value
    missing = [name for name in REQUIRED if not fields.get(name)]
    if missing:
        raise Rejected(400, f"missing {', '.join(missing)}")
    if any(len(fields[name]) > MAX_FIELD_LENGTH for name in REQUIRED):
        raise Rejected(400, "a field is too long")
    # Lengths keep both within what SQLite's integers hold.
    if (
        not fields["orderUID"].isdigit()
        or len(fields["orderUID"]) > 15
        or not fields["timestamp"].isdigit()
        or len(fields["timestamp"]) > 16
    ):
        raise Rejected(400, "orderUID and timestamp must be whole numbers")
    if not (AMOUNT.match(fields["inAmount"]) and AMOUNT.match(fields["outAmount"])):
        raise Rejected(400, "amounts must be plain decimal numbers")
    if not all(
        TOKEN.match(fields[name]) for name in ("orderId", "newStatus", "xml_from", "xml_to")
    ):
        raise Rejected(400, "ids, status and currencies must be letters and digits")
    given = next((fields[name] for name in HASH_FIELDS if fields.get(name)), None)
    if given is None or not HEX64.match(given):
        raise Rejected(400, "no checksum (hash, sign or signature) of 64 hex digits")
    fields["_hash"] = given.lower()
    return fields


def signed_by(fields, secret):
    expected = checksum(fields, secret).encode()
    return hmac.compare_digest(expected, fields["_hash"].encode())


def find_order(db, fields):
    """The order this IPN is for, proven by its checksum; Rejected(403) otherwise.

    An unknown orderId may be an order whose order/create answer never reached us: the checksum
    with one of the waiting drafts' random secrets identifies it, and fills in its ids.
    """
    order = db.execute(
        "SELECT * FROM orders WHERE exchanger_id = ?", (fields["orderId"],)
    ).fetchone()
    if order is not None:
        if signed_by(fields, order["ipn_secret"]):
            return order
        raise Rejected(403, "checksum does not match")
    for draft in drafts_in_limbo(db, fields):
        if signed_by(fields, draft["ipn_secret"]):
            with transaction(db):
                db.execute(
                    "UPDATE orders SET exchanger_id = ?, exchanger_uid = ?, updated_at = ? WHERE id = ?",
                    (fields["orderId"], int(fields["orderUID"]), now(), draft["id"]),
                )
            return db.execute("SELECT * FROM orders WHERE id = ?", (draft["id"],)).fetchone()
    raise Rejected(403, "unknown order")


# Drafts in limbo are few and young: an unknown orderId costs at most this many checksums,
# however many drafts an attacker or an outage has left behind.
MAX_DRAFTS_TRIED = 20
# An IPN follows its order/create within minutes; older drafts are reconciliation's business.
LIMBO_WINDOW = timedelta(hours=2)


def drafts_in_limbo(db, fields):
    """The young drafts with no exchanger ids whose currencies match the IPN's, newest first."""
    young = datetime.now(UTC) - LIMBO_WINDOW
    # 'draft' spelled out (orders.DRAFT): SQLite uses the partial index orders_in_limbo only
    # when the query's own text implies its WHERE.
    return db.execute(
        "SELECT * FROM orders WHERE status = 'draft' AND exchanger_id IS NULL AND from_xml = ?"
        " AND to_xml = ? AND created_at >= ? ORDER BY created_at DESC LIMIT ?",
        (
            fields["xml_from"],
            fields["xml_to"],
            young.isoformat(timespec="seconds"),
            MAX_DRAFTS_TRIED,
        ),
    ).fetchall()


def check_matches(order, fields):
    """orderUID and the currencies are not covered by the checksum: they must match the order."""
    if order["exchanger_uid"] is not None and int(fields["orderUID"]) != order["exchanger_uid"]:
        raise Rejected(403, "orderUID does not match the order")
    if (fields["xml_from"], fields["xml_to"]) != (order["from_xml"], order["to_xml"]):
        raise Rejected(403, "currencies do not match the order")
    if fields["newStatus"] not in orders.EXCHANGER_STATUSES:
        raise Rejected(400, "unknown status")


# -- the IPN log and its bound ---------------------------------------------------------------
#
# Every IPN is logged before it is parsed, but only as a bounded prefix of its body; one that
# proves genuine is then stored whole. Each address may have IPN_LOG_PER_ADDRESS_PER_MINUTE
# rejected entries a minute (IPN_LOG_PER_MINUTE across all); past that, a request from it is
# logged only once it proves genuine, and rejected ones are counted per minute and address in
# ipn_log_suppressed. Junk thus costs no fsync and at most a counter update, and a real IPN is
# never dropped or held back.


def over_allowance(db):
    """True when this address, or everyone together, had its fill of rejected entries lately.

    Only rejected entries (and ones still being handled) count: an exchanger sending many
    genuine IPNs never loses the log-first line, while junk soon stops being stored.
    """
    config, since = current_app.config, _minute_ago()
    mine = db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM ipn_log WHERE remote_addr = ?"
        " AND outcome IN ('received', 'rejected') AND received_at >= ? LIMIT ?)",
        (request.remote_addr, since, config["IPN_LOG_PER_ADDRESS_PER_MINUTE"]),
    ).fetchone()[0]
    if mine >= config["IPN_LOG_PER_ADDRESS_PER_MINUTE"]:
        return True
    everyone = db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM ipn_log WHERE outcome IN ('received', 'rejected')"
        " AND received_at >= ? LIMIT ?)",
        (since, config["IPN_LOG_PER_MINUTE"]),
    ).fetchone()[0]
    return everyone >= config["IPN_LOG_PER_MINUTE"]


def _minute_ago():
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")


def _headers():
    return json.dumps(
        {name: request.headers[name][:200] for name in LOGGED_HEADERS if name in request.headers}
    )


def log_received(db, body):
    """Log the IPN (a bounded prefix) before anything else; None when past the allowance."""
    g.ipn_body = body
    prefix = body[: current_app.config["IPN_LOG_PREFIX_BYTES"]].decode("utf-8", "replace")
    # Not fsynced alone: a genuine IPN's outcome is written durably before it is answered, and
    # in WAL mode that commit makes this line durable too.
    with transaction(db, durable=False):
        if over_allowance(db):
            return None
        cursor = db.execute(
            "INSERT INTO ipn_log (received_at, remote_addr, content_type, headers, body, outcome)"
            " VALUES (?, ?, ?, ?, ?, 'received')",
            (now(), request.remote_addr, (request.content_type or "")[:200], _headers(), prefix),
        )
    return cursor.lastrowid


def log_outcome(db, log_id, outcome, reason, order_id=None):
    """Record what became of an IPN: a genuine one whole, a rejected one as its prefix or a count."""
    if outcome == "rejected":
        # Junk is evidence, not money: no fsync of its own.
        with transaction(db, durable=False):
            if log_id is None:
                count_suppressed(db)
            else:
                db.execute(
                    "UPDATE ipn_log SET outcome = ?, reason = ? WHERE id = ?",
                    (outcome, reason, log_id),
                )
        return
    body = g.get("ipn_body", b"").decode("utf-8", "replace")
    with transaction(db):
        if log_id is None:
            db.execute(
                "INSERT INTO ipn_log (received_at, remote_addr, content_type, headers, body,"
                " outcome, reason, order_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now(),
                    request.remote_addr,
                    (request.content_type or "")[:200],
                    _headers(),
                    body,
                    outcome,
                    reason,
                    order_id,
                ),
            )
        else:
            db.execute(
                "UPDATE ipn_log SET outcome = ?, reason = ?, order_id = ?, body = ? WHERE id = ?",
                (outcome, reason, order_id, body, log_id),
            )


def count_suppressed(db):
    db.execute(
        "INSERT INTO ipn_log_suppressed (minute, remote_addr, count, bytes) VALUES (?, ?, 1, ?)"
        " ON CONFLICT (minute, remote_addr) DO UPDATE SET count = count + 1,"
        " bytes = bytes + excluded.bytes",
        (now()[:16], request.remote_addr or "", len(g.get("ipn_body", b""))),
    )


def read_body():
    """At most IPN_MAX_BYTES + 1 bytes of the body: enough to tell that it is too big."""
    limit = current_app.config["IPN_MAX_BYTES"]
    return request.stream.read(limit + 1)


@bp.post("/ipn")
def receive():
    """Log, parse, find the order, verify, check, apply: 200, 400 or 403, never 500."""
    db = get_db()
    body = read_body()
    log_id = log_received(db, body)
    try:
        if len(body) > current_app.config["IPN_MAX_BYTES"]:
            raise Rejected(400, "body too large")
        if request.mimetype != "application/x-www-form-urlencoded":
            raise Rejected(400, "content type must be application/x-www-form-urlencoded")
        fields = parse(body)
        order = find_order(db, fields)
        check_matches(order, fields)
    except Rejected as exc:
        log_outcome(db, log_id, "rejected", exc.reason)
        # The same answer for a wrong checksum and an unknown order: no oracle for forgers.
        return ("Forbidden\n" if exc.http_status == 403 else "Bad request\n"), exc.http_status
    # The change and its log line commit together: one fsync per IPN.
    with transaction(db):
        event = orders.Event(
            "ipn",
            fields["newStatus"],
            at_ms=int(fields["timestamp"]),
            in_amount=Decimal(fields["inAmount"]),
            out_amount=Decimal(fields["outAmount"]),
        )
        outcome = orders.apply_event(db, order["id"], event)
        log_outcome(db, log_id, outcome, None, order["id"])
    return "OK\n", 200


def suppressed_entries(limit=20):
    """The latest per-minute counts of rejected IPNs that were not logged one by one."""
    return (
        get_db()
        .execute(
            "SELECT * FROM ipn_log_suppressed ORDER BY minute DESC, count DESC LIMIT ?", (limit,)
        )
        .fetchall()
    )


def log_entries(outcome=None, limit=50, offset=0):
    """IPN log rows, newest first, with the token of the order each was for."""
    return (
        get_db()
        .execute(
            "SELECT l.*, o.token FROM ipn_log l LEFT JOIN orders o ON o.id = l.order_id"
            " WHERE ? IS NULL OR l.outcome = ? ORDER BY l.id DESC LIMIT ? OFFSET ?",
            (outcome, outcome, limit, offset),
        )
        .fetchall()
    )


# -- command line: a test trigger for merchants, and log upkeep -------------------------------

ipn_cli = AppGroup("ipn", help="Send test IPNs to this shop; prune the IPN log.")


def test_fields(order, status, stale, amount, bad_hash):
    """An IPN for order as the exchanger would sign it (or deliberately not)."""
    last = order["last_event_ms"] or 0
    timestamp = max(last - 1, 0) if stale else max(int(time.time() * 1000), last + 1)
    fields = {
        "orderUID": str(order["exchanger_uid"]),
        "orderId": order["exchanger_id"],
        "newStatus": status,
        "inAmount": order["reported_in"] or order["send_amount"],
        "outAmount": amount or order["price"],
        "xml_from": order["from_xml"],
        "xml_to": order["to_xml"],
        "timestamp": str(timestamp),
    }
    secret = "not-the-secret" if bad_hash else order["ipn_secret"]
    fields["hash"] = checksum(fields, secret)
    return fields


@ipn_cli.command("send")
@click.argument("token")
@click.argument("status", type=click.Choice(orders.EXCHANGER_STATUSES))
@click.option("--stale", is_flag=True, help="Date it before the last IPN the order applied.")
@click.option("--duplicate", is_flag=True, help="Send the same IPN twice.")
@click.option("--bad-hash", is_flag=True, help="Sign it with the wrong secret.")
@click.option("--amount", help="The outAmount to report (default: the order's price).")
def send_command(token, status, stale, duplicate, bad_hash, amount):
    """Post a signed IPN for the order TOKEN to this shop's own /ipn and print the answers."""
    if amount is not None and not AMOUNT.match(amount):
        raise click.BadParameter("a plain decimal number, like 12.50", param_hint="--amount")
    order = get_db().execute("SELECT * FROM orders WHERE token = ?", (token,)).fetchone()
    if order is None:
        raise click.ClickException(f"no order with token {token}")
    if not order["exchanger_id"]:
        raise click.ClickException("the exchanger has not confirmed this order: it has no ids yet")
    fields = test_fields(order, status, stale, amount, bad_hash)
    url = current_app.config["PUBLIC_URL"] + "/ipn"
    # The shop talking to itself over HTTP, as the exchanger would: not an exchanger call.
    for _ in range(2 if duplicate else 1):
        try:
            answer = requests.post(url, data=fields, timeout=(3, 10))
        except requests.RequestException as exc:
            raise click.ClickException(f"{url} did not answer: {type(exc).__name__}") from None
        click.echo(f"{answer.status_code} {answer.text.strip()}")
    after = get_db().execute("SELECT status FROM orders WHERE id = ?", (order["id"],)).fetchone()
    click.echo(f"Order {token} is now {after['status']}.")


@ipn_cli.command("prune")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
def prune_command(days):
    """Delete IPN log entries older than DAYS: the log is evidence, not an archive."""
    cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    db = get_db()
    with transaction(db):
        removed = db.execute("DELETE FROM ipn_log WHERE received_at < ?", (cutoff,)).rowcount
        db.execute("DELETE FROM ipn_log_suppressed WHERE minute < ?", (cutoff[:16],))
    click.echo(f"Removed {removed} IPN log entries older than {days} days.")
