"""Webhooks out, against a real receiver on 127.0.0.1: the receiver example of docs/INTEGRATION.md
itself, which verifies every signature. One event per change of state, delivered after the
response, retried with back-off, given up after the window, redelivered from the console."""

import importlib.util
import io
import json
import re
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from werkzeug.security import generate_password_hash

from shop import webhooks
from shop.reconcile import poll_order
from tests.conftest import BOTH_ENGINES, UNREACHABLE_SHOP, ShopServer
from tests.helpers import buy_over_http, create_shop, hidden_inputs, query, rows_when
from tests.servers import LiveServer
from tests.shop.test_console import buy
from tests.shop.test_ipn import fields_for
from tests.shop.test_reconcile import sandbox_call

pytestmark = BOTH_ENGINES

PASSWORD = "merchant console password"
EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "webhook_receiver.py"


def load_example():
    """docs/examples/webhook_receiver.py, the file INTEGRATION.md shows, imported as it is."""
    spec = importlib.util.spec_from_file_location("webhook_receiver", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


class EventReceiver(LiveServer):
    """The merchant's system: the receiver example, served on 127.0.0.1, that can be told to
    answer 500 to the next few requests. events: what the example accepted (a valid, fresh
    signature, each event id once); requests: every request that arrived."""

    def __init__(self):
        self.events, self.requests, self.failures = [], [], 0
        self.changed = threading.Condition()
        self.example = None
        super().__init__(self.serve)
        self.endpoint = f"{self.url}/shop-events"

    def use_secret(self, secret):
        self.example = example.create_app(secret, self.handle)

    def handle(self, event):
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def serve(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        with self.changed:
            self.requests.append(
                {
                    "event_id": environ.get("HTTP_SHOP_EVENT_ID"),
                    "signature": environ.get("HTTP_SHOP_SIGNATURE"),
                    "body": body,
                }
            )
            self.changed.notify_all()
            failing = self.failures > 0
            self.failures -= failing
        if failing:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"database down"]
        return self.example(environ, start_response)

    def wait_for_events(self, count, timeout=20):
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.events) >= count, timeout), (
                f"{len(self.events)} of {count} events arrived"
            )
        return self.events


@pytest.fixture
def receiver():
    server = EventReceiver()
    yield server
    server.stop()


@pytest.fixture
def shop(store):
    """The shop with the embedded sandbox and a console password, CSRF on; delivery only when
    a test asks (send_due, or `flask webhooks send`), so that a test drives every attempt."""
    return create_shop(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "PUBLIC_URL": UNREACHABLE_SHOP,
            "SANDBOX": {"BACKGROUND": False},
            "CONSOLE_PASSWORD_HASH": generate_password_hash(PASSWORD),
            "WEBHOOK_SEND_AFTER_RESPONSE": False,
            **store,
        }
    )


def log_in(merchant, base=""):
    csrf = hidden_inputs(merchant.get(f"{base}/console/login").text)
    merchant.post(f"{base}/console/login", data={**csrf, "password": PASSWORD})
    assert "Log out" in merchant.get(f"{base}/console/webhooks/").text


@pytest.fixture
def merchant(shop):
    client = shop.test_client()
    log_in(client)
    return client


def add_endpoint(merchant, url, base=""):
    """Add an endpoint in the console as a merchant does; returns (its page's answer, secret)."""
    form = hidden_inputs(merchant.get(f"{base}/console/webhooks/").text)
    answer = merchant.post(f"{base}/console/webhooks/", data={**form, "url": url})
    found = re.search(r'<code id="secret">([^<]+)</code>', answer.text)
    return answer, found and found.group(1)


def connect(merchant, receiver, base=""):
    answer, secret = add_endpoint(merchant, receiver.endpoint, base)
    assert answer.status_code == 200 and secret.startswith("whsec_")
    receiver.use_secret(secret)
    return secret


