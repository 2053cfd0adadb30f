"""The merchant's REST API at /api/v1: create payments, read their state, list them.

Authenticated by API keys made in the console (sent as `Authorization: Bearer <key>`), so it
takes no cookie and needs no CSRF token (app.py exempts this blueprint, and only it). Every
answer under /api/ is JSON, errors included: {"error": {"code", "message"[, "field"]}}, with
the codes in ERRORS (and in the OpenAPI description, shop/openapi.py).
"""

import hashlib
import hmac
import json
import re
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from . import orders, payments, throttle
from .console import require_login
from .db import execute, get_db, now, query, query_one, transaction
from .forms import ApiKeyForm, ButtonForm
from .openapi import DOCUMENT

bp = Blueprint("api", __name__, url_prefix="/api/v1")
keys_bp = Blueprint("apikeys", __name__, url_prefix="/console")
keys_bp.before_request(require_login)

# Every error code the API answers with, and its HTTP status.
ERRORS = {
    "missing_api_key": 401,
    "invalid_api_key": 401,
    "revoked_api_key": 401,
    "invalid_json": 400,
    "bad_request": 400,
    "invalid_field": 422,
    "not_found": 404,
    "method_not_allowed": 405,
    "idempotency_conflict": 409,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal_error": 500,
}
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
KEY_PREFIX = "sk_"
KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{10,200}$")
WHOLE_NUMBER = re.compile(r"[0-9]{1,20}")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
CREATE_FIELDS = ("amount", "description", "reference", "buyer_email", "return_url")
MAX_BODY = 16 * 1024
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
# Ids are 32-bit on PostgreSQL: a larger one is simply not found (never a database error).
MAX_ID = 2**31 - 1


class ApiError(Exception):
    def __init__(self, code, message, field=None, headers=None):
        super().__init__(message)
        self.code, self.message, self.field, self.headers = code, message, field, headers or {}


def error_response(code, message, field=None, headers=None):
    body = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(error=body)
    response.status_code = ERRORS[code]
    response.headers.update(headers or {})
    return response


@bp.errorhandler(ApiError)
def api_error(exc):
    return error_response(exc.code, exc.message, exc.field, exc.headers)


def is_api_request():
    return request.path == "/api" or request.path.startswith("/api/")


def http_error(exc):
    """An HTTP error (routing, 405, 413, ...) under /api/ as JSON; None elsewhere."""
    if not is_api_request():
        return None
    status = getattr(exc, "code", None) or 500
    code = HTTP_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    message = exc.description if isinstance(exc, HTTPException) and status < 500 else None
    headers = {}
    allowed = getattr(exc, "valid_methods", None)
    if status == 405 and allowed:
        headers["Allow"] = ", ".join(allowed)
    return error_response(
        code, message or "The server could not finish this request.", None, headers
    )


@bp.errorhandler(Exception)
def unexpected(exc):
    """Never an HTML page (or a traceback) under /api/: a JSON 500, the cause in the log."""
    if isinstance(exc, HTTPException):
        return http_error(exc)
    current_app.logger.exception("API request %s %s failed", request.method, request.path)
    return error_response("internal_error", "The server could not finish this request.")


# -- keys ---------------------------------------------------------------------------------------


def key_hash(key):
    """SHA-256 of the key: keys are 256 random bits, so no salt or slow hash is needed, and
    the lookup by hash leaks nothing a guesser could use."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(db, name):
    """Make a key; the key itself is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(db):
        execute(
            db,
            "INSERT INTO api_keys (name, key_hash, prefix, created_at)"
            " VALUES (:name, :hash, :prefix, :now)",
            {"name": name, "hash": key_hash(key), "prefix": key[:10], "now": now()},
        )
    return key


