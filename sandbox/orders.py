"""The sandbox's orders: creation with the platform's checks, lookup, and status changes."""

import hmac
import json
import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from . import ipn
from .errors import FIELD_INVALID, ApiError
from .pricing import quote

STATUSES = (
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
FINAL = frozenset({"done", "returned", "deleted"})
# What a client (the payer's page, a merchant's update-status call) may do; operators may do anything.
CLIENT_CHANGES = frozenset(
    {
        ("new", "waitPayment"),
        ("waitPayment", "inProgress"),
        ("new", "deleted"),
        ("waitPayment", "deleted"),
    }
)
VALUE_GROUPS = ("fromValues", "toValues", "routeValues")


def _random_text(alphabet, length):
    return "".join(secrets.choice(alphabet) for _ in range(length))


def field_values(payload, group, fields):
    """The submitted values for one group of route fields, checked like the platform does."""
    supplied = payload.get(group)
    submitted = {}
    for item in supplied if isinstance(supplied, list) else []:
        if isinstance(item, dict) and "key" in item:
            submitted[str(item["key"])] = item.get("value")
    values = []
    for field in fields:
        value = submitted.get(field["_id"])
        problem = field_problem(field, value)
        if problem:
            raise ApiError(
                FIELD_INVALID,
                f"Param {group} isn't valid: {field['_id']}",
                {
                    "fieldId": field["_id"],
                    "nameField": field["name"],
                    "err": problem,
                    "type": group,
                },
            )
        values.append({"key": field["_id"], "name": field["name"], "value": value or ""})
    return values


def field_problem(field, value):
    """'required', 'type', 'options' or 'regexp' when the value is not acceptable, else None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "required" if field.get("required") else None
    if not isinstance(value, str):
        return "type"
    if field.get("options"):
        return None if value in {o.get("value") for o in field["options"]} else "options"
    if field.get("regexp") and not _matches(field["regexp"], value):
        return "regexp"
    return None


def _matches(pattern, value):
    # The platform runs JavaScript's value.match(regexp): an unanchored search.
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True


def create(sandbox, db, route, payload, api_key):
    """Check an order/create payload against its route and store the order; answer its data."""
    definition = sandbox.routes.definition(route)
    values = {
        group: field_values(payload, group, fields)
        for group, fields in zip(
            VALUE_GROUPS,
            (definition["from"]["fields"], definition["to"]["fields"], definition["fields"]),
            strict=True,
        )
    }
    sent, received = quote(definition, payload.get("amount"))
    now = sandbox.clock.now()
    order_id = secrets.token_hex(12)
    db.execute(
        "INSERT INTO orders (uid, id, rid, secret, route_id, status, in_amount, out_amount,"
        " from_values, to_values, route_values, lang, hide_out_data, client_callback_url,"
        " ipn_url, ipn_secret, partner, api_key, created_at, expires_at, status_changed_at)"
        " VALUES ((SELECT COALESCE(MAX(uid), 10400) + 1 FROM orders),"
        " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order_id,
            _random_text(string.ascii_uppercase + string.digits, 11),
            _random_text(string.ascii_letters + string.digits, 24),
            route["routeId"],
            start_status(sandbox, payload),
            str(sent),
            str(received),
            json.dumps(values["fromValues"]),
            json.dumps(values["toValues"]),
            json.dumps(values["routeValues"]),
            payload.get("lang") if payload.get("lang") in ("en", "ru") else "en",
            1 if _truthy(payload.get("hideOutData")) else 0,
            _text(payload.get("clientCallbackUrl")),
            _text(payload.get("ipnUrl")),
            _text(payload.get("ipnSecret")),
            _text(payload.get("partner")),
            api_key,
            now,
            now + 60 * float(route["orderTTL"]),
            now,
        ),
    )
    order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    return {
        "_id": order["id"],
        "uid": order["uid"],
        "rid": order["rid"],
        "secret": order["secret"],
        "route": {
            "from": {k: definition["from"][k] for k in ("name", "symbol", "xml")},
            "to": {k: definition["to"][k] for k in ("name", "symbol", "xml")},
        },
        "inAmount": float(sent),
        "outAmount": float(received),
    }


def start_status(sandbox, payload):
    """'new' (the payer confirms first) or 'waitPayment': settings, since no public source says
    which a real site uses for server-side orders. The front-end skips the confirm step with
    skipPreview; whether a site honours that from a server is a setting too."""
    settings = sandbox.faults.current()
    if _truthy(payload.get("skipPreview")) and settings["skip_preview"] == "honoured":
        return "waitPayment"
    return settings["start_status"]


def _truthy(value):
    return value is True or value in ("true", "1", 1)


def _text(value):
    return value.strip() if isinstance(value, str) else ""


def parse_uid(value):
    """An order uid from a query or JSON value, or None (also for numbers SQLite cannot hold)."""
    text = str(value)
    return int(text) if text.isdigit() and len(text) <= 15 else None


def find(db, uid, secret):
    """The order with this uid and secret, or None; no hint which of the two was wrong."""
    uid = parse_uid(uid)
    if uid is None:
        return None
    order = db.execute("SELECT * FROM orders WHERE uid = ?", (uid,)).fetchone()
    if order is None or not isinstance(secret, str):
        return None
    if not hmac.compare_digest(order["secret"].encode(), secret.encode()):
        return None
    return order


def change_status(sandbox, db, order, new_status):
    """Move an order on from the status it had when read; each change sends one IPN.

    The update is conditional on the old status so that two workers (autopilot, payer, operator)
    racing on one order make one change, not two.
    """
    now = sandbox.clock.now()
    event_ms = max(int(now * 1000), order["last_event_ms"] + 1)
    cursor = db.execute(
        "UPDATE orders SET status = ?, status_changed_at = ?, last_event_ms = ?"
        " WHERE uid = ? AND status = ? AND last_event_ms = ?",
        (new_status, now, event_ms, order["uid"], order["status"], order["last_event_ms"]),
    )
    if cursor.rowcount != 1:
        return False
    changed = db.execute("SELECT * FROM orders WHERE uid = ?", (order["uid"],)).fetchone()
    route = sandbox.routes.definition(sandbox.routes.get(changed["route_id"], include_hidden=True))
    ipn.notify(sandbox, db, with_to_values(changed), route, new_status, event_ms)
    return True


def with_to_values(order):
    return {**dict(order), "to_values_list": json.loads(order["to_values"])}


def iso(seconds):
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def iso_ms(milliseconds):
    """An exact ISO 8601 time for a whole number of milliseconds (no float rounding)."""
    whole = datetime.fromtimestamp(milliseconds // 1000, UTC)
    return (
        (whole + timedelta(milliseconds=milliseconds % 1000))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def public_view(sandbox, order, hide_to_side):
    """What order/get answers for one order."""
    route = sandbox.routes.get(order["route_id"], include_hidden=True)
    definition = sandbox.routes.definition(route)

    def stored(column):
        return [
            {"field": v["key"], "name": v["name"], "value": v["value"]}
            for v in json.loads(order[column])
        ]

    return {
        "_id": order["id"],
        "uid": order["uid"],
        "rid": order["rid"],
        "status": order["status"],
        "inAmount": float(order["in_amount"]),
        "outAmount": float(order["out_amount"]),
        "createdAt": iso(order["created_at"]),
        "expiresAt": iso(order["expires_at"]),
        # [guess] The time of the last change, to the millisecond of the IPN it sent, so a
        # client can order this answer against IPNs. The platform's field name is unknown.
        "updatedAt": iso_ms(order["last_event_ms"] or int(order["created_at"] * 1000)),
        "route": {
            "from": {
                **side_view(definition["from"]),
                "paymentDetails": payment_details(sandbox.routes.currencies[route["from"]]),
            },
            "to": side_view(definition["to"]),
            "instructions": definition["instructions"],
        },
        "fromValues": stored("from_values"),
        "toValues": [] if hide_to_side else stored("to_values"),
        "routeValues": stored("route_values"),
        # A number, as the order page reads it (new BigNumber(order.rate): "1 : rate" when at
        # least 1, else "1/rate : 1"). [guess] Units of the to currency per unit sent, before
        # any discount: the platform's own definition is not public.
        "rate": float(
            Decimal(str(definition["rate"]["out"])) / Decimal(str(definition["rate"]["in"]))
        ),
        # The front-end's done and deleted panels link back to it (+ "?status=success|error").
        "clientCallbackUrl": order["client_callback_url"],
    }


def side_view(side):
    """One currency of an order's route: what the order and payment pages read of it."""
    return {k: side[k] for k in ("_id", "name", "symbol", "xml", "decimal", "image")}


def payment_details(currency):
    """Where and how to pay, in the shape the payment page's waiting panel reads (wait.vue).

    [guess] The field names are the front-end's; their values here are the sandbox's: no
    merchant widget and no free text, so the page shows its step list: the amount, the
    `account` to send it to, and the order's uid as the comment when the currency needs a memo.
    """
    memo = currency["deposit"].get("memo")
    return {
        "merchantEnabled": False,
        "manualPaymentTextEnabled": False,
        "account": currency["deposit"]["value"],
        "showStepLink": False,
        "linkPS": "",
        "showStepComment": memo is not None,
        "commentTemplate": "[[uid]]" if memo else "",
        "showIPaidBtn": True,
    }
