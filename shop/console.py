"""The merchant console at /console: orders, their history and IPNs, and a few safe actions."""

import csv
import io
import re
from contextlib import suppress
from datetime import UTC, datetime
from urllib.parse import urlsplit

import click
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.cli import AppGroup
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from . import dashboard, logins, orders
from .db import get_db
from .exchanger import ExchangerError, ExchangerRejected, get_exchanger
from .forms import ButtonForm, IpnFilterForm, LoginForm, OrderFilterForm, ReviewForm
from .i18n import N_
from .reconcile import poll_order

bp = Blueprint("console", __name__, url_prefix="/console")
# Where a login lands when it was not sent from another console page: the picture of the
# business first (issue 15), one click from the orders.
HOME = "console.dashboard_page"

PAGE_SIZE = 50
# What a refresh may answer besides apply_event's outcomes (orders.IPN_OUTCOMES): marked for
# the catalogue, as the flash after a refresh names the outcome in words.
POLL_OUTCOMES = (N_("raced"), N_("skipped"))
# The CSV's header stays English whatever the console's language: other programs read it.
CSV_COLUMNS = (
    "token",
    "created_at",
    "state",
    "status",
    "price",
    "currency",
    "from_xml",
    "send_amount",
    "reported_out",
    "exchanger_uid",
    "buyer_email",
    "review_reason",
    # The merchant's own reference of the payment link or API payment the order paid, if any.
    "reference",
)


@bp.before_request
def require_login():
    """Closed without a password hash; every page but the login needs a live session."""
    if not current_app.config["CONSOLE_PASSWORD_HASH"]:
        abort(404)
    if request.endpoint != "console.login" and not logins.session_valid():
        session.pop("console", None)
        return redirect(url_for("console.login", next=request.full_path))
    return None


def safe_next(target):
    """Only a path on this site: never a URL that could send the merchant elsewhere."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/console") or "\\" in target:
        return url_for(HOME)
    return target


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Password login; past the guessing limit, a one-time code from `flask console unlock`."""
    with logins.one_attempt_at_a_time():
        return attempt_login()


def attempt_login():
    """The login form, and one attempt at it when posted."""
    form = LoginForm()
    blocked = logins.limited()
    if form.validate_on_submit():
        code = form.unlock_code.data
        unlocked = blocked and logins.unlock_code_valid(code)
        if blocked and not unlocked:
            return render_login(form, blocked=True, status=429)
        if check_password_hash(current_app.config["CONSOLE_PASSWORD_HASH"], form.password.data):
            if unlocked:
                logins.use_unlock_code(code)
            logins.record("unlocked" if unlocked else "ok")
            logins.start_session()
            return redirect(safe_next(request.args.get("next")))
        logins.record("failed")
        flash(_("Wrong password."), "error")
        blocked = logins.limited()
    return render_login(form, blocked=blocked, status=429 if blocked else 200)


def render_login(form, blocked, status):
    return render_template("console/login.html", form=form, blocked=blocked), status


@bp.post("/logout")
def logout():
    if ButtonForm().validate_on_submit():
        logins.end_session()
    return redirect(url_for("console.login"))


@bp.route("/logins")
def logins_page():
    """The latest console login attempts: who tried, from where, and what came of it."""
    return render_template(
        "console/logins.html",
        attempts=logins.recent_attempts(),
        per_address=logins.MAX_FAILURES_PER_ADDRESS,
        overall=logins.MAX_FAILURES_GLOBAL,
    )


@bp.route("/dashboard")
def dashboard_page():
    """Revenue, conversion, time to paid and the orders waiting longest (shop/dashboard.py)."""
    return dashboard.page()


def read_filters():
    form = OrderFilterForm(request.args)
    if not form.validate():
        flash(_("Some filters were not valid and are ignored."), "error")

    def valid(field):
        return field.data if field.data and not field.errors else None

    dates = (valid(form.date_from), valid(form.date_to))
    typed = valid(form.q)
    return form, {
        "state": valid(form.state),
        "date_from": dates[0].isoformat() if dates[0] else None,
        "date_to": dates[1].isoformat() if dates[1] else None,
        "search": orders.Search.of(typed) if typed else None,
    }


