"""Payments that are not a cart: the ONE door that makes a payment request, for links and the API.

A payment is an amount in the settlement currency with a description, optionally the
merchant's reference, the buyer's e-mail, a return URL and an expiry. The buyer pays it at
/pay/<token> (shop/paylinks.py) through the same route choice and checkout as a cart; every
attempt is an ordinary order carrying payment_id and the reference, so the status rules, IPNs
and reconcile treat it like any other order, and a payment's state is read from its orders.
"""

import hashlib
import json
import re
import secrets
from datetime import UTC
from decimal import Decimal
from urllib.parse import urlsplit

from flask import current_app

from . import orders
from .db import execute, get_db, now, query, query_one, scalar, transaction
from .i18n import N_

# The settlement currencies are tokens with at most 8 decimals; a link for a billion is a typo.
MAX_DECIMALS = 8
MAX_AMOUNT = Decimal("1000000000")
MAX_DESCRIPTION = 200
MAX_REFERENCE = 100
MAX_EMAIL = 254
MAX_URL = 2000
AMOUNT = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,8})?$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Line and paragraph separators (a second line all the same), and the bidi embeddings,
# overrides and isolates that make a description read backwards on the buyer's page.
NOT_ONE_LINE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")

# States of a payment, from its orders: the first that any order is in wins, in this order;
# with none of them, the payment is disabled, expired or open (no attempt, or only failed or
# cancelled ones: the buyer may try again).
ORDER_STATE_PRIORITY = ("paid", "processing", "review", "pending", "refunded")
PAYMENT_STATES = (*ORDER_STATE_PRIORITY, N_("disabled"), N_("expired"), N_("open"))
# A single-use payment is used up once money has moved on one of its orders (or may have: a
# review). An unpaid attempt (pending, failed, cancelled) does not use it up: a buyer who
# abandons the exchanger's page may come back to the link and pay.
USED_UP = frozenset({"paid", "processing", "review", "refunded"})


class Invalid(ValueError):
    """A value a payment cannot have; field names it, message says why (in English).

    The API answers with message; the console translates template with values (N_ marks each).
    """

    def __init__(self, field, template, **values):
        message = template % values if values else template
        super().__init__(message)
        self.field = field
        self.message = message
        self.template = template
        self.values = values


def parse_amount(text):
    """The amount as a Decimal: a plain positive decimal with at most 8 decimals."""
    if not isinstance(text, str) or not AMOUNT.match(text.strip()):
        raise Invalid("amount", N_('must be a decimal string like "12.50", at most 8 decimals'))
    amount = Decimal(text.strip())
    if not Decimal(0) < amount < MAX_AMOUNT:
        raise Invalid("amount", N_("must be more than 0 and less than 1000000000"))
    return amount


def check_text(field, value, limit, required):
    """A one-line text of at most limit characters (None when optional and absent)."""
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise Invalid(field, N_("is required"))
        return None
    if not isinstance(value, str):
        raise Invalid(field, N_("must be a string"))
    value = value.strip()
    if required and not value:
        raise Invalid(field, N_("is required"))
    if len(value) > limit:
        raise Invalid(field, N_("must be at most %(limit)s characters"), limit=limit)
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        # Control characters, and the halves of a surrogate pair that JSON's \ud800 can
        # carry alone: no database stores those as text.
        raise Invalid(field, N_("must be one line of printable text"))
    if any(c in NOT_ONE_LINE for c in value):
        raise Invalid(field, N_("must be one line of printable text"))
    return value


def check_email(value):
    value = check_text("buyer_email", value, MAX_EMAIL, required=False)
    if value is not None and not EMAIL.match(value):
        raise Invalid("buyer_email", N_("must be an e-mail address"))
    return value


