"""POST /ipn: the exchanger's notifications, logged raw, verified, then applied (design.md 7).

Protected by its checksum alone (no CSRF, no session): sha256 over the raw posted strings with
the order's own ipnSecret. Every request is answered without calling anyone else.
"""

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

from flask import Blueprint, current_app, g, request

from . import orders
from .db import execute, get_db, now, query, query_one, scalar, transaction

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
# Where the checksum travels is not public (the docs: "string for create secure hash in ipn
# url"): a guess, so every plausible name is read, in the body and in the query string, in any
# letter case. Only a value that verifies with the order's own secret ever counts.
CHECKSUM_NAMES = (
    "hash",
    "sign",
    "signature",
    "checksum",
    "sha256",
    "ipnHash",
    "ipn_hash",
    "secureHash",
    "secure_hash",
    "hmac",
)
MAX_CANDIDATES = 8
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# Any way a platform might spell a number: 2, 2.00, .5, 1e-7, 1.571328406072E+12.
NUMBER = re.compile(r"^\+?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$")
AMOUNT = re.compile(r"^\d{1,20}(\.\d{1,18})?$")
TOKEN = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_FIELD_LENGTH = 256
MAX_NAMES_LOGGED = 40
LOGGED_HEADERS = ("User-Agent", "X-Forwarded-For", "X-Real-IP", "Content-Length")


class Rejected(Exception):
    def __init__(self, http_status, reason):
        super().__init__(reason)
        self.http_status = http_status
        self.reason = reason


def checksum(fields, secret):
    """The docs' sha256(orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp:ipnSecret).

    Over the strings exactly as they arrived (2 is not 2.00): parse() keeps them in "_raw".
    """
    raw = fields.get("_raw", fields)
    signed = ":".join(raw[name] for name in REQUIRED[1:]) + ":" + secret
    return hashlib.sha256(signed.encode()).hexdigest()


def parse(body, mimetype="application/x-www-form-urlencoded", query=()):
    """The fields of an IPN, form-encoded (the docs) or JSON; Rejected(400) if malformed.

    Values that are numbers come back in one plain spelling for comparisons; the raw strings,
    which the checksum covers, are kept in "_raw", and every checksum found in "_candidates".
    """
    fields = read_fields(body, mimetype)
    missing = [name for name in REQUIRED if not fields.get(name)]
    if missing:
        raise Rejected(400, f"missing {', '.join(missing)} (arrived: {names_of(fields, query)})")
    if any(len(fields[name]) > MAX_FIELD_LENGTH for name in REQUIRED):
        raise Rejected(400, "a field is too long")
    plain = {name: fields[name] for name in REQUIRED}
    # Lengths keep both within what SQLite's integers hold.
    plain["orderUID"] = whole_number(fields["orderUID"], 15)
    plain["timestamp"] = whole_number(fields["timestamp"], 16)
    if plain["orderUID"] is None or plain["timestamp"] is None:
        raise Rejected(400, "orderUID and timestamp must be whole numbers")
    plain["inAmount"], plain["outAmount"] = amount(fields["inAmount"]), amount(fields["outAmount"])
    if plain["inAmount"] is None or plain["outAmount"] is None:
        raise Rejected(400, "amounts must be non-negative numbers")
    if not all(
        TOKEN.match(fields[name]) for name in ("orderId", "newStatus", "xml_from", "xml_to")
    ):
        raise Rejected(400, "ids, status and currencies must be letters and digits")
    candidates = checksum_candidates(fields, query)
    if not candidates:
        raise Rejected(400, f"no checksum of 64 hex digits (arrived: {names_of(fields, query)})")
    plain["_raw"] = {name: fields[name] for name in REQUIRED}
    plain["_candidates"] = candidates
    plain["_hash"] = candidates[0][1]
    plain["_arrived"] = names_of(fields, query)
    return plain


def read_fields(body, mimetype):
    """name -> raw string from a form or a JSON object; JSON numbers keep their own spelling."""
    looks_json = body.lstrip()[:1] == b"{"
    if mimetype in ("application/json", "text/json") or (
        mimetype != "application/x-www-form-urlencoded" and looks_json
    ):
        return read_json(body)
    try:
        text = body.decode("ascii") if body.isascii() else body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "neither a form-encoded nor a JSON body") from None
    fields = {}
    for name, value in pairs:
        if name in fields and not name.startswith("toValues"):
            raise Rejected(400, f"field {name} given twice")
        fields[name] = value
    return fields


