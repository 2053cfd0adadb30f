"""Mail to buyers through a durable outbox: queued by the status writer, sent after the fact.

A status change and the mail it causes commit together (enqueue_for runs inside apply_event's
transaction), so a mail is never lost nor sent for a change that rolled back. Sending happens
after the response (a background attempt) and from `flask mail send` (cron), so a slow or down
SMTP server delays mail but never an IPN or a page.
"""

import contextlib
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import unquote, urlsplit

import click
from flask import Blueprint, abort, current_app, g, render_template
from flask.cli import AppGroup
from flask_babel import force_locale
from flask_babel import gettext as _

from . import orders
from .db import execute, get_db, is_postgresql, now, query, transaction

bp = Blueprint("mail", __name__)

# What each kind of mail is sent for: the order reached the exchanger, or it is paid.
CREATED, PAID = "created", "paid"
PENDING, SENT, FAILED = "pending", "sent", "failed"
# A claimed row is left alone this long, so two senders (cron and a page) never both send it.
LEASE_SECONDS = 120
BATCH = 50


def kind_for(order, decision):
    """Which mail a decision causes, if any: the paid receipt only for 'paid' (done, enough out)."""
    if decision.outcome == "applied" and decision.status == "done":
        return PAID
    if order["status"] == "draft" and decision.status in ("new", "waitPayment"):
        return CREATED
    return None


def enqueue_for(db, order, decision):
    """Queue the mail a status change causes, in the caller's transaction; once per order and kind.

    order is the row before the change. Called by orders.apply_event only.
    """
    kind = kind_for(order, decision) if decision.changes_order else None
    if kind is None or not order["buyer_email"]:
        return
    stamp = now()
    cursor = execute(
        db,
        "INSERT INTO mail_outbox (order_id, kind, recipient, lang, next_attempt_at, created_at)"
        " VALUES (:order_id, :kind, :recipient, :lang, :stamp, :stamp)"
        " ON CONFLICT (order_id, kind) DO NOTHING",
        {
            "order_id": order["id"],
            "kind": kind,
            "recipient": order["buyer_email"],
            "lang": order["lang"],
            "stamp": stamp,
        },
    )
    if cursor.rowcount:
        # Seen by the after-request hook: try to send once this response has gone out.
        g.mail_queued = True


def backoff(attempts):
    """Seconds before the next attempt: 1, 2, 4 ... minutes, at most an hour."""
    return min(60 * 2 ** (attempts - 1), 3600)


def claim_due(db, limit=BATCH):
    """Take up to limit due mails: each gets a lease and counts an attempt, in one transaction."""
    stamp = datetime.now(UTC)
    lease = (stamp + timedelta(seconds=LEASE_SECONDS)).isoformat(timespec="seconds")
    # On PostgreSQL, senders on several hosts each take rows nobody else is taking (SKIP
    # LOCKED) instead of waiting for them; on SQLite the write lock already orders them.
    skip = " FOR UPDATE SKIP LOCKED" if is_postgresql(db) else ""
    with transaction(db):
        return query(
            db,
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = :lease"  # noqa: S608 - skip is a fixed string
            " WHERE id IN (SELECT id FROM mail_outbox WHERE state = :pending"
            f" AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit{skip})"
            " RETURNING *",
            {
                "lease": lease,
                "pending": PENDING,
                "now": stamp.isoformat(timespec="seconds"),
                "limit": limit,
            },
        )


def compose(row):
    """The message for an outbox row, in the buyer's language, plain text and HTML."""
    db = get_db()
    order = orders.get_order(db, row["order_id"])
    items = orders.get_items(order["id"])
    context = {
        "order": order,
        "items": items,
        "line_total": lambda item: Decimal(item["unit_price"]) * item["quantity"],
        "link": f"{current_app.config['PUBLIC_URL']}/orders/{order['token']}/return",
    }
    with force_locale(row["lang"]):
        subject = (
            _("Your order is paid: receipt")
            if row["kind"] == PAID
            else _("Your order: the link to pay and follow it")
        )
        # Straight from the template environment: the page context processors need a request
        # (session, CSRF), and a mail is composed after the response, or from cron.
        templates = current_app.jinja_env
        text = templates.get_template(f"mail/{row['kind']}.txt").render(**context)
        html = templates.get_template(f"mail/{row['kind']}.html").render(**context)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = row["recipient"]
    # The same id on every attempt: a server that got it twice can tell.
    message["Message-ID"] = make_msgid(idstring=f"order{order['id']}.{row['kind']}")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def smtp_connection():
    """An SMTP connection from MAIL_URL: smtps:// is TLS from the start, smtp:// upgrades with
    STARTTLS when offered, and never sends a password unencrypted."""
    url = urlsplit(current_app.config["MAIL_URL"])
    timeout = current_app.config["MAIL_TIMEOUT"]
    context = ssl.create_default_context()
    if url.scheme == "smtps":
        server = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=timeout, context=context)
    elif url.scheme == "smtp":
        server = smtplib.SMTP(url.hostname, url.port or 25, timeout=timeout)
        server.ehlo()
        if server.has_extn("starttls"):
            server.starttls(context=context)
            server.ehlo()
        elif url.username:
            server.quit()
            raise smtplib.SMTPException("the server offers no STARTTLS; not sending a password")
    else:
        raise ValueError("MAIL_URL must start with smtp:// or smtps://")
    if url.username:
        server.login(unquote(url.username), unquote(url.password or ""))
    return server