def post_ipn(shop, order, status, ts, **changes):
    answer = shop.test_client().post(
        "/ipn",
        data=urlencode(fields_for(order, status, ts=ts, **changes)),
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200
    return answer


def outbox(where):
    return query(where, "SELECT * FROM webhook_outbox ORDER BY id")


def deliveries(where, outbox_id):
    return query(
        where, "SELECT * FROM webhook_deliveries WHERE outbox_id = ? ORDER BY id", outbox_id
    )


def send(shop):
    result = shop.test_cli_runner().invoke(args=["webhooks", "send"])
    assert result.exception is None, repr(result.exception)
    return result.output.strip()


def send_at(shop, clock):
    with shop.app_context():
        return webhooks.send_due(now=clock)


# -- a paid order, live: IPNs from the sandbox, delivery after the response ----------------------


def pay(buyer, shop, sandbox_server):
    """Buy the mug, pay on the exchanger's page, let the exchanger finish: the order row."""
    payment_url = buy_over_http(buyer, shop.url, follow=False).headers["Location"]
    page = buyer.get(payment_url, timeout=10).text
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(page), timeout=10)
    sandbox_server.autopilot_to_done()
    (order,) = shop.query("SELECT * FROM orders")
    return order


@pytest.fixture
def live_shop(store, sandbox_server):
    shop = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        **store,
        CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
    )
    yield shop
    shop.stop()


def test_a_paid_order_reaches_the_receiver_signed_once_per_change(
    sandbox_server, live_shop, receiver
):
    merchant = requests.Session()
    log_in(merchant, live_shop.url)
    secret = connect(merchant, receiver, live_shop.url)
    order = pay(requests.Session(), live_shop, sandbox_server)
    assert order["status"] == "done"
    # Sent by the workers' background thread right after the IPNs' answers: no cron needed.
    events = receiver.wait_for_events(2)
    assert [e["type"] for e in events] == ["payment.processing", "payment.paid"]
    paid = events[1]
    assert paid["data"] == {
        **paid["data"],
        "token": order["token"],
        "state": "paid",
        "previous_state": "processing",
        "status": "done",
        "review": False,
        "amount": str(order["price"]),
        "currency": order["currency"],
        "reference": None,
    }
    assert paid["id"].startswith("evt_") and abs(paid["created"] - time.time()) < 3600
    # Each request carried the event id in its header, and the example verified its signature.
    assert [r["event_id"] for r in receiver.requests] == [e["id"] for e in events]
    # The shop records the delivery once the receiver's answer is in.
    rows = outbox_when(live_shop, lambda rows: all(r["state"] == "delivered" for r in rows))
    assert [(r["type"], r["state"], r["attempts"]) for r in rows] == [
        ("payment.processing", "delivered", 1),
        ("payment.paid", "delivered", 1),
    ]
    # Cron finds nothing left, and the receiver heard each change once.
    assert send(live_shop.flask_app) == "delivered 0, failed 0"
    assert len(receiver.requests) == 2
    # The delivery log in the console; the secret was shown once, never again.
    page = merchant.get(f"{live_shop.url}/console/webhooks/events/{rows[1]['id']}", timeout=10)
    assert 'data-status="204"' in page.text and paid["id"] in page.text
    for path in ("/console/webhooks/", f"/console/webhooks/endpoints/{rows[1]['endpoint_id']}"):
        shown = merchant.get(f"{live_shop.url}{path}", timeout=10)
        assert shown.status_code == 200 and paid["id"] in shown.text
        assert secret not in shown.text


# -- exactly once per change of state ------------------------------------------------------------


def test_duplicate_ipns_and_same_state_statuses_make_one_event_per_change(shop, merchant, receiver):
    connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    post_ipn(shop, order, "inProgress", 1_000)  # the exchanger's retry: a duplicate
    post_ipn(shop, order, "inProgressPayout", 2_000)  # still processing: no event
    post_ipn(shop, order, "done", 3_000)
    post_ipn(shop, order, "done", 3_000)
    post_ipn(shop, order, "inProgressPayout", 2_000)  # late, stale
    assert [r["type"] for r in outbox(shop.config)] == ["payment.processing", "payment.paid"]
    assert send(shop) == "delivered 2, failed 0"
    assert [e["type"] for e in receiver.events] == ["payment.processing", "payment.paid"]
    assert send(shop) == "delivered 0, failed 0"