def read_json(body):
    def refuse_constant(name):
        raise ValueError(name)

    def refuse_repeats(pairs):
        # As in a form: a field given twice could be read one way and signed the other.
        if len({name for name, _ in pairs}) != len(pairs):
            raise ValueError("a field given twice")
        return dict(pairs)

    try:
        data = json.loads(
            body,
            parse_float=str,
            parse_int=str,
            parse_constant=refuse_constant,
            object_pairs_hook=refuse_repeats,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejected(400, "not a JSON object") from None
    if not isinstance(data, dict) or len(data) > 200:
        raise Rejected(400, "not a JSON object")
    # toValues (a list) is informational and not signed; other non-text values are ignored.
    return {name: value for name, value in data.items() if isinstance(value, str)}


def whole_number(text, max_digits):
    """text as plain digits if it spells a whole number below 10**max_digits, else None."""
    number = decimal_of(text)
    if number is None or number != number.to_integral_value() or number >= 10**max_digits:
        return None
    return str(int(number))


def amount(text):
    """text as a plain decimal string (1e-7 -> 0.0000001, 2.00 stays 2.00), else None."""
    number = decimal_of(text)
    if number is None:
        return None
    plain = format(number, "f")
    return plain if AMOUNT.match(plain) else None


def decimal_of(text):
    if not NUMBER.match(text):
        return None
    number = Decimal(text)
    # Bounds before any arithmetic: 1e999 is a number, not an amount.
    return number if -30 <= number.adjusted() <= 20 or number == 0 else None


def checksum_candidates(fields, query):
    """(where, lower-case hex) of every plausible checksum in the body, then the query string."""
    wanted = {name.lower() for name in CHECKSUM_NAMES}
    found = [(f"body:{k}", v) for k, v in fields.items() if k.lower() in wanted]
    found += [(f"query:{k}", v) for k, v in query if k.lower() in wanted]
    return [(where, v.lower()) for where, v in found if HEX64.match(v)][:MAX_CANDIDATES]


def names_of(fields, query):
    """The field names that arrived (names only: values may be secrets), for the IPN log."""
    names = [f"body:{k[:40]}" for k in fields][:MAX_NAMES_LOGGED]
    names += [f"query:{k[:40]}" for k, _ in query][:MAX_NAMES_LOGGED]
    # Names are the sender's text: a lone surrogate from JSON cannot be stored as UTF-8.
    return (", ".join(names) or "none").encode("utf-8", "backslashreplace").decode("utf-8")


def verifying_field(fields, secret):
    """Where the checksum that matches secret travelled ("body:hash"), or None.

    Every candidate is compared, in constant time, whatever matched before.
    """
    expected = checksum(fields, secret).encode()
    found = None
    for where, given in fields["_candidates"]:
        if hmac.compare_digest(expected, given.encode()) and found is None:
            found = where
    return found


def signed_by(fields, secret):
    return verifying_field(fields, secret) is not None


def find_order(db, fields):
    """The order this IPN is for, proven by its checksum; Rejected(403) otherwise.

    An unknown orderId may be an order whose order/create answer never reached us: the checksum
    with one of the waiting drafts' random secrets identifies it. Its ids are filled in later,
    inside the IPN's own transaction (orders.claim_draft), together with the status change.
    """
    order = query_one(
        db, "SELECT * FROM orders WHERE exchanger_id = :id", {"id": fields["orderId"]}
    )
    if order is not None:
        if signed_by(fields, order["ipn_secret"]):
            return order
        raise Rejected(403, "checksum does not match")
    for draft in drafts_in_limbo(db, fields):
        if signed_by(fields, draft["ipn_secret"]):
            return draft
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
    return query(
        db,
        "SELECT * FROM orders WHERE status = 'draft' AND exchanger_id IS NULL"
        " AND from_xml = :from_xml AND to_xml = :to_xml AND created_at >= :young"
        " ORDER BY created_at DESC LIMIT :limit",
        {
            "from_xml": fields["xml_from"],
            "to_xml": fields["xml_to"],
            "young": young.isoformat(timespec="seconds"),
            "limit": MAX_DRAFTS_TRIED,
        },
    )


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
    mine = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM ipn_log WHERE remote_addr = :addr"
        " AND outcome IN ('received', 'rejected') AND received_at >= :since LIMIT :limit) AS recent",
        {
            "addr": request.remote_addr,
            "since": since,
            "limit": config["IPN_LOG_PER_ADDRESS_PER_MINUTE"],
        },
    )
    if mine >= config["IPN_LOG_PER_ADDRESS_PER_MINUTE"]:
        return True
    everyone = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM ipn_log WHERE outcome IN ('received', 'rejected')"
        " AND received_at >= :since LIMIT :limit) AS recent",
        {"since": since, "limit": config["IPN_LOG_PER_MINUTE"]},
    )
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
        return scalar(
            db,
            "INSERT INTO ipn_log (received_at, remote_addr, content_type, headers, body, outcome)"
            " VALUES (:now, :addr, :type, :headers, :body, 'received') RETURNING id",
            {
                "now": now(),
                "addr": request.remote_addr,
                "type": (request.content_type or "")[:200],
                "headers": _headers(),
                "body": prefix,
            },
        )