def authenticate():
    """The key row for this request's bearer token, or an ApiError saying what is wrong."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(
            "missing_api_key",
            "Send your API key as 'Authorization: Bearer <key>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    if scheme.lower() != "bearer" or not KEY_SHAPE.match(token):
        raise ApiError("invalid_api_key", "The API key is not valid.", headers=bearer_error())
    digest = key_hash(token)
    row = query_one(get_db(), "SELECT * FROM api_keys WHERE key_hash = :hash", {"hash": digest})
    # Found by its hash; compared again in constant time all the same.
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        raise ApiError("invalid_api_key", "The API key is not valid.", headers=bearer_error())
    if row["revoked_at"]:
        raise ApiError(
            "revoked_api_key", "This API key was revoked in the console.", headers=bearer_error()
        )
    return row


def bearer_error():
    return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@bp.before_request
def check_key_and_rate():
    if request.endpoint == "api.openapi":
        return
    g.api_key = authenticate()
    config = current_app.config
    allowed, retry_after = throttle.fixed_window(
        f"api key {g.api_key['id']}", config["API_RATE_LIMIT"], config["API_RATE_WINDOW_SECONDS"]
    )
    if not allowed:
        raise ApiError(
            "rate_limited",
            f"Too many requests with this key: at most {config['API_RATE_LIMIT']} per"
            f" {config['API_RATE_WINDOW_SECONDS']} seconds.",
            headers={"Retry-After": str(max(retry_after, 1))},
        )


# -- payments -----------------------------------------------------------------------------------


def payment_json(payment, its_orders):
    return {
        "id": payment["id"],
        "source": payment["source"],
        "state": payments.state(payment, its_orders),
        "amount": str(payment["amount"]),
        "currency": payment["currency"],
        "description": payment["description"],
        "reference": payment["reference"],
        "buyer_email": payment["buyer_email"],
        "return_url": payment["return_url"],
        "single_use": bool(payment["single_use"]),
        "expires_at": payment["expires_at"],
        "disabled": payments.is_disabled(payment),
        "checkout_url": payments.checkout_url(payment),
        "created_at": payment["created_at"],
        "orders": [
            {
                "token": o["token"],
                "state": orders.payment_state(o),
                "created_at": o["created_at"],
                "received": None if o["reported_out"] is None else str(o["reported_out"]),
            }
            for o in its_orders
        ],
    }


def read_json_object():
    """The request's body as a JSON object, or the ApiError that says what is wrong with it."""
    if not request.is_json:
        raise ApiError("unsupported_media_type", "Send the body as application/json.")
    if (request.content_length or 0) > MAX_BODY:
        raise ApiError("body_too_large", f"The body may be at most {MAX_BODY} bytes.")
    # A chunked body has no length to check first: read one byte past the bound, never more.
    raw = request.stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError("body_too_large", f"The body may be at most {MAX_BODY} bytes.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError):
        raise ApiError("invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("invalid_json", "The body must be a JSON object.")
    return body


def refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def create_fields(body):
    """The create's fields, checked by the same rules as the console's; ApiError on the first bad one."""
    unknown = sorted(set(body) - set(CREATE_FIELDS))
    if unknown:
        raise ApiError("invalid_field", f"Unknown field {unknown[0]!r}.", field=unknown[0])
    try:
        return {
            "amount": payments.parse_amount(body.get("amount")),
            "description": payments.check_text(
                "description", body.get("description"), payments.MAX_DESCRIPTION, required=True
            ),
            "reference": payments.check_text(
                "reference", body.get("reference"), payments.MAX_REFERENCE, required=True
            ),
            "buyer_email": payments.check_email(body.get("buyer_email")),
            "return_url": payments.check_return_url(body.get("return_url")),
        }
    except payments.Invalid as exc:
        raise ApiError("invalid_field", f"{exc.field} {exc.message}.", field=exc.field) from None


def idempotency_key():
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            "invalid_field",
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            field="Idempotency-Key",
        )
    return key


@bp.post("/payments")
def create():
    """A single-use payment; 201 with its checkout_url. A retry with the same Idempotency-Key
    and body answers as the first did; the same key with another body is refused (409)."""
    idem = idempotency_key()
    body = read_json_object()
    fields = create_fields(body)
    digest = payments.body_hash(body)
    payment, replayed = payments.create_payment(
        get_db(),
        source="api",
        single_use=True,
        api_key_id=g.api_key["id"],
        idempotency_key=idem,
        request_hash=digest,
        # The answer is kept with the payment: a retry gets exactly these bytes.
        respond=lambda row: json.dumps(payment_json(row, [])),
        **fields,
    )
    response = current_app.response_class(
        replayed or payment["response"], status=201, mimetype="application/json"
    )
    if replayed is not None:
        if not hmac.compare_digest(payment["request_hash"], digest):
            raise ApiError(
                "idempotency_conflict",
                "This Idempotency-Key was used with a different body.",
                field="Idempotency-Key",
            )
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = url_for("api.show", payment_id=payment["id"])
    return response


@bp.get("/payments/<int:payment_id>")
def show(payment_id):
    payment = payments.get_payment(get_db(), payment_id) if payment_id <= MAX_ID else None
    if payment is None:
        raise ApiError("not_found", "No payment has this id.")
    return jsonify(payment_json(payment, payments.orders_of([payment_id])[payment_id]))


def int_arg(name, default, low, high):
    text = request.args.get(name)
    if text is None:
        return default
    # ASCII digits only: str.isdigit takes "²" (which int() refuses) and other scripts' digits.
    if not WHOLE_NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise ApiError(
            "invalid_field", f"{name} must be a whole number from {low} to {high}.", field=name
        )
    return int(text)


@bp.get("/payments")
def index():
    """Newest first; ?after=<the last id of a page> gives the next (keyset paging)."""
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    after = int_arg("after", None, 1, MAX_ID)
    rows = payments.list_payments(limit + 1, before=after)
    page = rows[:limit]
    its_orders = payments.orders_of([p["id"] for p in page])
    has_more = len(rows) > limit
    return jsonify(
        data=[payment_json(p, its_orders[p["id"]]) for p in page],
        has_more=has_more,
        next_after=page[-1]["id"] if has_more else None,
    )


@bp.get("/openapi.json")
def openapi():
    """The API's OpenAPI 3.1 description (public: it holds no secret)."""
    return jsonify(DOCUMENT)


# -- the console's keys page ------------------------------------------------------------------


@keys_bp.route("/api-keys", methods=("GET", "POST"))
def keys_page():
    """API keys: make one (shown once, on this answer only), see and revoke the others."""
    form = ApiKeyForm()
    created = None
    if form.validate_on_submit():
        # In the page, never in a flash message: the session cookie is signed, not encrypted.
        created = new_key(get_db(), form.name.data)
        form = ApiKeyForm(formdata=None)
    keys = query(get_db(), "SELECT * FROM api_keys ORDER BY id DESC")
    response = render_template(
        "console/api_keys.html", form=form, keys=keys, created=created, button=ButtonForm()
    )
    # A page with a live key is stored nowhere.
    return response, 422 if form.errors else 200, {"Cache-Control": "no-store"}


@keys_bp.post("/api-keys/<int:key_id>/revoke")
def revoke(key_id):
    if not ButtonForm().validate_on_submit():
        abort(400)
    db = get_db()
    with transaction(db):
        changed = execute(
            db,
            "UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
            {"now": now(), "id": key_id if key_id <= MAX_ID else 0},
        ).rowcount
    if changed:
        flash(_("The key is revoked: requests with it are refused from now on."), "success")
    else:
        flash(_("No such key, or it was already revoked."), "error")
    return redirect(url_for("apikeys.keys_page"))