def test_concurrent_reconciles_and_ipns_make_one_event(shop, merchant, receiver):
    connect(merchant, receiver)
    (order,) = buy(shop)
    sandbox_call(
        shop, "POST", "order/set-status", {"orderUID": order["exchanger_uid"], "status": "done"}
    )
    workers = 6
    barrier = threading.Barrier(workers)
    outcomes = []

    def reconcile():
        with shop.app_context():
            barrier.wait()
            outcomes.append(poll_order(order))

    def ipn():
        barrier.wait()
        post_ipn(shop, order, "done", 1_900_000_000_000)

    threads = [threading.Thread(target=reconcile) for _ in range(workers - 2)]
    threads += [threading.Thread(target=ipn) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert query(shop.config, "SELECT status FROM orders")[0]["status"] == "done"
    assert [r["type"] for r in outbox(shop.config)] == ["payment.paid"]
    assert send(shop) == "delivered 1, failed 0"
    assert [e["type"] for e in receiver.events] == ["payment.paid"]


def test_every_enabled_endpoint_gets_the_event_under_the_same_id_and_a_disabled_one_none(
    shop, merchant, receiver
):
    connect(merchant, receiver)
    other = EventReceiver()
    try:
        connect(merchant, other)
        (order,) = buy(shop)
        post_ipn(shop, order, "inProgress", 1_000)
        assert send(shop) == "delivered 2, failed 0"
        assert receiver.events[0]["id"] == other.events[0]["id"]
        # Disabled: a change queues nothing for it.
        (endpoint,) = query(
            shop.config, "SELECT id FROM webhook_endpoints WHERE url = ?", other.endpoint
        )
        button = hidden_inputs(merchant.get(f"/console/webhooks/endpoints/{endpoint['id']}").text)
        merchant.post(f"/console/webhooks/endpoints/{endpoint['id']}/enabled", data=button)
        post_ipn(shop, order, "done", 2_000)
        assert send(shop) == "delivered 1, failed 0"
        assert [e["type"] for e in receiver.events] == ["payment.processing", "payment.paid"]
        assert [e["type"] for e in other.events] == ["payment.processing"]
    finally:
        other.stop()


def test_a_resolved_review_is_a_change_of_state_too(shop, merchant, receiver):
    connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "done", 1_000, out="1.00")  # less than the price: review
    form = hidden_inputs(merchant.get(f"/console/orders/{order['token']}").text)
    merchant.post(
        f"/console/orders/{order['token']}/resolve", data={**form, "note": "paid by card"}
    )
    assert send(shop) == "delivered 2, failed 0"
    review, paid = receiver.events
    assert (review["type"], review["data"]["review"], review["data"]["reported_out"]) == (
        "payment.review",
        True,
        "1.00",
    )
    assert (paid["type"], paid["data"]["previous_state"], paid["data"]["review"]) == (
        "payment.paid",
        "review",
        False,
    )


# -- retries, back-off, giving up, redelivery ----------------------------------------------------


def test_a_receiver_that_fails_three_times_gets_the_event_on_the_fourth_attempt(
    shop, merchant, receiver
):
    connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    receiver.failures = 3
    clock = datetime.now(UTC)
    for attempt, waited in ((1, 60), (2, 120), (3, 240)):
        assert send_at(shop, clock) == (0, 1)
        (row,) = outbox(shop.config)
        assert (row["state"], row["attempts"], row["last_error"]) == (
            "pending",
            attempt,
            "HTTP 500: database down",
        )
        due = datetime.fromisoformat(row["next_attempt_at"])
        assert (due - clock).total_seconds() == pytest.approx(waited, abs=1)
        # Not before it is due, by a second.
        assert send_at(shop, due - timedelta(seconds=1)) == (0, 0)
        clock = due
    assert send_at(shop, clock) == (1, 0)
    (row,) = outbox(shop.config)
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 4, None)
    log = deliveries(shop.config, row["id"])
    assert [(d["attempt"], d["status_code"]) for d in log] == [
        (1, 500),
        (2, 500),
        (3, 500),
        (4, 204),
    ]
    # Four requests, one event: the same id every time, each signature good when sent.
    assert {r["event_id"] for r in receiver.requests} == {row["event_id"]}
    assert [e["id"] for e in receiver.events] == [row["event_id"]]
    for request in receiver.requests:
        assert example.verify(receiver_secret(shop), request["signature"], request["body"])


def receiver_secret(shop):
    return query(shop.config, "SELECT secret FROM webhook_endpoints")[0]["secret"]