def log_outcome(db, log_id, outcome, reason, order_id=None, checksum_field=None):
    """Record what became of an IPN: a genuine one whole; a rejected one as its logged prefix,
    or, past the allowance, whole if it names a known order (a few an hour), else as a count."""
    rejected = outcome == "rejected"
    values = {
        "outcome": outcome,
        "reason": reason,
        "order_id": order_id,
        "body": _body(),
        "checksum_field": checksum_field,
    }
    # Junk is evidence, not money: no fsync of its own.
    with transaction(db, durable=not rejected):
        if log_id is not None and rejected:
            execute(
                db,
                "UPDATE ipn_log SET outcome = :outcome, reason = :reason, order_id = :order_id"
                " WHERE id = :id",
                {"outcome": outcome, "reason": reason, "order_id": order_id, "id": log_id},
            )
        elif log_id is not None:
            execute(
                db,
                "UPDATE ipn_log SET outcome = :outcome, reason = :reason, order_id = :order_id,"
                " body = :body, checksum_field = :checksum_field WHERE id = :id",
                {**values, "id": log_id},
            )
        elif rejected and not (order_id and room_for_order(db, order_id)):
            count_suppressed(db)
        else:
            execute(
                db,
                "INSERT INTO ipn_log (received_at, remote_addr, content_type, headers, body,"
                " outcome, reason, order_id, checksum_field) VALUES (:now, :addr, :type,"
                " :headers, :body, :outcome, :reason, :order_id, :checksum_field)",
                {
                    **values,
                    "now": now(),
                    "addr": request.remote_addr,
                    "type": (request.content_type or "")[:200],
                    "headers": _headers(),
                },
            )


def _body():
    return g.get("ipn_body", b"").decode("utf-8", "replace")


# Rejected IPNs naming an order the shop knows are kept past the flood allowance, this many
# per order an hour: most likely the exchanger's own, failing for a reason the merchant must
# see (a checksum under a name the shop does not read), and junk cannot crowd them out.
REJECTED_KEPT_PER_ORDER = 10


def order_named(db, body, fields):
    """The id of the known order an IPN names by its orderId, or None."""
    if fields is not None:
        named = fields["orderId"]
    else:
        try:
            named = read_fields(body, request.mimetype).get("orderId")
        except Rejected:
            return None
    if not isinstance(named, str) or not TOKEN.match(named):
        return None
    order = query_one(db, "SELECT id FROM orders WHERE exchanger_id = :id", {"id": named})
    return None if order is None else order["id"]


def room_for_order(db, order_id):
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    kept = scalar(
        db,
        "SELECT COUNT(*) FROM ipn_log WHERE order_id = :order_id AND outcome = 'rejected'"
        " AND received_at >= :since",
        {"order_id": order_id, "since": since},
    )
    return kept < REJECTED_KEPT_PER_ORDER


def count_suppressed(db):
    # One statement that inserts or adds: hosts counting the same minute and address at once
    # meet on the primary key, and the loser's insert turns into the update (no lost count).
    execute(
        db,
        "INSERT INTO ipn_log_suppressed (minute, remote_addr, count, bytes)"
        " VALUES (:minute, :addr, 1, :bytes)"
        " ON CONFLICT (minute, remote_addr) DO UPDATE SET"
        " count = ipn_log_suppressed.count + 1,"
        " bytes = ipn_log_suppressed.bytes + excluded.bytes",
        {
            "minute": now()[:16],
            "addr": request.remote_addr or "",
            "bytes": len(g.get("ipn_body", b"")),
        },
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
    fields = None
    try:
        if len(body) > current_app.config["IPN_MAX_BYTES"]:
            raise Rejected(400, "body too large")
        query_args = list(request.args.items(multi=True))
        fields = parse(body, request.mimetype, query_args)
        order = find_order(db, fields)
        check_matches(order, fields)
    except Rejected as exc:
        named = order_named(db, body, fields)
        log_outcome(db, log_id, "rejected", with_arrived(exc.reason, fields), order_id=named)
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
        if order["exchanger_id"] is None and not orders.claim_draft(db, order["id"], fields):
            log_outcome(db, log_id, "rejected", "the draft was claimed by another order")
            return "Forbidden\n", 403
        outcome = orders.apply_event(db, order["id"], event)
        # Which field held the checksum that verified, for `flask ipn inspect`.
        where = verifying_field(fields, order["ipn_secret"])
        log_outcome(db, log_id, outcome, None, order["id"], checksum_field=where)
    return "OK\n", 200


def with_arrived(reason, fields):
    """A 403's reason plus the names of the fields that arrived: what did the platform send?"""
    if fields is None or "arrived:" in reason:
        return reason
    return f"{reason} (checksum tried: {', '.join(w for w, _ in fields['_candidates'])};" + (
        f" arrived: {fields['_arrived']})"
    )
