"""Webhooks out: signed events to the merchant's own systems on every change of a payment's state.

The same outbox pattern as buyer mail (mail.py): orders.apply_event calls enqueue_for inside the
status change's transaction, so an event row commits with the change or not at all, once per
change (apply_event has already decided, under the order's lock, that the state moved). Delivery
happens later, never in the request that caused it: a background thread per worker kicked after
the response, and `flask webhooks send` from cron, with back-off and a give-up after
WEBHOOK_RETRY_HOURS. Every attempt leaves a line in the delivery log the console shows.
"""

import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import click
import requests
import urllib3
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    url_for,
)
from flask.cli import AppGroup
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length, ValidationError

from . import orders
from .db import execute, get_db, is_postgresql, now, query, query_one, transaction

bp = Blueprint("webhooks", __name__, url_prefix="/console/webhooks")


@bp.before_request
def console_guard():
    """The console's own guard (closed without a password, a live login for every page).

    console and forms are imported when first used, not at the top: both import orders, which
    imports this module for enqueue_for.
    """
    from .console import require_login

    return require_login()


def button_form():
    """A POST that is only a button still carries a CSRF token (forms.ButtonForm)."""
    from .forms import ButtonForm

    return ButtonForm()


PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
# A claimed event is left alone this long: well past the longest attempt (connect and read
# timeouts), so two senders (a worker's thread, cron on another host) never both send it.
LEASE_SECONDS = 300
# Attempts one run of the sender makes at most, and the seconds after which it starts no
# more: cron comes back a minute later.
BATCH = 100
RUN_SECONDS = 45
# What the delivery log keeps of an error or of the receiver's answer.
ERROR_CHARS = 300
SIGNATURE_HEADER = "Shop-Signature"
EVENT_ID_HEADER = "Shop-Event-Id"


def utc_text(moment):
    return moment.isoformat(timespec="seconds")


# -- the event: written with the status change --------------------------------------------------


def enqueue_for(db, order, written):
    """Queue one event per enabled endpoint when a change moved the order's payment state.

    order is the row before the change, written the row after it, in the caller's transaction
    (orders.apply_event, or a resolved review). A change that leaves the state as it was (a
    second processing status) queues nothing and costs no query; with no endpoint enabled,
    one statement that inserts nothing.
    """
    previous, state = orders.payment_state(order), orders.payment_state(written)
    if previous == state:
        return
    stamp = datetime.now(UTC)
    event_id = f"evt_{secrets.token_hex(16)}"
    payload = json.dumps(event_body(event_id, written, previous, stamp), separators=(",", ":"))
    queued = execute(
        db,
        "INSERT INTO webhook_outbox (event_id, endpoint_id, order_id, type, payload,"
        " next_attempt_at, created_at) SELECT :event_id, id, :order_id, :type, :payload, :stamp,"
        " :stamp FROM webhook_endpoints WHERE enabled ORDER BY id",
        {
            "event_id": event_id,
            "order_id": order["id"],
            "type": f"payment.{state}",
            "payload": payload,
            "stamp": utc_text(stamp),
        },
    ).rowcount
    if queued:
        # Seen by the after-request hook: deliver once this response has gone out.
        g.webhooks_queued = True


def event_body(event_id, order, previous, stamp):
    """The JSON event (docs/INTEGRATION.md, "Webhooks"): money as decimal text, never a float."""

    def money(value):
        return None if value is None else str(value)

    state = orders.payment_state(order)
    return {
        "id": event_id,
        "type": f"payment.{state}",
        "created": int(stamp.timestamp()),
        "data": {
            "token": order["token"],
            "state": state,
            "previous_state": previous,
            "status": order["status"],
            "review": order["review_reason"] is not None,
            "amount": money(order["price"]),
            "currency": order["currency"],
            "pay_currency": order["from_xml"],
            "pay_amount": money(order["send_amount"]),
            "reported_in": money(order["reported_in"]),
            "reported_out": money(order["reported_out"]),
            # The merchant's own reference, for orders made by a payment link or the API.
            "reference": order.get("reference"),
            "created_at": order["created_at"],
            "updated_at": order["updated_at"],
        },
    }


# -- the signature ------------------------------------------------------------------------------


def sign(secret, timestamp, body):
    """Hex HMAC-SHA256 of "<timestamp>.<body>" under the endpoint's secret."""
    message = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret, timestamp, body):
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


