"""Buyer mail against a real SMTP server on 127.0.0.1 (aiosmtpd): queued with the status change,
sent after the response or by `flask mail send`, once each, in the buyer's language."""

import asyncio
import email
import email.policy
import re
import socket
import threading

import pytest
import requests
from aiosmtpd.controller import Controller
from babel.support import Translations
from werkzeug.security import generate_password_hash

from shop.i18n import TRANSLATIONS
from tests.conftest import BOTH_ENGINES, ShopServer
from tests.helpers import buy_over_http, hidden_inputs, place_order, query, rows_when

PASSWORD = "merchant console password"
SUBJECTS = {
    "created": "Your order: the link to pay and follow it",
    "paid": "Your order is paid: receipt",
}

pytestmark = BOTH_ENGINES


class Mailbox:
    """An aiosmtpd handler that keeps every message and lets a test wait for a count."""

    def __init__(self):
        self.messages = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd calls it by this name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.changed:
            self.messages.append(message)
            self.changed.notify_all()
        return "250 OK"

    def wait_for(self, count, timeout=20):
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.messages) >= count, timeout), (
                f"{len(self.messages)} of {count} mails arrived"
            )


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SMTPServer:
    """A real SMTP server that can be stopped and started again on the same port."""

    def __init__(self):
        self.port = free_port()
        self.mailbox = Mailbox()
        self.controller = None

    def start(self):
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_shop(store, sandbox_server, smtp):
    shop = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        **store,
        MAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
        MAIL_FROM="Shop <shop@example.com>",
    )
    yield shop
    shop.stop()


def pay(buyer, shop, sandbox_server, lang="en"):
    """Buy the mug, pay on the exchanger's page, and let the exchanger finish: the order."""
    buyer.headers["Accept-Language"] = lang
    payment_url = buy_over_http(buyer, shop.url, follow=False).headers["Location"]
    page = buyer.get(payment_url, timeout=10).text
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(page), timeout=10)
    sandbox_server.autopilot_to_done()
    (order,) = shop.query("SELECT * FROM orders")
    return order


def outbox_when(shop, predicate, timeout=20):
    """The outbox rows once predicate(rows) holds (the background attempt runs after the
    response has gone out)."""
    return rows_when(
        shop,
        "SELECT kind, state, attempts, last_error FROM mail_outbox ORDER BY id",
        predicate,
        timeout,
    )


def send_command(shop):
    result = shop.flask_app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exception is None, repr(result.exception)
    return result


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_created_and_paid_mails_arrive_once_each_in_the_buyers_language(
    sandbox_server, mail_shop, smtp, lang
):
    order = pay(requests.Session(), mail_shop, sandbox_server, lang)
    assert order["status"] == "done" and order["lang"] == lang
    # Both went out after their responses, without cron.
    smtp.mailbox.wait_for(2)
    rows = outbox_when(mail_shop, lambda rows: all(r["state"] == "sent" for r in rows))
    assert send_command(mail_shop).output.strip() == "sent 0, failed 0"
    catalogue = Translations.load(str(TRANSLATIONS), [lang])
    messages = smtp.mailbox.messages
    assert [m["Subject"] for m in messages] == [
        catalogue.gettext(SUBJECTS[kind]) for kind in ("created", "paid")
    ]
    link = f"{mail_shop.url}/orders/{order['token']}/return"
    for message in messages:
        assert message["To"] == order["buyer_email"]
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert link in text and link in html
        assert order["ipn_secret"] not in text + html and order["exchanger_secret"] not in text
    receipt = messages[1].get_body(("plain",)).get_content()
    assert catalogue.gettext("Total") in receipt and catalogue.gettext("Ledger mug") in receipt
    assert [(r["kind"], r["state"], r["attempts"]) for r in rows] == [
        ("created", "sent", 1),
        ("paid", "sent", 1),
    ]


def test_with_smtp_down_ipns_are_answered_and_mail_goes_out_once_it_is_back(
    sandbox_server, mail_shop, smtp
):
    smtp.stop()
    order = pay(requests.Session(), mail_shop, sandbox_server)
    # Every IPN was answered and applied; the mail waits.
    assert order["status"] == "done"
    outcomes = [r["outcome"] for r in mail_shop.query("SELECT outcome FROM ipn_log")]
    assert outcomes and set(outcomes) == {"applied"}
    waiting = outbox_when(
        mail_shop, lambda rows: len(rows) == 2 and all(r["last_error"] for r in rows)
    )
    assert all(r["state"] == "pending" and r["attempts"] >= 1 for r in waiting)

    smtp.start()
    # The retry's back-off, fast-forwarded: cron finds both due.
    with mail_shop.flask_app.app_context():
        from shop.db import execute, get_db, transaction

        db = get_db()
        with transaction(db):
            execute(db, "UPDATE mail_outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    assert send_command(mail_shop).output.strip() == "sent 2, failed 0"
    assert send_command(mail_shop).output.strip() == "sent 0, failed 0"
    assert len(smtp.mailbox.messages) == 2


def test_a_mail_given_up_shows_in_the_console(store, sandbox_server, smtp):
    smtp.stop()
    shop = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        **store,
        MAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
        MAIL_MAX_ATTEMPTS=1,
        CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
    )
    try:
        buy_over_http(requests.Session(), shop.url, follow=False)
        (row,) = outbox_when(shop, lambda rows: rows and rows[0]["state"] != "pending")
        assert (row["state"], row["attempts"]) == ("failed", 1)
        (order,) = shop.query("SELECT token FROM orders")
        merchant = requests.Session()
        csrf = hidden_inputs(merchant.get(f"{shop.url}/console/login", timeout=10).text)
        merchant.post(f"{shop.url}/console/login", data={**csrf, "password": PASSWORD}, timeout=10)
        page = merchant.get(f"{shop.url}/console/orders/{order['token']}", timeout=10).text
        row = re.search(r'<tr data-mail="created">(.*?)</tr>', page).group(1)
        assert "given up" in row and "ConnectionRefusedError" in row
        # Given up means given up: cron leaves it alone.
        smtp.start()
        assert send_command(shop).output.strip() == "sent 0, failed 0"
        assert smtp.mailbox.messages == []
    finally:
        shop.stop()