def test_given_up_after_the_window_then_redelivered_from_the_console(shop, merchant, receiver):
    shop.config["WEBHOOK_RETRY_HOURS"] = 1
    secret = connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    receiver.failures = 1_000
    start = datetime.now(UTC)
    assert send_at(shop, start) == (0, 1)
    assert send_at(shop, start + timedelta(minutes=61)) == (0, 1)
    (row,) = outbox(shop.config)
    assert (row["state"], row["attempts"]) == ("failed", 2)
    # Given up means given up: later runs leave it alone.
    assert send_at(shop, start + timedelta(days=3)) == (0, 0)
    page = merchant.get(f"/console/webhooks/events/{row['id']}").text
    assert "given up" in page and page.count("HTTP 500: database down") == 2
    assert secret not in page

    # The merchant fixed their system; the button without its CSRF token does nothing.
    receiver.failures = 0
    assert merchant.post(f"/console/webhooks/events/{row['id']}/redeliver").status_code == 400
    assert outbox(shop.config)[0]["state"] == "failed"
    form = hidden_inputs(page)
    answer = merchant.post(f"/console/webhooks/events/{row['id']}/redeliver", data=form)
    assert answer.status_code == 302
    assert send(shop) == "delivered 1, failed 0"
    (row,) = outbox(shop.config)
    assert (row["state"], row["attempts"]) == ("delivered", 3)
    assert [e["id"] for e in receiver.events] == [row["event_id"]]
    # Delivered, then redelivered on request: the same event id and body again.
    merchant.post(f"/console/webhooks/events/{row['id']}/redeliver", data=form)
    assert send(shop) == "delivered 1, failed 0"
    first, *_, last = receiver.requests
    assert first["body"] == last["body"] and last["event_id"] == row["event_id"]
    assert len(deliveries(shop.config, row["id"])) == 4


def test_the_secret_stays_out_of_the_delivery_log_and_the_url_query_too(shop, merchant, caplog):
    answer, secret = add_endpoint(merchant, "http://127.0.0.1:1/hooks?token=hush-hush")
    assert answer.status_code == 200 and secret
    assert answer.headers["Cache-Control"] == "no-store"
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    assert send(shop) == "delivered 0, failed 1"
    (row,) = outbox(shop.config)
    (line,) = deliveries(shop.config, row["id"])
    assert line["status_code"] is None and line["error"].startswith("ConnectionError")
    assert len(line["error"]) <= webhooks.ERROR_CHARS
    for text in (line["error"], row["last_error"], caplog.text):
        assert secret not in text and "hush-hush" not in text
    for path in ("/console/webhooks/", f"/console/webhooks/events/{row['id']}"):
        assert secret not in merchant.get(path).text


def test_a_down_receiver_costs_one_attempt_per_run_and_holds_up_no_other(shop, merchant, receiver):
    add_endpoint(merchant, "http://127.0.0.1:1/hooks")
    connect(merchant, receiver)
    for order in buy(shop, times=2):
        post_ipn(shop, order, "inProgress", 1_000)
    # The down one is tried once and passed over; the other endpoint gets both its events.
    assert send(shop) == "delivered 2, failed 1"
    down = query(
        shop.config,
        "SELECT w.attempts FROM webhook_outbox w JOIN webhook_endpoints e"
        " ON e.id = w.endpoint_id WHERE e.url = ? ORDER BY w.attempts",
        "http://127.0.0.1:1/hooks",
    )
    assert [r["attempts"] for r in down] == [0, 1]
    assert len(receiver.events) == 2


def test_prune_removes_only_old_finished_events(shop, merchant):
    add_endpoint(merchant, "http://127.0.0.1:1/hooks")
    for order in buy(shop, times=3):
        post_ipn(shop, order, "inProgress", 1_000)
    first, second, third = outbox(shop.config)
    old = "2020-01-01T00:00:00+00:00"
    query(shop.config, "UPDATE webhook_outbox SET created_at = ?, state = 'delivered'", old)
    query(shop.config, "UPDATE webhook_outbox SET state = 'pending' WHERE id = ?", second["id"])
    query(
        shop.config,
        "UPDATE webhook_outbox SET created_at = ? WHERE id = ?",
        "2099-01-01",
        third["id"],
    )
    result = shop.test_cli_runner().invoke(args=["webhooks", "prune", "--days", "30"])
    assert result.output.strip() == "Removed 1 events older than 30 days."
    # Waiting events stay whatever their age; so do recent ones.
    assert [r["id"] for r in outbox(shop.config)] == [second["id"], third["id"]]


