"""flask reconcile and flask ipn: lost IPNs made good, back-off, drafts resolved, test IPNs."""

import pytest
import requests

from shop.exchanger import ExchangerRejected
from tests.conftest import BOTH_ENGINES
from tests.helpers import buy_over_http, place_order, query

pytestmark = BOTH_ENGINES


def rows(app, sql, *args):
    return query(app.config, sql, *args)


def sandbox_call(app, method, path, body):
    """The embedded sandbox's control API, in-process."""
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/{path}"
    return exchanger.session.request(method, url, json=body, timeout=5).json()


def reconcile(app, *args):
    return app.test_cli_runner().invoke(args=["reconcile", *args])


@pytest.fixture
def order(app, client):
    place_order(client)
    return rows(app, "SELECT * FROM orders")[0]


def test_a_lost_ipn_is_made_good_and_a_second_run_changes_nothing(app, order):
    # The embedded sandbox's IPNs go to 127.0.0.1:1, where nothing ever listens: all lost.
    sandbox_call(
        app, "POST", "order/set-status", {"orderUID": order["exchanger_uid"], "status": "done"}
    )
    assert rows(app, "SELECT status FROM orders")[0]["status"] == "new"
    first = reconcile(app)
    assert first.exit_code == 0 and "applied 1" in first.output
    assert rows(app, "SELECT status FROM orders")[0]["status"] == "done"
    history = rows(app, "SELECT * FROM status_history")
    assert history[-1]["source"] == "poll"
    second = reconcile(app)
    assert "Checked 0 orders" in second.output
    assert rows(app, "SELECT * FROM status_history") == history


def test_an_exchanger_that_is_down_changes_nothing_and_is_retried_next_time(app, order):
    sandbox_call(
        app,
        "POST",
        "order/set-status",
        {"orderUID": order["exchanger_uid"], "status": "inProgress"},
    )
    sandbox_call(app, "POST", "faults", {"api_error": 1, "api_error_kinds": ["http500"]})
    app.extensions["exchanger"].backoff = 0
    failed = app.test_cli_runner().invoke(args=["reconcile"])
    assert failed.exit_code == 1 and "error 1" in failed.output
    assert rows(app, "SELECT status FROM orders")[0]["status"] == "new"
    sandbox_call(app, "POST", "faults", {"reset": True})
    assert reconcile(app).exit_code == 0
    assert rows(app, "SELECT status FROM orders")[0]["status"] == "inProgress"


def test_anti_flood_is_waited_out_then_the_order_is_checked(app, order, monkeypatch):
    exchanger = app.extensions["exchanger"]
    real_get = exchanger.get_order
    calls = []

    def flooded_once(uid, secret, view="order"):
        calls.append(uid)
        if len(calls) == 1:
            raise ExchangerRejected("Too many requests", code=5030000, obj={"time": 0.01})
        return real_get(uid, secret, view)

    monkeypatch.setattr(exchanger, "get_order", flooded_once)
    result = reconcile(app)
    # new locally, waitPayment at the exchanger: checked on the second try, and applied.
    assert result.exit_code == 0 and "applied 1" in result.output
    assert len(calls) == 2


def test_final_orders_are_not_asked_about(app, client, order, monkeypatch):
    sandbox_call(
        app, "POST", "order/set-status", {"orderUID": order["exchanger_uid"], "status": "deleted"}
    )
    reconcile(app)
    monkeypatch.setattr(
        app.extensions["exchanger"], "get_order", lambda *a, **k: pytest.fail("asked")
    )
    assert "Checked 0 orders" in reconcile(app).output


def test_a_draft_whose_create_never_answered_is_failed_after_its_timeout(app, client):
    from tests.shop.test_ipn import place_order_lost

    place_order_lost(app, client)
    assert "waiting 1" in reconcile(app).output
    assert rows(app, "SELECT status FROM orders")[0]["status"] == "draft"
    app.config["DRAFT_TIMEOUT_MINUTES"] = 0
    assert "applied 1" in reconcile(app).output
    (order,) = rows(app, "SELECT status, exchanger_id FROM orders")
    assert order == {"status": "create_failed", "exchanger_id": None}
    history = rows(app, "SELECT note FROM status_history ORDER BY id DESC LIMIT 1")
    assert "never confirmed" in history[0]["note"]