# -- delivery: claimed with a lease, retried with back-off, every attempt logged ----------------


def backoff(attempts):
    """Seconds before the next attempt: 1, 2, 4 ... minutes, at most an hour."""
    return min(60 * 2 ** (attempts - 1), 3600)


def claim_one(db, stamp, passed_over=()):
    """Take the next due event (or one whose sender's lease ran out): None when none is due.

    One at a time, so the lease covers one attempt, however slow the receivers before it were.
    passed_over: endpoints whose events this run leaves for later (one just failed).
    """
    # On PostgreSQL, senders on several hosts each take a row nobody else is taking (SKIP
    # LOCKED) instead of waiting for it; on SQLite the write lock already orders them.
    skip = " FOR UPDATE SKIP LOCKED" if is_postgresql(db) else ""
    names = [f":passed_{n}" for n in range(len(passed_over))]
    others = f" AND endpoint_id NOT IN ({', '.join(names)})" if names else ""
    with transaction(db):
        return query_one(
            db,
            "UPDATE webhook_outbox SET state = :sending, attempts = attempts + 1,"  # noqa: S608 - fixed strings and placeholders
            " next_attempt_at = :lease WHERE id IN (SELECT id FROM webhook_outbox"
            " WHERE state IN (:pending, :sending) AND next_attempt_at <= :now"
            f" AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled){others}"
            f" ORDER BY next_attempt_at LIMIT 1{skip}) RETURNING *",
            {
                "sending": SENDING,
                "pending": PENDING,
                "lease": utc_text(stamp + timedelta(seconds=LEASE_SECONDS)),
                "now": utc_text(stamp),
                **{name[1:]: endpoint for name, endpoint in zip(names, passed_over, strict=True)},
            },
        )


def post_event(session, row, endpoint):
    """One attempt: (status code or None, error text or None, milliseconds it took)."""
    body = row["payload"]
    timestamp = int(time.time())  # real time always: the receiver compares it with its clock
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ExchangeShop-Webhooks/1",
        EVENT_ID_HEADER: row["event_id"],
        SIGNATURE_HEADER: signature_header(endpoint["secret"], timestamp, body),
    }
    started = time.monotonic()
    try:
        # No redirects: the merchant configured this URL, and a 3xx is a mistake to see.
        with session.post(
            endpoint["url"],
            data=body.encode(),
            headers=headers,
            timeout=attempt_timeout(),
            allow_redirects=False,
            stream=True,
        ) as answer:
            status = answer.status_code
            error = None if 200 <= status < 300 else receiver_said(answer)
    except requests.RequestException as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"
    took = round((time.monotonic() - started) * 1000)
    return status, error and scrub(error, endpoint), took


def attempt_timeout():
    """WEBHOOK_TIMEOUT as requests takes it: seconds, or a (connect, read) tuple (the setting
    comes as a JSON list from the environment)."""
    timeout = current_app.config["WEBHOOK_TIMEOUT"]
    return tuple(timeout) if isinstance(timeout, list) else timeout


def receiver_said(answer):
    """The start of a failing answer's body, for the log (the rest is not read)."""
    try:
        start = answer.raw.read(ERROR_CHARS, decode_content=True)
    except (OSError, urllib3.exceptions.HTTPError):  # a broken body says no more than its status
        start = b""
    text = start.decode("utf-8", "replace").strip()
    return f"HTTP {answer.status_code}" + (f": {text}" if text else "")


def scrub(error, endpoint):
    """Error text fit for the log: never the secret, nor a password or query in the URL."""
    parts = urlsplit(endpoint["url"])
    for hidden in (endpoint["secret"], parts.password, parts.query):
        if hidden:
            error = error.replace(hidden, "[hidden]")
    return error[:ERROR_CHARS]