def test_concurrent_senders_deliver_each_event_once(shop, merchant, receiver):
    connect(merchant, receiver)
    for order in buy(shop, times=6):
        post_ipn(shop, order, "inProgress", 1_000)
    senders = 4
    barrier = threading.Barrier(senders)
    results = []

    def sender():
        # Each a worker or host of its own: its own app context, its own connection.
        with shop.app_context():
            barrier.wait()
            results.append(webhooks.send_due())

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(delivered for delivered, _ in results) == 6
    assert len(receiver.requests) == 6 and len({r["event_id"] for r in receiver.requests}) == 6
    lines = query(shop.config, "SELECT outbox_id FROM webhook_deliveries")
    assert len(lines) == len({line["outbox_id"] for line in lines}) == 6


def test_a_claimed_event_waits_out_its_lease_and_a_late_sender_changes_nothing(
    shop, merchant, receiver
):
    from shop.db import get_db

    connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    clock = datetime.now(UTC)
    # A sender claims it, then stalls (or its host dies) before it has sent anything.
    with shop.app_context():
        stalled = webhooks.claim_one(get_db(), clock)
    assert stalled["state"] == "sending"
    assert send_at(shop, clock + timedelta(seconds=webhooks.LEASE_SECONDS - 1)) == (0, 0)
    assert receiver.requests == []
    # Once the lease has run out, another sender delivers it.
    assert send_at(shop, clock + timedelta(seconds=webhooks.LEASE_SECONDS)) == (1, 0)
    # The stalled sender's late result is logged as an attempt, and changes nothing.
    with shop.app_context():
        webhooks.record(get_db(), stalled, None, "ReadTimeout: late", 10_000, clock)
    (row,) = outbox(shop.config)
    assert (row["state"], row["attempts"], row["last_error"]) == ("delivered", 2, None)
    assert len(receiver.events) == 1


# -- never in the request that caused it --------------------------------------------------------


def test_a_hanging_receiver_never_holds_up_the_ipn_answer(store, sandbox_server):
    # Takes the connection and never says a word: the delivery hangs until the test hangs up.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen()
    # A JSON list, as FLASK_WEBHOOK_TIMEOUT gives it; reading waits two minutes.
    shop = ShopServer(store["DATABASE"], sandbox_server.url, **store, WEBHOOK_TIMEOUT=[5, 120])
    try:
        add_endpoint_in_sql(shop, f"http://127.0.0.1:{hung.getsockname()[1]}/hooks")
        buy_over_http(requests.Session(), shop.url, follow=False)
        (order,) = shop.query("SELECT * FROM orders")
        ipn = requests.post(f"{shop.url}/ipn", data=fields_for(order, "inProgress"), timeout=20)
        assert ipn.status_code == 200
        hung.settimeout(20)
        connection, _ = hung.accept()
        # The exchanger has its answer while the delivery is still connected, waiting; and the
        # next IPN is answered too, though the worker's sender is still stuck on the first.
        (row,) = shop.query("SELECT state FROM webhook_outbox")
        assert row["state"] == "sending" and shop.query("SELECT * FROM webhook_deliveries") == []
        done = fields_for(order, "done", ts=1_900_000_000_000)
        assert requests.post(f"{shop.url}/ipn", data=done, timeout=20).status_code == 200
        assert shop.query("SELECT status FROM orders")[0]["status"] == "done"
        connection.close()
        # The attempt fails once the receiver hangs up; the event waits for its retry.
        rows = outbox_when(shop, lambda rows: rows and rows[0]["last_error"] is not None)
        assert rows[0]["state"] == "pending"
    finally:
        hung.close()
        shop.stop()


def test_with_the_receiver_down_ipns_are_answered_and_applied(store, sandbox_server):
    shop = ShopServer(store["DATABASE"], sandbox_server.url, **store)
    try:
        add_endpoint_in_sql(shop, "http://127.0.0.1:1/hooks")
        order = pay(requests.Session(), shop, sandbox_server)
        assert order["status"] == "done"
        outcomes = {r["outcome"] for r in shop.query("SELECT outcome FROM ipn_log")}
        assert outcomes == {"applied"}
        rows = outbox_when(shop, lambda rows: len(rows) == 2 and all(r["last_error"] for r in rows))
        assert all(r["state"] == "pending" for r in rows)
    finally:
        shop.stop()


def add_endpoint_in_sql(shop, url):
    shop.query(
        "INSERT INTO webhook_endpoints (url, secret, enabled, created_at) VALUES (?, ?, ?, ?)",
        url,
        "whsec_test",
        True,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )


