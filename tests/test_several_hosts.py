"""Several hosts, one PostgreSQL: two gunicorn masters on two ports share one database.

Nothing is shared between the two shops but the database (no file lock, no process), as on two
machines; the rules must hold by the database's own locks and constraints. Each test fires the
same thing at both hosts at once (threads released together by a barrier) and counts what the
database recorded: no change lost, none doubled. Checked by content, never by a clock.
"""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests
from werkzeug.security import generate_password_hash

from app import create_app
from bench.common import PAYOUT, Server
from shop import reconcile
from shop.logins import MAX_FAILURES_PER_ADDRESS
from tests.helpers import (
    add_to_cart_over_http,
    buy_over_http,
    hidden_inputs,
    query,
    submit_requisites_over_http,
)
from tests.shop.test_ipn import fields_for

ORDERS = 6
COPIES = 4  # of each IPN, spread over both hosts


@pytest.fixture
def database(postgres, postgres_template):
    return {"DATABASE_URL": postgres.database(template=postgres_template)}


@pytest.fixture
def hosts(database, sandbox_server, tmp_path):
    """Two shops under gunicorn (2 workers x 4 threads each) on one PostgreSQL database."""
    env = {
        # The same secret on every host, as a deploy sets it: a session works on any of them.
        "FLASK_SECRET_KEY": "several-hosts-test-secret-0123456789",
        "FLASK_DATABASE": str(tmp_path / "never-used.sqlite"),
        "FLASK_DATABASE_URL": database["DATABASE_URL"],
        "FLASK_EXCHANGER_URL": sandbox_server.url,
        "FLASK_PAYOUT_VALUES": json.dumps(PAYOUT),
        "FLASK_STATUS_POLL_SECONDS": "0",
        "FLASK_CONSOLE_PASSWORD_HASH": generate_password_hash("the right password"),
    }
    servers = [Server("app:create_app()", env, workers=2, threads=4) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


def at_once(*calls):
    """Run the calls in threads released together; their results, in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(n, call):
        barrier.wait()
        results[n] = call()

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def place_orders(hosts, count, database):
    for n in range(count):
        buy_over_http(requests.Session(), hosts[n % 2].url, follow=False)
    return query(database, "SELECT * FROM orders ORDER BY id")


def test_duplicate_ipns_on_both_hosts_apply_once(hosts, database):
    orders = place_orders(hosts, ORDERS, database)
    stamp = int(time.time() * 1000)
    calls = []
    for order in orders:
        ipn = fields_for(order, "inProgress", ts=stamp)
        for copy in range(COPIES):
            url = f"{hosts[copy % 2].url}/ipn"
            calls.append(lambda url=url, ipn=ipn: requests.post(url, data=ipn, timeout=30))

    answers = at_once(*calls)

    assert [a.status_code for a in answers] == [200] * len(calls)
    for order in orders:
        history = query(
            database,
            "SELECT new_status FROM status_history WHERE order_id = ? AND source = 'ipn'",
            order["id"],
        )
        outcomes = Counter(
            r["outcome"]
            for r in query(database, "SELECT outcome FROM ipn_log WHERE order_id = ?", order["id"])
        )
        (after,) = query(database, "SELECT status, version FROM orders WHERE id = ?", order["id"])
        assert history == [{"new_status": "inProgress"}]
        assert outcomes == {"applied": 1, "duplicate": COPIES - 1}
        assert after["status"] == "inProgress" and after["version"] == order["version"] + 1


def test_a_double_submit_to_both_hosts_makes_one_order(hosts, sandbox_server, database):
    buyer = requests.Session()
    add_to_cart_over_http(buyer, hosts[0].url, "mug", 1)
    form_page = buyer.get(f"{hosts[0].url}/checkout/65f0c0ffee0000000000aa01", timeout=10).text

    answers = at_once(
        *(
            lambda host=host: submit_requisites_over_http(buyer, host.url, form_page, follow=False)
            for host in hosts + hosts
        )
    )

    assert [a.status_code for a in answers] == [302] * 4
    (order,) = query(database, "SELECT token, exchanger_uid FROM orders")
    assert len(sandbox_server.orders()) == 1
    # The submit that made the order goes to the payment page; the others to that order's.
    locations = Counter(a.headers["Location"] for a in answers)
    paying = [place for place in locations if f"/payment/{order['exchanger_uid']}/" in place]
    assert len(paying) == 1 and locations[paying[0]] == 1
    assert locations[f"/orders/{order['token']}/pay"] == 3


def test_reconcile_on_both_hosts_at_once_asks_once_per_order(hosts, sandbox_server, database):
    orders = place_orders(hosts, ORDERS, database)
    # Every IPN lost: only reconcile can tell the shops.
    sandbox_server.set_faults(ipn_drop=1)
    for order in orders:
        sandbox_server.set_status(order["exchanger_uid"], "inProgress")
    asked = []
    # Two more "hosts" for the cron job: apps of their own, sharing only the database.
    apps = [
        create_app(
            {
                "SECRET_KEY": "x",
                "TESTING": True,
                "DATABASE": "/nonexistent/never-used.sqlite",
                **database,
                "EXCHANGER_URL": sandbox_server.url,
                "PAYOUT_VALUES": PAYOUT,
            }
        )
        for _ in range(2)
    ]
    for app in apps:
        app.extensions["exchanger"].observe = lambda path, seconds: asked.append(path)
    started = datetime.now(UTC)

    def run(app):
        with app.app_context():
            return reconcile.reconcile_all(concurrency=4, started=started)

    outcomes = at_once(*(lambda app=app: run(app) for app in apps))

    total = outcomes[0] + outcomes[1]
    assert total == Counter(applied=ORDERS, skipped=ORDERS)
    assert len([path for path in asked if "order/get" in path]) == ORDERS
    polls = query(database, "SELECT order_id FROM status_history WHERE source = 'poll'")
    assert sorted(p["order_id"] for p in polls) == [o["id"] for o in orders]
    statuses = query(database, "SELECT status FROM orders")
    assert [s["status"] for s in statuses] == ["inProgress"] * ORDERS


def test_guesses_sent_to_both_hosts_at_once_stop_at_the_login_limit(hosts, database):
    guesses = []
    for n in range(3 * MAX_FAILURES_PER_ADDRESS):
        guesser, host = requests.Session(), hosts[n % 2].url
        token = hidden_inputs(guesser.get(f"{host}/console/login", timeout=10).text)["csrf_token"]
        data = {"csrf_token": token, "password": f"guess {n}"}
        guesses.append(
            lambda guesser=guesser, host=host, data=data: guesser.post(
                f"{host}/console/login", data=data, timeout=30
            )
        )

    answers = at_once(*guesses)

    failed = query(database, "SELECT id FROM login_attempts WHERE outcome = 'failed'")
    assert len(failed) == MAX_FAILURES_PER_ADDRESS
    assert Counter(a.status_code for a in answers)[429] >= 2 * MAX_FAILURES_PER_ADDRESS