def record(db, row, status, error, took, stamp):
    """The attempt's log line, and the event's next state: delivered, retried later, given up."""
    delivered = error is None
    window = timedelta(hours=current_app.config["WEBHOOK_RETRY_HOURS"])
    given_up = not delivered and stamp - datetime.fromisoformat(row["created_at"]) >= window
    state = DELIVERED if delivered else FAILED if given_up else PENDING
    with transaction(db):
        execute(
            db,
            "INSERT INTO webhook_deliveries (outbox_id, attempt, attempted_at, duration_ms,"
            " status_code, error) VALUES (:outbox_id, :attempt, :stamp, :took, :status, :error)",
            {
                "outbox_id": row["id"],
                "attempt": row["attempts"],
                "stamp": utc_text(stamp),
                "took": took,
                "status": status,
                "error": error,
            },
        )
        # Only while the claim is still this sender's (its attempt number, still sending).
        execute(
            db,
            "UPDATE webhook_outbox SET state = :state, last_error = :error,"
            " delivered_at = :delivered_at, next_attempt_at = :later"
            " WHERE id = :id AND attempts = :attempts AND state = :sending",
            {
                "state": state,
                "error": error,
                "delivered_at": utc_text(stamp) if delivered else None,
                "later": utc_text(stamp + timedelta(seconds=backoff(row["attempts"]))),
                "id": row["id"],
                "attempts": row["attempts"],
                "sending": SENDING,
            },
        )
    return state


def send_due(now=None, limit=BATCH, seconds=RUN_SECONDS):
    """Deliver the events that are due; returns (delivered, not delivered).

    At most limit attempts, none started after `seconds`, so that a run ends before cron's
    next one starts, however slow the receivers. An endpoint that fails once is passed over
    for the rest of the run: a receiver that is down costs one attempt (one timeout) per run,
    not one per waiting event. now: the clock, for tests that fast-forward the back-off.
    """
    db = get_db()
    delivered = failed = 0
    passed_over = []
    end = time.monotonic() + seconds
    with requests.Session() as session:
        for _ in range(limit):
            if time.monotonic() > end:
                break
            row = claim_one(db, now or datetime.now(UTC), passed_over)
            if row is None:
                break
            endpoint = query_one(
                db, "SELECT * FROM webhook_endpoints WHERE id = :id", {"id": row["endpoint_id"]}
            )
            status, error, took = post_event(session, row, endpoint)
            if record(db, row, status, error, took, now or datetime.now(UTC)) == DELIVERED:
                delivered += 1
            else:
                failed += 1
                passed_over.append(endpoint["id"])
    return delivered, failed


class BackgroundSender:
    """At most one sender thread per worker process, started after a response that queued events.

    The request's own thread returns at once (an IPN answer or a page is never held by a slow
    receiver); a kick while the thread runs makes it go round once more instead of starting
    another, so a burst of IPNs costs one thread.
    """

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.running = False
        self.again = False

    def kick(self):
        with self.lock:
            if self.running:
                self.again = True
                return
            self.running = True
        threading.Thread(target=self.run, name="webhooks", daemon=True).start()

    def run(self):
        while True:
            with self.app.app_context():
                try:
                    send_due()
                except Exception:  # a background attempt must never break the server
                    self.app.logger.exception("webhooks: background attempt failed; cron retries")
            with self.lock:
                if not self.again:
                    self.running = False
                    return
                self.again = False


# -- the console: endpoints, events, their delivery log, redelivery -----------------------------


def check_url(form, field):
    """An absolute http(s) URL with a host, and nothing that would end up in logs or be lost."""
    parts = urlsplit(field.data or "")
    if parts.scheme not in ("http", "https"):
        raise ValidationError(_("The URL must start with http:// or https://."))
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValidationError(_("The URL's port is not a number from 1 to 65535.")) from None
    if not host or port == 0:
        raise ValidationError(_("The URL needs a host name, like https://example.com/hooks."))
    if parts.username or parts.password:
        raise ValidationError(
            _("Put no user name or password in the URL: the signature tells the receiver it is us.")
        )
    if parts.fragment:
        raise ValidationError(_("The URL must not have a #fragment: it is never sent."))
    if any(c.isspace() or ord(c) < 32 for c in field.data):
        raise ValidationError(_("The URL must not contain spaces or control characters."))


class EndpointForm(FlaskForm):
    url = StringField(
        _l("URL"),
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            DataRequired(_l("Enter the URL your system receives events at.")),
            Length(max=2000, message=_l("The URL is too long (2000 characters at most).")),
            check_url,
        ],
    )