@bp.route("/")
def orders_page():
    """Orders, newest first, with counts per state and filters."""
    form, filters = read_filters()
    before, after = page_position()
    rows, newer, older = keyset_page(
        lambda **position: orders.find_orders(filters, **position), before, after
    )
    return render_template(
        "console/orders.html",
        form=form,
        orders=rows,
        counts=orders.count_by_state(filters),
        search=filters["search"],
        newer=newer,
        older=older,
        state_of=orders.payment_state,
        args=filter_args(),
    )


# A page is where it starts, not its number: ?before=<id> (older than that order, or IPN) or
# ?after=<id> (newer). Each is one index range however far back it is, and a page stays the
# same when new orders arrive meanwhile.
POSITION = re.compile(r"[1-9][0-9]{0,17}")


def page_position():
    """(before, after) from the query string; anything else gives the newest page, and says so."""
    given = {name: request.args[name] for name in ("before", "after") if name in request.args}
    if not given:
        return None, None
    if len(given) > 1 or not all(POSITION.fullmatch(text) for text in given.values()):
        flash(_("That page position is not valid: showing the newest."), "error")
        return None, None
    before, after = (given.get(name) for name in ("before", "after"))
    return (int(before) if before else None), (int(after) if after else None)


def keyset_page(fetch, before=None, after=None, size=PAGE_SIZE):
    """(rows, newer, older): a page from fetch(limit=, before=, after=), newest first, and the
    ids the "Newer" and "Older" links carry (None when there is nothing that way)."""
    if after is not None:
        rows = fetch(after=after, limit=size + 1)
        if len(rows) > size:
            # The page just newer than `after`: the newest of those fetched is on the next one.
            rows = rows[1:]
            return rows, rows[0]["id"], rows[-1]["id"]
        before = None  # fewer than a page newer: that is the newest page
    rows = fetch(before=before, limit=size + 1)
    older = rows[size - 1]["id"] if len(rows) > size else None
    rows = rows[:size]
    if before is not None and not rows:
        # Nothing older (a link from a page since changed): the newest page instead.
        return keyset_page(fetch, size=size)
    newer = None
    if before is not None and fetch(after=rows[0]["id"], limit=1):
        newer = rows[0]["id"]
    return rows, newer, older


def filter_args():
    """The query string but its page position: the filters that the pager's links keep."""
    return {k: v for k, v in request.args.items() if k not in ("before", "after", "page")}


# = + - @ (and tab, CR) at the start of a cell make a spreadsheet run it as a formula. Excel in
# locales whose list separator is ";" (Russian included) also starts a cell after every ";".
FORMULA_START = re.compile(r"(^|[,;\t])(\s*)(?=[=+\-@\t\r])")


def csv_cell(value):
    """The value with a ' before anything that could start a formula: a buyer's e-mail never runs."""
    text = "" if value is None else str(value)
    if FORMULA_START.search(text) is None:
        return text  # most cells: a search costs a third of a substitution, and a CSV has millions
    return FORMULA_START.sub(r"\1\2'", text)


# Orders read per query while the CSV streams: memory holds one batch, whatever the list's size.
CSV_BATCH = 1000


