"""Reconcile asks only the orders due a check: back-off by age, review for age, the index.

Orders are made "long ago" by setting created_at in SQL; the exchanger is the embedded sandbox,
and every question reconcile sends it is counted through the client's observer.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from shop import db, orders, reconcile
from shop.config import ConfigError
from tests.conftest import BOTH_ENGINES
from tests.helpers import place_order, query
from tests.shop.test_console import buy, log_in
from tests.shop.test_ipn import fields_for, post

pytestmark = BOTH_ENGINES

AGE_REVIEW = "the exchanger has not finished this order in 7 days"


def rows(app, sql, *args):
    return query(app.config, sql, *args)


def iso(moment):
    return moment.isoformat(timespec="seconds")


def moment(text):
    return datetime.fromisoformat(text)


def ago(**age):
    return iso(datetime.now(UTC) - timedelta(**age))


@pytest.fixture
def asked(app, monkeypatch):
    """How many times order/get was sent for each exchanger uid (reconcile's questions)."""
    exchanger = app.extensions["exchanger"]
    real_get, counts = exchanger.get_order, Counter()

    def get_order(uid, secret, view="order"):
        counts[uid] += 1
        return real_get(uid, secret, view)

    monkeypatch.setattr(exchanger, "get_order", get_order)
    return counts


def reconcile_run(app):
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    return result.output


def place(app, client, count):
    for _ in range(count):
        place_order(client)
    return rows(app, "SELECT * FROM orders ORDER BY id")


def make_old(app, order_id, **age):
    """The order was created that long ago, and is due a check now."""
    rows(
        app,
        "UPDATE orders SET created_at = ?, next_poll_at = ? WHERE id = ?",
        ago(**age),
        ago(seconds=1),
        order_id,
    )


def waits_after_poll(app, order_id):
    """How long after its last question the order is asked again, to the minute, without the
    spread that days-long waits get (up to an eighth more, by the order's id)."""
    order = order_row(app, order_id)
    waits = moment(order["next_poll_at"]) - moment(order["last_polled_at"]).replace(microsecond=0)
    spread = 1 + (order_id % 64) / 512 if waits >= timedelta(days=1) else 1
    # The question's claim and the write of its answer may fall in different seconds.
    return timedelta(minutes=round(waits / spread / timedelta(minutes=1)))


def order_row(app, order_id):
    return rows(app, "SELECT * FROM orders WHERE id = ?", order_id)[0]


def sandbox_status(app, uid, status):
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/order/set-status"
    answer = exchanger.session.post(url, json={"orderUID": uid, "status": status}, timeout=5)
    assert answer.json()["success"], answer.text


# -- the schedule ---------------------------------------------------------------------------


def test_the_schedule_backs_off_with_age_and_a_run_asks_only_the_due_orders(app, client, asked):
    ages = [{"minutes": 10}, {"hours": 3}, {"hours": 12}, {"days": 3}]
    placed = place(app, client, len(ages))
    for order, age in zip(placed, ages, strict=True):
        make_old(app, order["id"], **age)

    first = reconcile_run(app)

    assert sorted(asked) == sorted(o["exchanger_uid"] for o in placed)
    assert "Checked 4 orders due" in first and "Asked the exchanger about 4" in first
    # Each order's next check, from the moment it was asked: every run, 10 minutes, an hour,
    # a day (orders.POLL_STEPS).
    expected = [timedelta(0), timedelta(minutes=10), timedelta(hours=1), timedelta(days=1)]
    for order, every in zip(placed, expected, strict=True):
        assert waits_after_poll(app, order["id"]) == every, order["id"]

    asked.clear()
    second = reconcile_run(app)

    # Only the order under an hour old is due again.
    assert asked == {placed[0]["exchanger_uid"]: 1}
    assert "Checked 1 orders due" in second


def test_orders_made_due_together_are_spread_over_the_next_day_s_runs(app, client):
    placed = place(app, client, 3)
    for order in placed:
        make_old(app, order["id"], days=3)
    reconcile_run(app)
    scheduled = [order_row(app, o["id"])["next_poll_at"] for o in placed]
    # A day and up to an eighth of one, by id: three different times, in the order of the ids.
    assert scheduled == sorted(set(scheduled))


def test_an_ipn_schedules_the_next_check_from_the_order_s_age(app, client):
    (order,) = place(app, client, 1)
    rows(app, "UPDATE orders SET created_at = ? WHERE id = ?", ago(hours=3), order["id"])
    sent = iso(datetime.now(UTC))
    assert post(client, fields_for(order, "inProgress")).status_code == 200
    after = order_row(app, order["id"])
    assert after["status"] == "inProgress"
    assert (
        timedelta(minutes=10)
        <= moment(after["next_poll_at"]) - moment(sent)
        < timedelta(minutes=11)
    )


def test_a_run_with_many_orders_not_due_asks_only_about_the_due_ones(app, client, asked):
    due = place(app, client, 3)
    # 2,000 open orders the exchanger would not know (asking about one would be an error),
    # none due: created two days ago, next checked tomorrow.
    rows(
        app,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
        " INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
        " price, route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret,"
        " status, exchanger_id, exchanger_uid, exchanger_secret, next_poll_at)"
        " SELECT 'bulk' || i, 'bulk' || i, ?, ?, lang, currency, price, route_id, from_xml,"
        " from_name, to_xml, send_amount, requisites, ipn_secret, 'errorPayment',"
        " 'bulk' || i, 900000 + i, 'nosuchsecret', ? FROM n, orders WHERE orders.id = ?",
        ago(days=2),
        ago(days=2),
        iso(datetime.now(UTC) + timedelta(days=1)),
        due[0]["id"],
    )

    output = reconcile_run(app)

    assert sorted(asked) == sorted(o["exchanger_uid"] for o in due)
    assert "Checked 3 orders due" in output and "error" not in output
    untouched = rows(app, "SELECT COUNT(*) AS n FROM orders WHERE last_polled_at IS NULL")
    assert untouched[0]["n"] == 2000


def test_an_order_the_exchanger_refuses_to_tell_about_is_asked_on_its_schedule(app, client, asked):
    """An order/get the exchanger refuses for good (here a secret it does not know) is an
    error of that run, and the order is asked again on its age's schedule: not on every run
    for ever, which is what reconcile at scale is there to stop."""
    (order,) = place(app, client, 1)
    make_old(app, order["id"], days=3)
    rows(app, "UPDATE orders SET exchanger_secret = 'wrong' WHERE id = ?", order["id"])

    first = app.test_cli_runner().invoke(args=["reconcile"])
    assert first.exit_code == 1 and "1 could not be checked" in first.output
    assert asked == {order["exchanger_uid"]: 1}
    # Daily at three days old, from this question (and up to an eighth more, by id).
    assert waits_after_poll(app, order["id"]) == timedelta(days=1)

    asked.clear()
    second = reconcile_run(app)
    assert asked == {}
    assert "Checked 0 orders due" in second


def due_orders_plan(app):
    with app.app_context():
        connection = db.get_db()
        if db.is_postgresql(connection):
            db.execute(connection, "ANALYZE orders")
            explain = "EXPLAIN "
        else:
            explain = "EXPLAIN QUERY PLAN "
        plan = db.execute(connection, explain + reconcile.DUE_ORDERS, {"now": db.now()})
        return " ".join(str(row[-1]) for row in plan)


def test_the_due_orders_query_reads_the_due_index(app, client):
    (order,) = place(app, client, 1)
    # Mostly finished orders, as in a shop that has run a while: none has a check coming.
    rows(
        app,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
        " INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
        " price, route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret,"
        " status)"
        " SELECT 'old' || i, 'old' || i, created_at, updated_at, lang, currency, price,"
        " route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret, 'deleted'"
        " FROM n, orders WHERE orders.id = ?",
        order["id"],
    )
    plan = due_orders_plan(app)
    assert "orders_due_for_poll" in plan, plan
    assert "SCAN orders" not in plan and "Seq Scan" not in plan, plan


# -- review for age -------------------------------------------------------------------------


def test_an_old_open_order_goes_to_review_once_with_the_message(app, client, asked):
    (order,) = place(app, client, 1)
    sandbox_status(app, order["exchanger_uid"], "errorPayment")  # its IPN is lost
    make_old(app, order["id"], days=8)

    output = reconcile_run(app)

    assert "review for age 1" in output and "1 open for 7 days or more went to review" in output
    after = order_row(app, order["id"])
    assert after["status"] == "errorPayment"
    assert after["review_reason"].startswith(AGE_REVIEW)
    assert "errorPayment" in after["review_reason"]
    # From now on weekly.
    assert waits_after_poll(app, order["id"]) == timedelta(days=7)
    assert "Checked 0 orders due" in reconcile_run(app)

    # A person looks and settles the review; a week later the order is asked about again,
    # and not sent to review a second time.
    with app.app_context():
        assert orders.resolve_review(db.get_db(), order["id"], "the buyer never paid")
    rows(app, "UPDATE orders SET next_poll_at = ? WHERE id = ?", ago(seconds=1), order["id"])
    asked.clear()
    again = reconcile_run(app)
    assert asked == {order["exchanger_uid"]: 1}
    assert "unchanged 1" in again and "review" not in again
    assert order_row(app, order["id"])["review_reason"] is None
    flags = rows(
        app, "SELECT note FROM status_history WHERE order_id = ? AND source = 'flag'", order["id"]
    )
    assert len(flags) == 1 and flags[0]["note"].startswith(AGE_REVIEW)


def test_an_old_order_the_exchanger_refuses_to_tell_about_goes_to_review(app, client, asked):
    """Polled weekly and never answered, it would wait for ever unseen: past the review age it
    is exactly an order a person must look at."""
    (order,) = place(app, client, 1)
    make_old(app, order["id"], days=8)
    rows(app, "UPDATE orders SET exchanger_secret = 'wrong' WHERE id = ?", order["id"])

    output = reconcile_run(app)

    assert "1 open for 7 days or more went to review" in output
    after = order_row(app, order["id"])
    assert after["review_reason"].startswith(AGE_REVIEW) and after["age_flagged_at"]
    assert waits_after_poll(app, order["id"]) == timedelta(days=7)


def test_an_order_the_exchanger_finishes_when_asked_does_not_go_to_review(app, client):
    (order,) = place(app, client, 1)
    sandbox_status(app, order["exchanger_uid"], "deleted")
    make_old(app, order["id"], days=30)
    output = reconcile_run(app)
    assert "applied 1" in output and "review" not in output
    after = order_row(app, order["id"])
    assert after["status"] == "deleted" and after["review_reason"] is None
    assert after["next_poll_at"] is None


def test_an_ipn_on_an_old_order_in_review_still_applies(app, client):
    (order,) = place(app, client, 1)
    make_old(app, order["id"], days=10)
    reconcile_run(app)
    assert order_row(app, order["id"])["review_reason"].startswith(AGE_REVIEW)

    answer = post(client, fields_for(order, "done", ts=1_900_000_000_000))

    assert answer.status_code == 200
    after = order_row(app, order["id"])
    assert after["status"] == "done"
    # Done: its next question is the first refund check, no longer the weekly one.
    assert after["next_poll_at"] == after["settle_check_at"] is not None
    outcome = rows(app, "SELECT outcome FROM ipn_log ORDER BY id DESC LIMIT 1")[0]["outcome"]
    assert outcome == "applied"


def test_an_order_only_ipns_can_tell_about_is_not_looked_at_every_run(app, client, asked):
    from tests.shop.test_ipn import claim_lost_draft

    claim_lost_draft(app, client)
    (order,) = rows(app, "SELECT * FROM orders")
    make_old(app, order["id"], hours=3)
    assert "review 1" in reconcile_run(app)  # past DRAFT_TIMEOUT_MINUTES: a person must look
    # Three hours old: looked at again in 10 minutes, not on every run.
    assert "Checked 0 orders due" in reconcile_run(app)
    assert asked == {}


# -- the console ----------------------------------------------------------------------------


def test_the_order_page_says_when_the_order_is_checked_next_and_why_it_is_in_review(app):
    app.config.update(WTF_CSRF_ENABLED=True)
    from werkzeug.security import generate_password_hash

    from tests.shop.test_console import PASSWORD

    app.config["CONSOLE_PASSWORD_HASH"] = generate_password_hash(PASSWORD)
    (order,) = buy(app)
    merchant = app.test_client()
    assert log_in(merchant).status_code == 302

    page = merchant.get(f"/console/orders/{order['token']}").get_data(as_text=True)
    scheduled = order_row(app, order["id"])["next_poll_at"]
    assert 'id="next-check"' in page and scheduled in page
    assert "goes to review" in page and 'id="age-review"' not in page

    make_old(app, order["id"], days=9)
    reconcile_run(app)
    after = order_row(app, order["id"])
    page = merchant.get(f"/console/orders/{order['token']}").get_data(as_text=True)
    assert after["next_poll_at"] in page and "weekly now" in page
    assert 'id="age-review"' in page and "had not finished it in 7 days" in page
    assert AGE_REVIEW in page  # the review's own reason


# -- the upgrade ----------------------------------------------------------------------------


def test_the_upgrade_schedules_every_open_order_and_keeps_refund_checks(engine, tmp_path, request):
    if engine == "postgresql":
        url = request.getfixturevalue("postgres").database()
        config = {"DATABASE_URL": url}
    else:
        config = {"DATABASE": str(tmp_path / "old.sqlite")}
    alembic_upgrade(config, "0002")
    check_at = iso(datetime.now(UTC) + timedelta(hours=20))
    for token, status, settle_check_at in [
        ("open", "errorPayment", None),
        ("draft", "draft", None),
        ("done", "done", check_at),
        ("checked", "done", None),
        ("gone", "returned", None),
    ]:
        query(
            config,
            "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
            " price, route_id, from_xml, from_name, to_xml, send_amount, requisites,"
            " ipn_secret, status, settle_check_at) VALUES (?, ?, '2026-01-01T00:00:00+00:00',"
            " '2026-01-01T00:00:00+00:00', 'en', 'USDTTRC20', '12.50', 'r', 'BTC', 'Bitcoin',"
            " 'USDTTRC20', '0.0002', '[]', 's', ?, ?)",
            token,
            token,
            status,
            settle_check_at,
        )
    before = iso(datetime.now(UTC))

    db.upgrade(config)

    found = {r["token"]: r["next_poll_at"] for r in query(config, "SELECT * FROM orders")}
    assert before <= found["open"] <= iso(datetime.now(UTC))
    assert found["draft"] == found["open"]
    assert found["done"] == check_at
    assert found["checked"] is None and found["gone"] is None


def alembic_upgrade(config, revision):
    from alembic import command

    engine = sa.create_engine(db.database_url(config))
    try:
        with engine.begin() as connection:
            command.upgrade(db.alembic_config(connection), revision)
    finally:
        engine.dispose()


# -- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize("days", [0, -1, 2.5, "seven", True, 366, None])
def test_a_bad_review_age_is_refused_with_a_clear_message(tmp_path, days):
    with pytest.raises(ConfigError, match="OPEN_ORDER_REVIEW_DAYS must be a whole number of days"):
        create_app(
            {
                "TESTING": True,
                "DATABASE": str(tmp_path / "shop.sqlite"),
                "OPEN_ORDER_REVIEW_DAYS": days,
            }
        )