def outbox_when(shop, predicate, timeout=20):
    """The outbox rows once predicate(rows) holds (the background attempt runs after the
    response has gone out)."""
    return rows_when(shop, "SELECT * FROM webhook_outbox ORDER BY id", predicate, timeout)


# -- the console's endpoint form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the URL your system receives events at."),
        ("   ", "Enter the URL your system receives events at."),
        ("ftp://example.com/hooks", "The URL must start with http:// or https://."),
        ("javascript:alert(1)", "The URL must start with http:// or https://."),
        ("example.com/hooks", "The URL must start with http:// or https://."),
        ("https:///hooks", "The URL needs a host name"),
        ("https://example.com:99999/hooks", "The URL&#39;s port is not a number"),
        ("https://me:pw@example.com/hooks", "Put no user name or password in the URL"),
        ("https://example.com/hooks#x", "The URL must not have a #fragment"),
        ("https://example.com/ho oks", "The URL must not contain spaces"),
        ("https://example.com/" + "a" * 2000, "The URL is too long"),
    ],
)
def test_a_bad_url_gets_its_own_error_and_adds_nothing(shop, merchant, url, message):
    answer, secret = add_endpoint(merchant, url)
    assert answer.status_code == 400 and message in answer.text and secret is None
    assert query(shop.config, "SELECT * FROM webhook_endpoints") == []


def test_adding_an_endpoint_needs_the_csrf_token_and_a_login(shop, merchant):
    answer = merchant.post("/console/webhooks/", data={"url": "https://example.com/hooks"})
    assert answer.status_code == 400
    stranger = shop.test_client()
    for path in ("/console/webhooks/", "/console/webhooks/events/1"):
        assert stranger.get(path).status_code == 302
    assert query(shop.config, "SELECT * FROM webhook_endpoints") == []


@pytest.mark.parametrize(
    "path",
    [
        "/console/webhooks/endpoints/1",
        "/console/webhooks/events/1",
        "/console/webhooks/events/99999999999999999999",
        "/console/webhooks/endpoints/-1",
        "/console/webhooks/endpoints/abc",
        "/console/webhooks/endpoints/%D9%A3",
        "/console/webhooks/events/1e3",
    ],
)
def test_unknown_ids_are_404(merchant, path):
    assert merchant.get(path).status_code == 404


def test_a_new_secret_replaces_the_old_one_and_is_shown_once(shop, merchant, receiver):
    old = connect(merchant, receiver)
    (endpoint,) = query(shop.config, "SELECT id FROM webhook_endpoints")
    page = merchant.get(f"/console/webhooks/endpoints/{endpoint['id']}").text
    answer = merchant.post(
        f"/console/webhooks/endpoints/{endpoint['id']}/secret", data=hidden_inputs(page)
    )
    new = re.search(r'<code id="secret">([^<]+)</code>', answer.text).group(1)
    assert new != old and answer.headers["Cache-Control"] == "no-store"
    assert new not in merchant.get(f"/console/webhooks/endpoints/{endpoint['id']}").text
    # Signed with the new one from now on: a receiver still on the old one refuses.
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    assert send(shop) == "delivered 0, failed 1"
    receiver.use_secret(new)
    assert send_at(shop, datetime.now(UTC) + timedelta(minutes=2)) == (1, 0)


def test_deleting_an_endpoint_removes_its_events(shop, merchant, receiver):
    connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    assert send(shop) == "delivered 1, failed 0"
    (endpoint,) = query(shop.config, "SELECT id FROM webhook_endpoints")
    page = merchant.get(f"/console/webhooks/endpoints/{endpoint['id']}").text
    merchant.post(f"/console/webhooks/endpoints/{endpoint['id']}/delete", data=hidden_inputs(page))
    for table in ("webhook_endpoints", "webhook_outbox", "webhook_deliveries"):
        assert query(shop.config, f"SELECT * FROM {table}") == []  # noqa: S608 - fixed names
    post_ipn(shop, order, "done", 2_000)
    assert outbox(shop.config) == []


# -- the receiver example in docs/INTEGRATION.md ------------------------------------------------


SECRET = "whsec_example"
BODY = json.dumps({"id": "evt_1", "type": "payment.paid", "data": {}}).encode()