def mark(db, row, state, error=None):
    stamp = datetime.now(UTC)
    later = (stamp + timedelta(seconds=backoff(row["attempts"]))).isoformat(timespec="seconds")
    with transaction(db):
        # Only while the claim is still this sender's (the same attempt): a sender whose lease
        # ran out changes nothing that another sender has taken on since.
        execute(
            db,
            "UPDATE mail_outbox SET state = :state, last_error = :error, sent_at = :sent_at,"
            " next_attempt_at = :later WHERE id = :id AND attempts = :attempts",
            {
                "state": state,
                "error": error,
                "sent_at": stamp.isoformat(timespec="seconds") if state == SENT else None,
                "later": later,
                "id": row["id"],
                "attempts": row["attempts"],
            },
        )


def to_sandbox_mailbox():
    """In sandbox mode with no MAIL_URL, mail is delivered to the mailbox page instead of SMTP."""
    return current_app.config["SANDBOX_MODE"] and not current_app.config["MAIL_URL"]


def send_due():
    """Send due mails, up to BATCH; returns (sent, failed). Failures back off, then are given up.

    Mails are claimed one at a time, each just before it is sent: a lease then only has to
    outlast one message, so a slow SMTP server can never let another sender claim a mail
    this one is still sending (the buyer would get it twice).
    """
    if not (current_app.config["MAIL_URL"] or to_sandbox_mailbox()):
        return 0, 0
    db = get_db()
    sent = failed = 0
    server = None
    try:
        for _ in range(BATCH):
            claimed = claim_due(db, limit=1)
            if not claimed:
                break
            row = claimed[0]
            if to_sandbox_mailbox():
                mark(db, row, SENT)
                sent += 1
                continue
            if server is None:
                try:
                    server = smtp_connection()
                except (OSError, smtplib.SMTPException, ValueError) as exc:
                    # The class only: an SMTP error may quote the URL, which may hold a password.
                    retry_or_give_up(db, row, type(exc).__name__)
                    current_app.logger.warning(
                        "mail: cannot reach the SMTP server (%s)", type(exc).__name__
                    )
                    return sent, failed + 1
            try:
                server.send_message(compose(row))
            except smtplib.SMTPException as exc:
                retry_or_give_up(db, row, type(exc).__name__)
                failed += 1
            else:
                mark(db, row, SENT)
                sent += 1
    finally:
        if server is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                server.quit()
    return sent, failed


def retry_or_give_up(db, row, error):
    given_up = row["attempts"] >= current_app.config["MAIL_MAX_ATTEMPTS"]
    mark(db, row, FAILED if given_up else PENDING, error)


def mails_for(order_id):
    """An order's mails, for the console."""
    return query(
        get_db(),
        "SELECT * FROM mail_outbox WHERE order_id = :order_id ORDER BY id",
        {"order_id": order_id},
    )


@click.group("mail", cls=AppGroup)
def mail_cli():
    """Buyer mail from the outbox."""


@mail_cli.command("send")
def send_command():
    """Send the mails that are due (run from cron every minute)."""
    if not (current_app.config["MAIL_URL"] or to_sandbox_mailbox()):
        raise click.ClickException("MAIL_URL is not set: mail stays queued.")
    sent, failed = send_due()
    click.echo(f"sent {sent}, failed {failed}")


# How many mails the sandbox mailbox page shows, newest first.
MAILBOX_SIZE = 20


@bp.route("/mailbox")
def sandbox_mailbox():
    """Sandbox mode only: the mails the shop "sent", as the buyer would read them."""
    if not to_sandbox_mailbox():
        abort(404)
    rows = query(
        get_db(),
        "SELECT * FROM mail_outbox WHERE state = :sent ORDER BY id DESC LIMIT :limit",
        {"sent": SENT, "limit": MAILBOX_SIZE},
    )
    mails = []
    for row in rows:
        message = compose(row)
        mails.append(
            {
                "row": row,
                "subject": message["Subject"],
                "text": message.get_body(("plain",)).get_content(),
            }
        )
    return render_template("mail/mailbox.html", mails=mails)


def init_app(app):
    app.jinja_env.globals["mails_for"] = mails_for

    @app.after_request
    def send_after_response(response):
        # After the response has gone out, not before: the buyer or the exchanger never waits.
        if g.get("mail_queued") and (app.config["MAIL_URL"] or app.config["SANDBOX_MODE"]):
            response.call_on_close(lambda: send_in_background(app))
        return response


def send_in_background(app):
    with app.app_context():
        try:
            send_due()
        except Exception:  # a background attempt must never break the server
            app.logger.exception("mail: background attempt failed; cron will retry")