def row_id(text):
    """A row id from the URL: digits that fit a database integer, or 404 (never a 500)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        abort(404)
    return int(text)


def endpoint_or_404(endpoint_id):
    endpoint = query_one(
        get_db(), "SELECT * FROM webhook_endpoints WHERE id = :id", {"id": row_id(endpoint_id)}
    )
    if endpoint is None:
        abort(404)
    return endpoint


def event_or_404(outbox_id):
    event = query_one(
        get_db(),
        "SELECT w.*, e.url, e.enabled, o.token FROM webhook_outbox w"
        " JOIN webhook_endpoints e ON e.id = w.endpoint_id JOIN orders o ON o.id = w.order_id"
        " WHERE w.id = :id",
        {"id": row_id(outbox_id)},
    )
    if event is None:
        abort(404)
    return event


def recent_events(endpoint_id=None, limit=50):
    """The newest events (of one endpoint, or all), with their endpoint's URL and order's
    token, newest first."""
    which = "" if endpoint_id is None else " WHERE w.endpoint_id = :endpoint_id"
    return query(
        get_db(),
        "SELECT w.id, w.event_id, w.type, w.state, w.attempts, w.next_attempt_at, w.last_error,"  # noqa: S608 - which is a fixed string
        " w.created_at, w.delivered_at, e.url, o.token FROM webhook_outbox w"
        " JOIN webhook_endpoints e ON e.id = w.endpoint_id JOIN orders o ON o.id = w.order_id"
        f"{which} ORDER BY w.id DESC LIMIT :limit",
        {"endpoint_id": endpoint_id, "limit": limit},
    )


def list_endpoints():
    return query(
        get_db(),
        "SELECT e.*, (SELECT COUNT(*) FROM webhook_outbox w WHERE w.endpoint_id = e.id"
        " AND w.state IN (:pending, :sending)) AS waiting, (SELECT COUNT(*) FROM webhook_outbox w"
        " WHERE w.endpoint_id = e.id AND w.state = :failed) AS given_up"
        " FROM webhook_endpoints e ORDER BY e.id",
        {"pending": PENDING, "sending": SENDING, "failed": FAILED},
    )


def new_secret():
    return f"whsec_{secrets.token_urlsafe(32)}"


def shown_once(page):
    """A page that shows a secret: never kept in a cache or the browser's history store."""
    response = make_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/", methods=("GET", "POST"))
def index():
    """The endpoints, a form to add one, and the latest events sent to any of them."""
    form = EndpointForm()
    if form.validate_on_submit():
        db = get_db()
        secret = new_secret()
        with transaction(db):
            endpoint = query_one(
                db,
                "INSERT INTO webhook_endpoints (url, secret, enabled, created_at)"
                " VALUES (:url, :secret, :enabled, :now) RETURNING *",
                {"url": form.url.data, "secret": secret, "enabled": True, "now": now()},
            )
        return shown_once(render_endpoint(endpoint, secret=secret))
    status = 400 if form.errors else 200
    page = render_template(
        "console/webhooks.html",
        form=form,
        endpoints=list_endpoints(),
        events=recent_events(),
        button=button_form(),
    )
    return page, status


def render_endpoint(endpoint, secret=None):
    return render_template(
        "console/webhooks_endpoint.html",
        endpoint=endpoint,
        secret=secret,
        events=recent_events(endpoint["id"], limit=100),
        button=button_form(),
    )


@bp.route("/endpoints/<endpoint_id>")
def endpoint_page(endpoint_id):
    return render_endpoint(endpoint_or_404(endpoint_id))


def require_button():
    if not button_form().validate_on_submit():
        abort(400)


@bp.post("/endpoints/<endpoint_id>/enabled")
def toggle(endpoint_id):
    """Disable (its events wait, new changes queue none) or enable again (they go out)."""
    endpoint = endpoint_or_404(endpoint_id)
    require_button()
    db = get_db()
    with transaction(db):
        execute(
            db,
            "UPDATE webhook_endpoints SET enabled = :enabled WHERE id = :id",
            {"enabled": not endpoint["enabled"], "id": endpoint["id"]},
        )
    if endpoint["enabled"]:
        flash(_("Disabled: no new events are queued for it, and waiting ones wait."), "success")
    else:
        flash(_("Enabled: events queued from now on, and waiting ones, go out."), "success")
        g.webhooks_queued = True
    return redirect(url_for("webhooks.endpoint_page", endpoint_id=endpoint["id"]))