@bp.route("/orders.csv")
def orders_csv():
    """The filtered list as CSV, sent while it is read: the first rows leave at once."""
    _form, filters = read_filters()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    # stream_with_context keeps the request's context, and so its connection, until the last
    # batch is sent; teardown then returns the connection to the pool.
    return Response(
        stream_with_context(csv_chunks(filters)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="orders-{stamp}.csv"'},
    )


def csv_chunks(filters):
    """The CSV's text, one chunk per batch of orders, newest first, read by key (no OFFSET)."""
    out = io.StringIO()
    # Every cell quoted, so no reader splits one at a separator inside it.
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    before = None
    while True:
        batch = orders.find_orders(filters, limit=CSV_BATCH, before=before)
        for order in batch:
            row = {**dict(order), "state": orders.payment_state(order)}
            writer.writerow([csv_cell(row[column]) for column in CSV_COLUMNS])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(batch) < CSV_BATCH:
            return
        before = batch[-1]["id"]


@bp.route("/orders/<token>")
def order_page(token):
    """One order: items, amounts, requisites, history and every IPN received for it."""
    order = orders.get_order_by_token(token)
    exchanger = get_exchanger()
    link = None
    if orders.exchanger_knows(order):
        link = exchanger.order_url(order["lang"], order["exchanger_uid"], order["exchanger_secret"])
    return render_template(
        "console/order.html",
        order=order,
        state=orders.payment_state(order),
        items=orders.get_items(order["id"]),
        requisites=orders.requisites(order),
        history=orders.get_history(order["id"]),
        ipns=orders.get_ipns(order["id"]),
        exchanger_link=link,
        button=ButtonForm(),
        review_form=ReviewForm(),
        cancellable=orders.is_cancellable(order),
        settle_hours=current_app.config["SETTLEMENT_CHECK_HOURS"],
    )


@bp.post("/orders/<token>/refresh")
def refresh(token):
    """Ask the exchanger about this order now (reconcile one)."""
    order = orders.get_order_by_token(token)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if not orders.exchanger_knows(order):
        flash(_("The exchanger has not confirmed this order: there is nothing to ask."), "error")
    else:
        try:
            outcome = poll_order(order)
            flash(_("Asked the exchanger: %(outcome)s.", outcome=_(outcome)), "success")
        except ExchangerError as exc:
            current_app.logger.warning("console refresh of order %s: %s", order["id"], exc.message)
            flash(_("The exchanger did not answer. Try again in a minute."), "error")
    return redirect(url_for("console.order_page", token=token))


@bp.post("/orders/<token>/cancel")
def cancel(token):
    """Cancel an unpaid order at the exchanger (update-status to deleted), then record it."""
    order = orders.get_order_by_token(token)
    if not ButtonForm().validate_on_submit():
        abort(400)
    if not orders.is_cancellable(order):
        flash(_("Only an unpaid order the exchanger knows can be cancelled."), "error")
        return redirect(url_for("console.order_page", token=token))
    exchanger = get_exchanger()
    try:
        exchanger.update_status(order["exchanger_uid"], order["exchanger_secret"], "deleted")
    except ExchangerRejected as exc:
        # Most likely paid meanwhile: learn what the exchanger has now.
        flash(_("The exchanger refused: %(message)s", message=exc.message[:200]), "error")
        return refresh_after_refusal(order, token)
    except ExchangerError:
        flash(_("The exchanger did not answer; nothing was cancelled. Try again."), "error")
        return redirect(url_for("console.order_page", token=token))
    cancelled = orders.Event("console", "deleted", note="cancelled by the merchant")
    orders.apply_event(get_db(), order["id"], cancelled)
    flash(_("The order is cancelled."), "success")
    return redirect(url_for("console.order_page", token=token))


def refresh_after_refusal(order, token):
    # If the exchanger does not answer either, the refusal message already says to look again.
    with suppress(ExchangerError):
        poll_order(order)
    return redirect(url_for("console.order_page", token=token))


@bp.post("/orders/<token>/resolve")
def resolve(token):
    """Mark a review as settled, with a note that stays in the history."""
    order = orders.get_order_by_token(token)
    form = ReviewForm()
    if not form.validate_on_submit():
        flash(_("Write a note saying how the review was settled."), "error")
    elif orders.resolve_review(get_db(), order["id"], form.note.data):
        flash(_("Review resolved."), "success")
    else:
        flash(_("This order is not under review."), "error")
    return redirect(url_for("console.order_page", token=token))


@bp.route("/ipn")
def ipn_log():
    """Every IPN received, rejected ones included, newest first."""
    form = IpnFilterForm(request.args)
    outcome = form.outcome.data if form.validate() and form.outcome.data else None
    before, after = page_position()
    rows, newer, older = keyset_page(
        lambda **position: orders.ipn_log_entries(outcome, **position), before, after
    )
    return render_template(
        "console/ipn.html",
        form=form,
        entries=rows,
        suppressed=orders.ipn_log_suppressed(),
        newer=newer,
        older=older,
        args=filter_args(),
    )


console_cli = AppGroup("console", help="The merchant console.")


@console_cli.command("password")
def password_command():
    """Hash a console password; prints the setting to put in instance/config.py."""
    password = click.prompt("Console password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise click.ClickException("use at least 10 characters")
    click.echo(f"CONSOLE_PASSWORD_HASH = {generate_password_hash(password)!r}")


@console_cli.command("unlock")
def unlock_command():
    """Print a one-time code that lets you log in past the guessing limit (valid one hour)."""
    click.echo(f"One-time unlock code (valid for one hour): {logins.new_unlock_code()}")
