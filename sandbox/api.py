"""The platform's JSON API under /service/api/v1/, plus the sandbox's own control methods."""

import hashlib
import hmac
import json
import re
import secrets
import time
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import BadRequest

from . import orders
from .db import get_db
from .errors import (
    ANTI_FLOOD,
    BAD_REQUEST,
    CAPTCHA_REQUIRED,
    MAINTENANCE,
    NOT_AUTHORISED,
    ORDER_NOT_FOUND,
    ROUTE_UNAVAILABLE,
    STATUS_CHANGE_NOT_ALLOWED,
    UNKNOWN_METHOD,
    ApiError,
)
from .faults import FaultSettingError
from .jsjson import js_json

bp = Blueprint("api", __name__, url_prefix="/service/api/v1")

BRACKET_KEY = re.compile(r"^(\w+)\[(\d{1,3})\]\[(\w+)\]$")


def sandbox():
    return current_app.extensions["sandbox"]


# -- request parsing -------------------------------------------------------------------------


def read_params():
    """(query, body) as dicts: reads come as GET queries or JSON POSTs, writes as JSON or forms."""
    query = request.args.to_dict(flat=True)
    if request.method == "GET" or not request.get_data(cache=True):
        return query, {}
    if request.mimetype == "application/x-www-form-urlencoded":
        return query, nest_brackets(request.form)
    try:
        body = json.loads(request.get_data(cache=True))
    except ValueError:
        raise ApiError(BAD_REQUEST, "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(BAD_REQUEST, "Request body must be a JSON object")
    return query, body


def nest_brackets(form):
    """fromValues[0][key]=a&fromValues[0][value]=b -> {"fromValues": [{"key": "a", "value": "b"}]}."""
    params, lists = {}, {}
    for name, value in form.items(multi=False):
        match = BRACKET_KEY.match(name)
        if match:
            group, index, key = match.group(1), int(match.group(2)), match.group(3)
            lists.setdefault(group, {}).setdefault(index, {})[key] = value
        else:
            params[name] = value
    for group, items in lists.items():
        params[group] = [items[i] for i in sorted(items)]
    return params


def param(params, name, *aliases):
    for key in (name, *aliases):
        if params.get(key) not in (None, ""):
            return params[key]
    return None


# -- merchant authorisation ------------------------------------------------------------------


def signature(params, api_secret):
    """sha256_hex(sha256_hex(JSON.stringify of query-then-body params) + api_secret).

    Over the params as a Node server holds them after parsing: numbers re-written the way
    JavaScript writes them, so 150.0 in a body is signed as 150.
    """
    inner = hashlib.sha256(js_json(params).encode()).hexdigest()
    return hashlib.sha256((inner + api_secret).encode()).hexdigest()


def authorise(params):
    """The API key of a correctly signed request; ApiError 40301 for anything else."""
    keys = current_app.config["API_KEYS"]
    if not keys:
        return None
    key = request.headers.get("apikey", "")
    given = request.headers.get("hash", "").lower()
    api_secret = keys.get(key)
    refused = ApiError(NOT_AUTHORISED, "Not authorised")
    if api_secret is None or not given.isascii():
        raise refused
    if not hmac.compare_digest(signature(params, api_secret).encode(), given.encode()):
        raise refused
    nonce = str(params.get("time", ""))
    if not nonce.isdigit() or len(nonce) > 19:
        raise refused
    # The nonce is checked only after the signature, so a forger cannot burn a merchant's nonces.
    cursor = get_db().execute(
        "INSERT INTO api_nonces (api_key, last_time) VALUES (?, ?)"
        " ON CONFLICT (api_key) DO UPDATE SET last_time = excluded.last_time"
        " WHERE excluded.last_time > api_nonces.last_time",
        (key, int(nonce)),
    )
    if cursor.rowcount != 1:
        raise refused
    return key


# -- the platform's methods ------------------------------------------------------------------


def route_list(params, api_key):
    return {"routes": sandbox().routes.summaries()}


def route_one(params, api_key):
    route = sandbox().routes.get(param(params, "id", "routeId"))
    if route is None:
        raise ApiError(ROUTE_UNAVAILABLE, "Route is not available")
    return {"route": sandbox().routes.definition(route)}


def order_create(params, api_key):
    captcha = sandbox().faults.current()["captcha"]
    # The sandbox cannot check a real captcha: any non-empty one counts as solved.
    if captcha == "unsigned" and api_key is None and not param(params, "captcha"):
        raise ApiError(CAPTCHA_REQUIRED, "Captcha required")
    route = sandbox().routes.get(params.get("routeId"))
    if route is None:
        raise ApiError(ROUTE_UNAVAILABLE, "Route is not available")
    check_callbacks(params)
    db = get_db()
    return orders.create(sandbox(), db, route, params, api_key)


def check_callbacks(params):
    """ipnUrl and clientCallbackUrl on an allowed origin, when CALLBACK_ORIGINS says which."""
    allowed = current_app.config["CALLBACK_ORIGINS"]
    if allowed is None:
        return
    for name in ("ipnUrl", "clientCallbackUrl"):
        value = params.get(name)
        if value in (None, ""):
            continue
        try:
            parts = urlsplit(value) if isinstance(value, str) else None
        except ValueError:
            parts = None
        if parts is None or f"{parts.scheme}://{parts.netloc}".lower() not in allowed:
            raise ApiError(BAD_REQUEST, f"{name} must be on the shop's own site")


def order_get(params, api_key):
    order = orders.find(get_db(), param(params, "orderUID"), param(params, "orderSecret"))
    if order is None:
        raise ApiError(ORDER_NOT_FOUND, "Order not found")
    hide = param(params, "type") == "payment" and order["hide_out_data"]
    return {"order": orders.public_view(sandbox(), order, hide)}


def order_update_status(params, api_key):
    db = get_db()
    order = orders.find(db, param(params, "orderUID"), param(params, "orderSecret"))
    if order is None:
        raise ApiError(ORDER_NOT_FOUND, "Order not found")
    new_status = params.get("status")
    change = (order["status"], new_status)
    if change not in orders.CLIENT_CHANGES or not orders.change_status(
        sandbox(), db, order, new_status
    ):
        raise ApiError(
            STATUS_CHANGE_NOT_ALLOWED,
            "Status change is not allowed",
            {"from": order["status"], "to": new_status if isinstance(new_status, str) else None},
        )
    return {"ok": 1, "oldStatus": order["status"], "newStatus": new_status}


# -- the sandbox's own control methods (no merchant auth: it is a test tool) -----------------


def control_faults(params, api_key):
    if request.method == "POST":
        try:
            return {"faults": sandbox().faults.update(params)}
        except FaultSettingError as exc:
            raise ApiError(BAD_REQUEST, str(exc)) from None
    return {"faults": sandbox().faults.current()}


def control_set_status(params, api_key):
    status = params.get("status")
    if status not in orders.STATUSES:
        raise ApiError(BAD_REQUEST, f"status must be one of {', '.join(orders.STATUSES)}")
    uid = orders.parse_uid(params.get("orderUID"))
    db = get_db()
    order = db.execute("SELECT * FROM orders WHERE uid = ?", (uid,)).fetchone()
    if order is None:
        raise ApiError(ORDER_NOT_FOUND, "Order not found")
    changed = order["status"] != status and orders.change_status(sandbox(), db, order, status)
    return {"ok": int(changed), "oldStatus": order["status"], "newStatus": status}


def control_orders(params, api_key):
    rows = get_db().execute("SELECT * FROM orders ORDER BY uid").fetchall()
    return {
        "orders": [
            {
                "uid": row["uid"],
                "_id": row["id"],
                "secret": row["secret"],
                "status": row["status"],
                "inAmount": row["in_amount"],
                "outAmount": row["out_amount"],
                "routeId": row["route_id"],
            }
            for row in rows
        ]
    }


def control_ipn_log(params, api_key):
    query, args = "SELECT * FROM ipn_deliveries", ()
    if params.get("orderUID"):
        query, args = query + " WHERE order_uid = ?", (str(params["orderUID"]),)
    rows = get_db().execute(query + " ORDER BY id", args).fetchall()
    return {"deliveries": [dict(row) for row in rows]}


PLATFORM = {
    "public/exchanger/route/get": (("GET", "POST"), route_list),
    "public/exchanger/route/get/one": (("GET", "POST"), route_one),
    "public/exchanger/order/create": (("POST",), order_create),
    "public/exchanger/order/get": (("GET", "POST"), order_get),
    "public/exchanger/order/update-status": (("PUT",), order_update_status),
}
CONTROL = {
    "sandbox/faults": (("GET", "POST"), control_faults),
    "sandbox/order/set-status": (("POST",), control_set_status),
    "sandbox/orders": (("GET",), control_orders),
    "sandbox/ipn-log": (("GET",), control_ipn_log),
}


def envelope(payload, started):
    payload["latency_ms"] = int((time.monotonic() - started) * 1000)
    payload["requestId"] = f"{int(time.time() * 1000)}-{secrets.token_urlsafe(5)}"
    return Response(json.dumps(payload), mimetype="application/json")


@bp.route("/<path:method>", methods=("GET", "POST", "PUT"))
def call(method):
    """Every API method: parse, authorise, inject faults, run, wrap in the envelope."""
    started = time.monotonic()
    method = method.strip("/")
    platform = method in PLATFORM
    allowed, handler = PLATFORM.get(method) or CONTROL.get(method) or ((), None)
    try:
        if handler is None or request.method not in allowed:
            raise ApiError(UNKNOWN_METHOD, "Unknown method")
        query, body = read_params()
        api_key = authorise({**query, **body}) if platform else None
        faults = sandbox().faults.current() if platform else None
        broken = injected_failure(faults) if platform else None
        if broken is not None:
            return broken
        data = handler({**query, **body}, api_key)
        if platform:
            delay_answer(faults)
        return envelope({"success": True, "data": data}, started)
    except ApiError as exc:
        return envelope(exc.envelope(), started)
    except BadRequest:
        return envelope(ApiError(BAD_REQUEST, "Malformed request").envelope(), started)


# -- fault injection on the platform's methods -----------------------------------------------

HTML_ERROR = "<!doctype html><html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"


def injected_failure(settings):
    """A broken answer when the fault settings say so, after the configured latency."""
    faults = sandbox().faults
    time.sleep(faults.seconds(settings["api_latency"]))
    if not faults.happens(settings["api_error"]):
        return None
    kind = faults.choice(settings["api_error_kinds"])
    if kind == "envelope":
        return Response(
            json.dumps(ApiError(MAINTENANCE, "Site under maintenance").envelope()),
            mimetype="application/json",
        )
    if kind == "antiflood":
        error = ApiError(ANTI_FLOOD, "Too many requests", {"time": 1})
        return Response(json.dumps(error.envelope()), mimetype="application/json")
    if kind == "http500":
        return Response(HTML_ERROR.format("500 Internal Server Error"), 500, mimetype="text/html")
    if kind == "html":
        return Response(HTML_ERROR.format("Checking your browser..."), mimetype="text/html")
    return Response('{"success": true, "data": {"rou', mimetype="application/json")


def delay_answer(settings):
    """Answer late, having done the work: a slow answer, or (hang) one the client gave up on."""
    faults = sandbox().faults
    time.sleep(faults.seconds(settings["api_answer_delay"]))
    if faults.happens(settings["api_hang"]):
        time.sleep(settings["api_hang_seconds"])