@bp.post("/endpoints/<endpoint_id>/secret")
def roll_secret(endpoint_id):
    """A new signing secret, shown once; from now on every delivery is signed with it."""
    endpoint = endpoint_or_404(endpoint_id)
    require_button()
    db = get_db()
    secret = new_secret()
    with transaction(db):
        execute(
            db,
            "UPDATE webhook_endpoints SET secret = :secret WHERE id = :id",
            {"secret": secret, "id": endpoint["id"]},
        )
    return shown_once(render_endpoint(endpoint, secret=secret))


@bp.post("/endpoints/<endpoint_id>/delete")
def delete(endpoint_id):
    """Remove the endpoint with its events and their delivery log."""
    endpoint = endpoint_or_404(endpoint_id)
    require_button()
    db = get_db()
    with transaction(db):
        params = {"id": endpoint["id"]}
        execute(
            db,
            "DELETE FROM webhook_deliveries WHERE outbox_id IN"
            " (SELECT id FROM webhook_outbox WHERE endpoint_id = :id)",
            params,
        )
        execute(db, "DELETE FROM webhook_outbox WHERE endpoint_id = :id", params)
        execute(db, "DELETE FROM webhook_endpoints WHERE id = :id", params)
    flash(_("The endpoint and its events are deleted."), "success")
    return redirect(url_for("webhooks.index"))


@bp.route("/events/<outbox_id>")
def event_page(outbox_id):
    """One event for one endpoint: what was sent, and every attempt to deliver it."""
    event = event_or_404(outbox_id)
    deliveries = query(
        get_db(),
        "SELECT * FROM webhook_deliveries WHERE outbox_id = :id ORDER BY id",
        {"id": event["id"]},
    )
    return render_template(
        "console/webhooks_event.html",
        event=event,
        body=json.dumps(json.loads(event["payload"]), indent=2),
        deliveries=deliveries,
        button=button_form(),
    )


@bp.post("/events/<outbox_id>/redeliver")
def redeliver(outbox_id):
    """Queue a new attempt now, with the same event id and body (a new signature)."""
    event = event_or_404(outbox_id)
    require_button()
    db = get_db()
    with transaction(db):
        # Not while a sender holds it: two deliveries at once is what the lease prevents.
        queued = execute(
            db,
            "UPDATE webhook_outbox SET state = :pending, next_attempt_at = :now"
            " WHERE id = :id AND state != :sending",
            {"pending": PENDING, "now": now(), "id": event["id"], "sending": SENDING},
        ).rowcount
    if not queued:
        flash(_("It is being delivered right now: see the log in a moment."), "error")
    elif not event["enabled"]:
        flash(_("Queued, but its endpoint is disabled: it goes out once enabled."), "error")
    else:
        flash(_("Queued: it goes out in a moment."), "success")
        g.webhooks_queued = True
    return redirect(url_for("webhooks.event_page", outbox_id=event["id"]))


webhooks_cli = AppGroup("webhooks", help="Events to the merchant's systems.")


@webhooks_cli.command("send")
def send_command():
    """Deliver the events that are due (run from cron every minute)."""
    delivered, failed = send_due()
    click.echo(f"delivered {delivered}, failed {failed}")


@webhooks_cli.command("prune")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 36_500))
def prune_command(days):
    """Delete delivered and given-up events older than --days, with their delivery log."""
    cutoff = utc_text(datetime.now(UTC) - timedelta(days=days))
    db = get_db()
    params = {"cutoff": cutoff, "delivered": DELIVERED, "failed": FAILED}
    old = (
        "SELECT id FROM webhook_outbox WHERE state IN (:delivered, :failed)"
        " AND created_at < :cutoff"
    )
    with transaction(db):
        execute(db, f"DELETE FROM webhook_deliveries WHERE outbox_id IN ({old})", params)  # noqa: S608 - a fixed string
        removed = execute(db, f"DELETE FROM webhook_outbox WHERE id IN ({old})", params).rowcount  # noqa: S608
    click.echo(f"Removed {removed} events older than {days} days.")


def init_app(app):
    app.extensions["webhooks"] = sender = BackgroundSender(app)

    @app.after_request
    def deliver_after_response(response):
        # After the response has gone out, and in another thread: nobody waits on a receiver.
        if g.get("webhooks_queued") and app.config["WEBHOOK_SEND_AFTER_RESPONSE"]:
            response.call_on_close(sender.kick)
        return response
