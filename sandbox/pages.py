"""The pages people see: the payer's payment and order pages, and the operator's page."""

import json
import re
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from . import orders
from .db import get_db
from .routes import IMAGES

bp = Blueprint("pages", __name__)

TEXT = {
    "en": {
        "title": "Order",
        "send": "Send",
        "to": "To",
        "memo": "Memo / tag",
        "you_receive": "You receive",
        "status": "Status",
        "time_left": "Time left to pay",
        "minutes": "min",
        "paid": "I have paid",
        "confirm": "Confirm the order",
        "cancel": "Cancel the order",
        "back": "Return to the shop",
        "your_details": "Your details",
        "payout_hidden": "The recipient's details are hidden by the merchant.",
        "payout_to": "Payout to",
        "refreshes": "This page refreshes itself.",
        "expired": "expired",
        "not_found": "No such order.",
    },
    "ru": {
        "title": "Заявка",
        "send": "Отправьте",
        "to": "На",
        "memo": "Memo / тег",
        "you_receive": "Вы получите",
        "status": "Статус",
        "time_left": "Осталось времени на оплату",
        "minutes": "мин",
        "paid": "Я оплатил",
        "confirm": "Подтвердить заявку",
        "cancel": "Отменить заявку",
        "back": "Вернуться в магазин",
        "your_details": "Ваши реквизиты",
        "payout_hidden": "Реквизиты получателя скрыты продавцом.",
        "payout_to": "Выплата на",
        "refreshes": "Страница обновляется сама.",
        "expired": "истекло",
        "not_found": "Такой заявки нет.",
    },
}
STATUS_TEXT = {
    "en": {
        "new": "New",
        "waitPayment": "Waiting for your payment",
        "errorPayment": "Payment error",
        "inProgress": "Payment being checked",
        "inProgressPayout": "Paid, payout queued",
        "errorPayout": "Payout error",
        "hold": "On hold",
        "done": "Completed",
        "returned": "Refunded",
        "deleted": "Cancelled",
    },
    "ru": {
        "new": "Новая",
        "waitPayment": "Ожидает оплаты",
        "errorPayment": "Ошибка оплаты",
        "inProgress": "Оплата проверяется",
        "inProgressPayout": "Оплачена, выплата в очереди",
        "errorPayout": "Ошибка выплаты",
        "hold": "Заморожена",
        "done": "Выполнена",
        "returned": "Возврат",
        "deleted": "Отменена",
    },
}
LANG_BLOCK = re.compile(r"##(en|ru)##(.*?)(?=##)", re.S)


def localized(text, lang):
    """The lang part of a '##en##...##ru##...##' text, or the whole text when it has none."""
    blocks = dict(LANG_BLOCK.findall(text or ""))
    return blocks.get(lang) or blocks.get("en") or text


def return_url(callback, status):
    """clientCallbackUrl with ?status=success|error added to whatever query it already has."""
    parts = urlsplit(callback)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    query = "&".join(q for q in (parts.query, urlencode({"status": status})) if q)
    return urlunsplit(parts._replace(query=query))


def payer_order(lang, uid, secret):
    if lang not in TEXT:
        abort(404)
    order = orders.find(get_db(), uid, secret)
    if order is None:
        abort(404)
    return order


@bp.route("/<lang>/payment/<uid>/<secret>", endpoint="payment")
@bp.route("/<lang>/order/<uid>/<secret>", endpoint="order")
def payer_page(lang, uid, secret):
    """What to send, where, how long is left, and the live status."""
    order = payer_order(lang, uid, secret)
    sandbox = current_app.extensions["sandbox"]
    route = sandbox.routes.get(order["route_id"], include_hidden=True)
    source = sandbox.routes.currencies[route["from"]]
    final = order["status"] in orders.FINAL
    outcome = "success" if order["status"] == "done" else "error"
    return render_template(
        "sandbox/payer.html",
        t=TEXT[lang],
        status_text=STATUS_TEXT[lang][order["status"]],
        lang=lang,
        order=order,
        source=source,
        target=sandbox.routes.currencies[route["to"]],
        deposit_label=source["deposit"][lang],
        memo_label=(source["deposit"].get("memo") or {}).get(lang),
        instructions=localized(route["instructions"], lang),
        seconds_left=max(0, int(order["expires_at"] - sandbox.clock.now())),
        final=final,
        back_url=return_url(order["client_callback_url"], outcome) if final else None,
        from_values=json.loads(order["from_values"]),
        to_values=[] if order["hide_out_data"] else json.loads(order["to_values"]),
        page=request.endpoint.split(".")[-1],
    )


PAYER_ACTIONS = {"confirm": "waitPayment", "paid": "inProgress", "cancel": "deleted"}


@bp.post("/<lang>/<any(payment, order):page>/<uid>/<secret>/<any(confirm, paid, cancel):action>")
def payer_action(lang, page, uid, secret, action):
    """Confirm (new -> waitPayment), 'I have paid' (waitPayment -> inProgress) or cancel."""
    order = payer_order(lang, uid, secret)
    new_status = PAYER_ACTIONS[action]
    if (order["status"], new_status) in orders.CLIENT_CHANGES:
        orders.change_status(current_app.extensions["sandbox"], get_db(), order, new_status)
    return redirect(url_for(f"pages.{page}", lang=lang, uid=order["uid"], secret=order["secret"]))


@bp.route("/service/fs/currency/<name>")
def currency_image(name):
    """A currency's picture, where the platform's front-end looks for files (fsPath)."""
    return send_from_directory(IMAGES, name, mimetype="image/svg+xml", max_age=3600)


@bp.route("/")
@bp.route("/operator")
def operator():
    """Every order, newest first, with buttons to move it to any status."""
    db = get_db()
    rows = db.execute("SELECT * FROM orders ORDER BY uid DESC LIMIT 200").fetchall()
    deliveries = db.execute("SELECT * FROM ipn_deliveries ORDER BY id DESC LIMIT 50").fetchall()
    sandbox = current_app.extensions["sandbox"]
    return render_template(
        "sandbox/operator.html",
        orders=rows,
        deliveries=deliveries,
        statuses=orders.STATUSES,
        faults=json.dumps(sandbox.faults.current(), indent=1),
        routes=sandbox.routes.summaries(),
    )


@bp.post("/operator/orders/<int:uid>/status")
def operator_set_status(uid):
    """Move an order to the chosen status; the change sends its IPN."""
    status = request.form.get("status")
    db = get_db()
    order = db.execute("SELECT * FROM orders WHERE uid = ?", (uid,)).fetchone()
    if order is None:
        abort(404)
    if status not in orders.STATUSES:
        flash("Choose one of the statuses.")
    elif status != order["status"]:
        if orders.change_status(current_app.extensions["sandbox"], db, order, status):
            flash(f"Order {uid}: {order['status']} -> {status}; IPN queued.")
        else:
            flash(f"Order {uid} changed meanwhile; look again.")
    return redirect(url_for("pages.operator"))