def signed(body=BODY, secret=SECRET, at=None):
    stamp = int(time.time() if at is None else at)
    return webhooks.signature_header(secret, stamp, body.decode())


# Each case: (name, how the request is made from a fresh signature, accepted?). Signed when the
# test runs, not when it is collected: the age of a signature is what is tested.
CASES = [
    ("fresh", lambda: (signed(), BODY), True),
    ("299 s old", lambda: (signed(at=time.time() - 299), BODY), True),
    ("301 s old: a recorded request replayed", lambda: (signed(at=time.time() - 301), BODY), False),
    ("301 s ahead", lambda: (signed(at=time.time() + 301), BODY), False),
    ("another secret", lambda: (signed(secret="whsec_other"), BODY), False),
    ("body changed", lambda: (signed(), BODY.replace(b"paid", b"refunded")), False),
    ("signature changed", lambda: (signed().replace("v1=", "v1=0"), BODY), False),
    ("timestamp not a number", lambda: ("t=abc,v1=00", BODY), False),
    ("no timestamp", lambda: ("v1=" + "0" * 64, BODY), False),
    ("no header", lambda: ("", BODY), False),
    ("non-ASCII signature", lambda: (signed().replace("v1=", "v1=é"), BODY), False),
    ("not JSON", lambda: (signed(b"{nope"), b"{nope"), False),
]


@pytest.mark.parametrize(("case", "make", "accepted"), CASES, ids=[c[0] for c in CASES])
def test_the_receiver_example_takes_fresh_signed_events_only(case, make, accepted):
    header, body = make()
    handled = []
    client = example.create_app(SECRET, handled.append).test_client()
    answer = client.post("/shop-events", data=body, headers={"Shop-Signature": header})
    assert answer.status_code == (204 if accepted else 400)
    assert handled == ([json.loads(body)] if accepted else [])
    if accepted:
        # The same event again (a redelivery) is answered, and handed over only once.
        again = client.post("/shop-events", data=body, headers={"Shop-Signature": header})
        assert again.status_code == 204 and len(handled) == 1


def test_the_signature_is_the_documented_hmac():
    # Stripe's scheme: HMAC-SHA256 of "<t>.<body>", hex; checked against hashlib by hand.
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_x", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhooks.signature_header("whsec_x", 1700000000, "{}") == f"t=1700000000,v1={expected}"


INTEGRATION = Path(__file__).parents[2] / "docs" / "INTEGRATION.md"


def test_the_docs_show_the_example_file_and_the_events_fields_as_sent(shop, merchant, receiver):
    docs = INTEGRATION.read_text()
    shown = re.search(
        r"<!-- docs/examples/webhook_receiver.py -->\n```python\n(.*?)```", docs, re.S
    ).group(1)
    assert "hmac.compare_digest" in shown and shown in EXAMPLE.read_text()
    documented = json.loads(
        re.search(r"```json\n(\{\n  \"id\": \"evt_.*?\n\})\n```", docs, re.S).group(1)
    )
    connect(merchant, receiver)
    (order,) = buy(shop)
    post_ipn(shop, order, "inProgress", 1_000)
    assert send(shop) == "delivered 1, failed 0"
    (sent,) = receiver.events
    assert set(documented) == set(sent) and set(documented["data"]) == set(sent["data"])
    for type_ in ("processing", "paid", "failed", "cancelled", "refunded", "review", "pending"):
        assert f"| `payment.{type_}` |" in docs


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("WEBHOOK_TIMEOUT", [1, 2, 3], "WEBHOOK_TIMEOUT must be seconds"),
        ("WEBHOOK_TIMEOUT", "10", "WEBHOOK_TIMEOUT must be seconds"),
        ("WEBHOOK_TIMEOUT", 0, "WEBHOOK_TIMEOUT must be seconds"),
        ("WEBHOOK_RETRY_HOURS", 0, "WEBHOOK_RETRY_HOURS must be a number of hours"),
        ("WEBHOOK_RETRY_HOURS", "24", "WEBHOOK_RETRY_HOURS must be a number of hours"),
        ("WEBHOOK_RETRY_HOURS", True, "WEBHOOK_RETRY_HOURS must be a number of hours"),
    ],
)
def test_a_bad_setting_is_refused_at_start_by_name(tmp_path, setting, value, message):
    from app import create_app
    from shop.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        create_app({"TESTING": True, "DATABASE": str(tmp_path / "s.sqlite"), setting: value})