def check_return_url(value):
    """An absolute http(s) URL with a host and no credentials, or None.

    Shown to the buyer as a link after the payment, never followed automatically: the
    merchant's systems wrote it, but the shop does not send anyone off-site on its say-so.
    """
    value = check_text("return_url", value, MAX_URL, required=False)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise Invalid("return_url", N_("must be an http or https URL")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise Invalid("return_url", N_("must be an http or https URL"))
    if parts.username is not None or parts.password is not None or "\\" in value:
        raise Invalid("return_url", N_("must not carry credentials or backslashes"))
    return value


def stamp(moment):
    """A UTC datetime as the shop stores times (ISO 8601 seconds, +00:00): they sort as text."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def create_payment(
    db,
    *,
    source,
    amount,
    description,
    reference=None,
    buyer_email=None,
    return_url=None,
    single_use=True,
    expires_at=None,
    api_key_id=None,
    idempotency_key=None,
    request_hash=None,
    respond=None,
):
    """Make a payment; returns (row, replayed answer or None).

    With an idempotency_key, the pair (api_key_id, idempotency_key) is unique: a second create
    with the same pair makes nothing and returns the first payment and the answer stored for
    it (respond(row) makes that answer, in the same transaction, so a concurrent retry that
    waited on the first insert finds it). The caller compares request_hash.
    """
    with transaction(db):
        payment_id = scalar(
            db,
            "INSERT INTO payments (token, source, amount, currency, description, reference,"
            " buyer_email, return_url, single_use, expires_at, created_at, api_key_id,"
            " idempotency_key, request_hash)"
            " VALUES (:token, :source, :amount, :currency, :description, :reference,"
            " :buyer_email, :return_url, :single_use, :expires_at, :now, :api_key_id,"
            " :idempotency_key, :request_hash)"
            " ON CONFLICT (api_key_id, idempotency_key) DO NOTHING RETURNING id",
            {
                # URL-safe and 192 bits: guessing one is hopeless.
                "token": secrets.token_urlsafe(24),
                "source": source,
                "amount": str(amount),
                "currency": current_app.config["SETTLEMENT_XML"],
                "description": description,
                "reference": reference,
                "buyer_email": buyer_email,
                "return_url": return_url,
                "single_use": bool(single_use),
                "expires_at": stamp(expires_at) if expires_at else None,
                "now": now(),
                "api_key_id": api_key_id,
                "idempotency_key": idempotency_key,
                "request_hash": request_hash,
            },
        )
        if payment_id is None:
            first = query_one(
                db,
                "SELECT * FROM payments WHERE api_key_id = :key AND idempotency_key = :idem",
                {"key": api_key_id, "idem": idempotency_key},
            )
            return first, first["response"]
        if respond is not None:
            execute(
                db,
                "UPDATE payments SET response = :response WHERE id = :id",
                {"response": respond(get_payment(db, payment_id)), "id": payment_id},
            )
        return get_payment(db, payment_id), None


def body_hash(body):
    """The SHA-256 of a JSON body in canonical form: key order and spacing do not count."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_payment(db, payment_id):
    return query_one(db, "SELECT * FROM payments WHERE id = :id", {"id": payment_id})


def find_by_token(token):
    if not isinstance(token, str) or not TOKEN.match(token):
        return None
    return query_one(get_db(), "SELECT * FROM payments WHERE token = :token", {"token": token})


def for_order(order):
    """The payment an order pays, or None for a cart's order."""
    if not order["payment_id"]:
        return None
    return get_payment(get_db(), order["payment_id"])


def orders_of(payment_ids):
    """{payment id: [its orders, oldest first]} for a page of payments."""
    found = {pid: [] for pid in payment_ids}
    if not found:
        return found
    names = {f"p{i}": pid for i, pid in enumerate(found)}
    placeholders = ", ".join(f":{name}" for name in names)
    # The placeholders are names made above, never input.
    columns = "id, token, payment_id, status, review_reason, price, reported_out, created_at"
    sql = f"SELECT {columns} FROM orders WHERE payment_id IN ({placeholders}) ORDER BY id"  # noqa: S608
    rows = query(get_db(), sql, names)
    for row in rows:
        found[row["payment_id"]].append(row)
    return found


def is_expired(payment, moment=None):
    return bool(payment["expires_at"]) and payment["expires_at"] <= (moment or now())


def is_disabled(payment):
    """Switched off in the console, or made in a settlement currency the shop no longer takes:
    its amount means that currency, and checkout would charge it in the current one."""
    return bool(payment["disabled_at"]) or (
        payment["currency"] != current_app.config["SETTLEMENT_XML"]
    )


def state(payment, its_orders):
    """pending, processing, paid, ... from its orders; else disabled, expired or open."""
    seen = {orders.payment_state(order) for order in its_orders}
    for candidate in ORDER_STATE_PRIORITY:
        if candidate in seen:
            return candidate
    if is_disabled(payment):
        return "disabled"
    if is_expired(payment):
        return "expired"
    return "open"


def refusal(payment, its_orders):
    """Why the buyer may not start paying this payment now: 'used', 'disabled', 'expired', or None.

    A single-use payment that was paid says so first: that is what its buyer most needs to hear.
    """
    if payment["single_use"] and any(orders.payment_state(o) in USED_UP for o in its_orders):
        return "used"
    if is_disabled(payment):
        return "disabled"
    if is_expired(payment):
        return "expired"
    return None


def disable(db, payment_id):
    """Stop a payment taking new attempts; orders already made go on. False if none or already."""
    with transaction(db):
        changed = execute(
            db,
            "UPDATE payments SET disabled_at = :now WHERE id = :id AND disabled_at IS NULL",
            {"now": now(), "id": payment_id},
        )
        return changed.rowcount == 1


def list_payments(limit, before=None, source=None):
    """Newest first, keyset-paged: ids below `before` (the last id of the previous page)."""
    conditions, params = [], {"limit": limit}
    if before is not None:
        conditions.append("id < :before")
        params["before"] = before
    if source is not None:
        conditions.append("source = :source")
        params["source"] = source
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return query(
        get_db(),
        f"SELECT * FROM payments {where} ORDER BY id DESC LIMIT :limit",  # noqa: S608
        params,
    )


def checkout_url(payment):
    return f"{current_app.config['PUBLIC_URL']}/pay/{payment['token']}"


def expiry_from_form(value):
    """A console form's naive datetime (UTC, as labelled) as an aware one."""
    return value.replace(tzinfo=UTC) if value is not None else None