def test_many_orders_are_checked_with_bounded_concurrency(app, client):
    app.config["CHECKOUT_LIMIT_PER_SESSION"] = 100
    for _ in range(12):
        place_order(client)
    for row in rows(app, "SELECT exchanger_uid FROM orders"):
        sandbox_call(
            app, "POST", "order/set-status", {"orderUID": row["exchanger_uid"], "status": "done"}
        )
    result = reconcile(app, "--concurrency", "3")
    assert "applied 12" in result.output
    assert {r["status"] for r in rows(app, "SELECT status FROM orders")} == {"done"}


# -- flask ipn send / prune -------------------------------------------------------------------


@pytest.fixture
def live_order(shop_server):
    buy_over_http(requests.Session(), shop_server.url, follow=False)
    return shop_server.query("SELECT * FROM orders")[0]


def ipn(shop_server, *args):
    return shop_server.flask_app.test_cli_runner().invoke(args=["ipn", *args])


def test_ipn_send_posts_a_signed_ipn_and_prints_the_answer(shop_server, live_order):
    result = ipn(shop_server, "send", live_order["token"], "inProgress")
    assert result.exit_code == 0, result.output
    assert "200 OK" in result.output and "is now inProgress" in result.output


def test_ipn_send_duplicate_stale_and_bad_hash(shop_server, live_order):
    token = live_order["token"]
    duplicate = ipn(shop_server, "send", token, "inProgress", "--duplicate")
    assert duplicate.output.count("200 OK") == 2
    assert [r["outcome"] for r in shop_server.query("SELECT outcome FROM ipn_log")] == [
        "applied",
        "duplicate",
    ]
    stale = ipn(shop_server, "send", token, "waitPayment", "--stale")
    assert "200 OK" in stale.output and "is now inProgress" in stale.output
    forged = ipn(shop_server, "send", token, "done", "--bad-hash")
    assert "403 Forbidden" in forged.output and "is now inProgress" in forged.output


def test_ipn_send_with_a_short_amount_puts_the_order_in_review(shop_server, live_order):
    ipn(shop_server, "send", live_order["token"], "done", "--amount", "1.00")
    (order,) = shop_server.query("SELECT status, review_reason FROM orders")
    assert order["status"] == "done" and "1.00 of 12.50" in order["review_reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-token", "done"], "no order with token"),
        (["TOKEN", "done", "--amount", "lots"], "plain decimal number"),
        (["TOKEN", "paid"], "Invalid value"),
    ],
)
def test_ipn_send_refuses_bad_input(shop_server, live_order, args, message):
    args = [live_order["token"] if a == "TOKEN" else a for a in args]
    result = ipn(shop_server, "send", *args)
    assert result.exit_code != 0 and message in result.output


def test_ipn_send_for_an_unconfirmed_order_says_why(app, client):
    from tests.shop.test_ipn import place_order_lost

    place_order_lost(app, client)
    token = rows(app, "SELECT token FROM orders")[0]["token"]
    result = app.test_cli_runner().invoke(args=["ipn", "send", token, "done"])
    assert result.exit_code != 0 and "no ids yet" in result.output


def test_ipn_prune_removes_only_old_entries(app, client):
    rows(
        app,
        "INSERT INTO ipn_log (received_at, body, outcome) VALUES"
        " ('2020-01-01T00:00:00+00:00', 'old', 'rejected'), ('2999-01-01T00:00:00+00:00', 'new', 'rejected')",
    )
    result = app.test_cli_runner().invoke(args=["ipn", "prune", "--days", "30"])
    assert "Removed 1" in result.output
    assert [r["body"] for r in rows(app, "SELECT body FROM ipn_log")] == ["new"]


def test_an_order_only_ipns_can_tell_about_goes_to_review_after_the_draft_timeout(app, client):
    # order/create's answer was lost; an IPN named the order, so the shop has its uid but never
    # its secret, and order/get cannot be asked.
    from tests.shop.test_ipn import claim_lost_draft

    claim_lost_draft(app, client)
    assert "unaskable 1" in reconcile(app).output
    app.config["DRAFT_TIMEOUT_MINUTES"] = 0
    result = reconcile(app)
    assert result.exit_code == 0 and "review 1" in result.output
    (order,) = rows(app, "SELECT status, review_reason FROM orders")
    assert order["status"] == "waitPayment" and "cannot ask the exchanger" in order["review_reason"]
    assert "unaskable 1" in reconcile(app).output  # flagged once, not again