def test_in_sandbox_mode_mail_goes_to_the_sandbox_mailbox(app, client):
    assert app.config["SANDBOX_MODE"] and not app.config["MAIL_URL"]
    place_order(client)
    (order,) = query(app.config, "SELECT token, buyer_email FROM orders")
    result = app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.output.strip() == "sent 1, failed 0"
    page = client.get("/mailbox").get_data(as_text=True)
    assert page.count('<article class="mail"') == 1 and 'data-kind="created"' in page
    assert f"/orders/{order['token']}/return" in page and order["buyer_email"] in page
    # Once delivered, never again.
    assert app.test_cli_runner().invoke(args=["mail", "send"]).output.strip() == "sent 0, failed 0"


def test_the_mailbox_exists_only_in_sandbox_mode(store, sandbox_server, smtp):
    shop = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        **store,
        MAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
    )
    try:
        assert requests.get(f"{shop.url}/mailbox", timeout=10).status_code == 404
    finally:
        shop.stop()


def test_a_hung_smtp_server_never_holds_up_the_page(store, sandbox_server):
    # A server that takes the connection and never says a word: the mail attempt hangs.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen()
    shop = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        **store,
        MAIL_URL=f"smtp://127.0.0.1:{hung.getsockname()[1]}",
        MAIL_TIMEOUT=120,
    )
    try:
        answer = buy_over_http(requests.Session(), shop.url, follow=False)
        assert answer.status_code == 302
        # The buyer has their answer, and the mail attempt is still connected, waiting.
        hung.settimeout(20)
        connection, _ = hung.accept()
        (row,) = shop.query("SELECT state, sent_at FROM mail_outbox")
        assert row == {"state": "pending", "sent_at": None}
        connection.close()
        # The attempt fails once the server hangs up; the mail waits for its retry.
        rows = outbox_when(shop, lambda rows: rows[0]["last_error"] is not None)
        assert rows[0]["state"] == "pending"
    finally:
        hung.close()
        shop.stop()


class HoldingMailbox(Mailbox):
    """Holds the first message's DATA until released, without blocking the server's loop, so
    another sender can talk to the same server meanwhile."""

    def __init__(self):
        super().__init__()
        self.first_arrived, self.release = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope):
        if not self.first_arrived.is_set():
            self.first_arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 20)
        return await super().handle_DATA(server, session, envelope)


def test_a_sender_stuck_on_one_mail_holds_only_that_mail(sandbox_server, mail_shop, smtp):
    # Two mails due: made while the server was down, their back-off fast-forwarded.
    smtp.stop()
    pay(requests.Session(), mail_shop, sandbox_server)
    outbox_when(mail_shop, lambda rows: len(rows) == 2 and all(r["last_error"] for r in rows))
    with mail_shop.flask_app.app_context():
        from shop.db import execute, get_db, transaction

        db = get_db()
        with transaction(db):
            execute(db, "UPDATE mail_outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    smtp.mailbox = HoldingMailbox()
    smtp.start()

    # Cron's sender gets stuck on its first mail. A second sender (a page's after-response
    # send, another host) sends the other mail meanwhile: the first never claimed it ahead.
    # Claimed in a batch, it would wait behind the stuck one, and past the batch's lease be
    # claimed and sent a second time.
    results = []
    stuck = threading.Thread(target=lambda: results.append(send_command(mail_shop).output))
    stuck.start()
    assert smtp.mailbox.first_arrived.wait(20)
    assert send_command(mail_shop).output.strip() == "sent 1, failed 0"
    smtp.mailbox.release.set()
    stuck.join(20)

    assert [r.strip() for r in results] == ["sent 1, failed 0"]
    assert sorted(m["Subject"] for m in smtp.mailbox.messages) == sorted(SUBJECTS.values())
    rows = mail_shop.query("SELECT state FROM mail_outbox")
    assert [r["state"] for r in rows] == ["sent", "sent"]
