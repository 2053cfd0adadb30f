"""The status rules: decide() as a table, and the interleavings that once went wrong, end to end.

The table needs no database: decide is a pure function of an order row and an event. The
sequences below it run the real shop against the embedded sandbox, whose IPNs are all lost
(they go to a port where nothing listens), so each test delivers the exchanger's own logged IPN
exactly when the sequence says.
"""

import re
import threading
from decimal import Decimal

import pytest

from shop import reconcile
from shop.orders import Decision, Event, decide
from tests.conftest import BOTH_ENGINES
from tests.helpers import place_order, query

pytestmark = BOTH_ENGINES

PRICE = "12.50"


def row(status="waitPayment", version=3, last_ms=1_000, review=None):
    return {
        "status": status,
        "version": version,
        "last_event_ms": last_ms,
        "review_reason": review,
        "price": PRICE,
        "currency": "USDTTRC20",
    }


def ipn(status, at_ms, out=PRICE):
    return Event("ipn", status, at_ms=at_ms, out_amount=Decimal(out))


def poll(status, version=3, at_ms=None, out=PRICE):
    return Event("poll", status, at_ms=at_ms, seen_version=version, out_amount=Decimal(out))


DONE_REASON = "done, but the exchanger paid out 12.49 of 12.50 USDTTRC20"
RULES = [
    # (rule, order, event, decision)
    ("a newer IPN applies", row(), ipn("inProgress", 2_000), Decision("applied", "inProgress")),
    (
        "the same IPN again is a duplicate",
        row("inProgress", last_ms=2_000),
        ipn("inProgress", 2_000),
        Decision("duplicate"),
    ),
    ("an older IPN is stale", row(last_ms=5_000), ipn("inProgress", 4_000), Decision("stale")),
    (
        "an IPN as old as the last, with another status, is stale",
        row(last_ms=5_000),
        ipn("inProgress", 5_000),
        Decision("stale"),
    ),
    (
        "a newer IPN saying what the order says changes nothing",
        row("inProgress"),
        ipn("inProgress", 2_000),
        Decision("unchanged"),
    ),
    (
        "done paying out the price applies and starts the refund checks",
        row("inProgressPayout"),
        ipn("done", 2_000),
        Decision("applied", "done", settle="start"),
    ),
    (
        "done paying out less goes to review, never paid",
        row("inProgressPayout"),
        ipn("done", 2_000, out="12.49"),
        Decision("review", "done", DONE_REASON, settle="start"),
    ),
    (
        "another final state stops the refund checks",
        row("inProgress"),
        ipn("returned", 2_000),
        Decision("applied", "returned", settle="stop"),
    ),
    (
        "a late earlier step after a final state is stale, not a contradiction",
        row("done", last_ms=None),
        ipn("inProgressPayout", 2_000),
        Decision("stale"),
    ),
    (
        "a refund after done follows the exchanger and goes to review",
        row("done"),
        ipn("returned", 2_000),
        Decision("review", "returned", "the exchanger reported returned after done", settle="stop"),
    ),
    (
        "a late done after a refund is an earlier step: returned and deleted are terminal",
        row("returned", last_ms=None),
        ipn("done", 2_000),
        Decision("stale"),
    ),
    (
        "an order the shop gave up creating that the exchanger reports paid is review",
        row("create_failed", last_ms=None),
        poll("done"),
        Decision(
            "review", "done", "the exchanger reported done after create_failed", settle="start"
        ),
    ),
    (
        "an order the shop gave up creating that the exchanger cancelled is consistent",
        row("create_failed", last_ms=None),
        poll("deleted"),
        Decision("unchanged"),
    ),
    ("a poll answer applies", row(), poll("inProgress"), Decision("applied", "inProgress")),
    (
        "a poll overtaken by a change made while it was on its way is raced",
        row(version=4),
        poll("waitPayment", version=3),
        Decision("raced"),
    ),
    (
        "a poll never leaves a final state",
        row("done", last_ms=None),
        poll("inProgressPayout"),
        Decision("stale"),
    ),
    (
        "a poll answer older than the last IPN applied is stale",
        row("inProgressPayout", last_ms=5_000),
        poll("inProgress", at_ms=4_000),
        Decision("stale"),
    ),
    (
        "a poll answer a few ms older than the IPN of the same change changes nothing",
        row("inProgress", last_ms=5_003),
        poll("inProgress", at_ms=5_000),
        Decision("unchanged"),
    ),
    (
        "reconcile's refund check finding a done order still done counts as that check",
        row("done"),
        Event("poll", "done", seen_version=3, out_amount=Decimal(PRICE), refund_check=True),
        Decision("unchanged", settle="check"),
    ),
    (
        "any other poll finding it done does not: it was not asked for a refund",
        row("done"),
        poll("done"),
        Decision("unchanged"),
    ),
    (
        "the merchant's cancel, accepted by the exchanger, applies",
        row("waitPayment"),
        Event("console", "deleted"),
        Decision("applied", "deleted", settle="stop"),
    ),
    (
        "the exchanger's own IPN of that cancel then changes nothing",
        row("deleted", last_ms=None),
        ipn("deleted", 2_000),
        Decision("unchanged"),
    ),
    (
        "order/create's answer moves a draft to new",
        row("draft", last_ms=None),
        Event("create", "new"),
        Decision("applied", "new"),
    ),
    (
        "order/create's answer after an IPN moved the draft on is stale",
        row("waitPayment", last_ms=None),
        Event("create", "new"),
        Decision("stale"),
    ),
    (
        "the shop asking a person to look flags review and keeps the status",
        row("waitPayment"),
        Event("flag", "waitPayment", note="cannot ask"),
        Decision("review", "waitPayment", "cannot ask"),
    ),
    (
        "a second reason waits until the first is resolved",
        row("waitPayment", review="earlier reason"),
        Event("flag", "waitPayment", note="cannot ask"),
        Decision("unchanged"),
    ),
    (
        "giving up on a draft fails it",
        row("draft", last_ms=None),
        Event("create", "create_failed"),
        Decision("applied", "create_failed", settle="stop"),
    ),
    (
        "giving up on a draft an IPN has claimed does nothing",
        row("inProgress", last_ms=None),
        Event("create", "create_failed"),
        Decision("stale"),
    ),
]


@pytest.mark.parametrize(
    ("order", "event", "decision"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_rule(order, event, decision):
    assert decide(order, event) == decision


# -- the three interleavings an independent chaos run found, end to end ----------------------


def rows(app, sql, *args):
    return query(app.config, sql, *args)


def operator(app, uid, status):
    """The exchanger's operator moves the order; its IPN is queued to a port nobody listens on."""
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/order/set-status"
    answer = exchanger.session.post(url, json={"orderUID": uid, "status": status}, timeout=5)
    assert answer.json()["success"], answer.text


def logged_ipn(app, uid, status):
    """The body of the IPN the exchanger sent (and lost) for this order's change to status."""
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/ipn-log"
    deliveries = exchanger.session.get(url, params={"orderUID": uid}, timeout=5).json()
    (payload,) = [
        d["payload"] for d in deliveries["data"]["deliveries"] if d["new_status"] == status
    ]
    return payload


def deliver(client, payload):
    answer = client.post("/ipn", data=payload, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200, answer.get_data(as_text=True)


def state(app):
    (order,) = rows(app, "SELECT status, review_reason FROM orders")
    return order


def history(app):
    return [(h["old_status"], h["new_status"]) for h in rows(app, "SELECT * FROM status_history")]


@pytest.fixture
def order(app, client):
    place_order(client)
    (order,) = rows(app, "SELECT * FROM orders")
    return order


def test_a_late_ipn_after_a_poll_saw_done_changes_nothing_and_flags_nothing(app, client, order):
    uid = order["exchanger_uid"]
    for status in ("inProgress", "inProgressPayout", "done"):
        operator(app, uid, status)
    with app.app_context():
        assert reconcile.poll_order(order) == "applied"
    assert state(app) == {"status": "done", "review_reason": None}
    # The exchanger's inProgressPayout IPN, delayed, arrives after the poll.
    deliver(client, logged_ipn(app, uid, "inProgressPayout"))
    assert state(app) == {"status": "done", "review_reason": None}
    assert rows(app, "SELECT outcome FROM ipn_log")[-1]["outcome"] == "stale"


def test_a_slow_poll_answer_overtaken_by_an_ipn_never_moves_done_back(
    app, client, order, monkeypatch
):
    exchanger = app.extensions["exchanger"]
    ask = exchanger.get_order

    def answer_that_arrives_after_the_done_ipn(uid, secret, view="order"):
        answer = ask(uid, secret, view)  # waitPayment, as the exchanger has it now
        if answer["status"] == "waitPayment":
            # While the answer travels, the buyer pays, and the done IPN is applied first.
            operator(app, uid, "inProgress")
            operator(app, uid, "done")
            deliver(client, logged_ipn(app, uid, "done"))
        return answer

    monkeypatch.setattr(exchanger, "get_order", answer_that_arrives_after_the_done_ipn)
    with app.app_context():
        # Dropped as overtaken, then asked again: done, as the order already says.
        assert reconcile.poll_order(order) == "unchanged"
    assert state(app) == {"status": "done", "review_reason": None}
    assert history(app) == [(None, "draft"), ("draft", "new"), ("new", "done")]


def test_a_refund_after_done_whose_ipn_is_lost_is_found_by_the_refund_check(app, client, order):
    uid = order["exchanger_uid"]
    app.config["SETTLEMENT_CHECK_HOURS"] = [0, 24]
    operator(app, uid, "inProgress")
    operator(app, uid, "done")
    deliver(client, logged_ipn(app, uid, "done"))
    operator(app, uid, "returned")  # its IPN is lost
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0 and "review 1" in result.output
    assert state(app) == {
        "status": "returned",
        "review_reason": "the exchanger reported returned after done",
    }
    (after,) = rows(app, "SELECT settle_check_at FROM orders")
    assert after["settle_check_at"] is None
    assert "Checked 0 orders" in runner.invoke(args=["reconcile"]).output


def test_refund_checks_follow_the_schedule_then_stop(app, client, order):
    uid = order["exchanger_uid"]
    app.config["SETTLEMENT_CHECK_HOURS"] = [0, 0]
    operator(app, uid, "inProgress")
    operator(app, uid, "done")
    deliver(client, logged_ipn(app, uid, "done"))
    runner = app.test_cli_runner()
    assert "unchanged 1" in runner.invoke(args=["reconcile"]).output
    assert rows(app, "SELECT settle_checks FROM orders")[0]["settle_checks"] == 1
    assert "unchanged 1" in runner.invoke(args=["reconcile"]).output
    assert rows(app, "SELECT settle_checks, settle_check_at FROM orders")[0] == {
        "settle_checks": 2,
        "settle_check_at": None,
    }
    assert "Checked 0 orders" in runner.invoke(args=["reconcile"]).output
    assert state(app) == {"status": "done", "review_reason": None}


def test_buyers_pages_share_one_question_per_order_per_poll_interval(app, order, monkeypatch):
    app.config["STATUS_POLL_SECONDS"] = 60
    exchanger = app.extensions["exchanger"]
    ask, asked = exchanger.get_order, []
    monkeypatch.setattr(exchanger, "get_order", lambda *a, **k: asked.append(a) or ask(*a, **k))
    barrier = threading.Barrier(6)

    def look(path):
        buyer = app.test_client()
        barrier.wait()
        assert buyer.get(f"/orders/{order['token']}/{path}").status_code == 200

    threads = [threading.Thread(target=look, args=(p,)) for p in ["status", "return"] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(asked) == 1


def test_a_page_that_could_not_ask_the_exchanger_says_so_and_keeps_checking(app, client, order):
    exchanger = app.extensions["exchanger"]
    exchanger.backoff = 0
    faults = f"{exchanger.base_url}/service/api/v1/sandbox/faults"
    exchanger.session.post(faults, json={"api_error": 1, "api_error_kinds": ["http500"]}, timeout=5)
    page = client.get(f"/orders/{order['token']}/return").get_data(as_text=True)
    assert re.search(r'<p class="notice" id="unreachable">', page)
    assert 'id="polling">' in page  # still checking
    # The return page asked a moment ago: the status endpoint does not ask again, nor guess.
    assert client.get(f"/orders/{order['token']}/status").get_json()["unreachable"] is None
    app.config["STATUS_POLL_SECONDS"] = 0
    assert client.get(f"/orders/{order['token']}/status").get_json()["unreachable"] is True

    exchanger.session.post(faults, json={"reset": True}, timeout=5)
    operator(app, order["exchanger_uid"], "inProgress")
    status = client.get(f"/orders/{order['token']}/status").get_json()
    assert (status["unreachable"], status["status"]) == (False, "inProgress")
    page = client.get(f"/orders/{order['token']}/return").get_data(as_text=True)
    assert '<p class="notice" id="unreachable" hidden>' in page
