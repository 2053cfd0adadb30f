"""A slow exchanger cannot freeze the shop: a time budget per request, threads under gunicorn.

The shop runs under the README's recommended gunicorn setting (bench.common.GUNICORN_SHOP),
the exchanger (the sandbox, live) answers only after longer than the budget. Several buyers sit
on their return pages meanwhile, and /health and /ipn must still answer: checked by order of
events (the pages are provably still waiting when the answers come), never by a stopwatch.
"""

import json
import re
import threading
import time

import pytest
import requests

from bench.common import GUNICORN_SHOP, PAYOUT, Server
from shop.db import upgrade
from shop.exchanger import ExchangerClient, ExchangerUnavailable
from tests.conftest import SandboxServer
from tests.helpers import buy_over_http, query
from tests.shop.test_ipn import fields_for

PAGES = 4
BUDGET = 3
# Longer than a read timeout (10 s): without a budget a page retries it, 3 calls in all.
LATENCY = 12


class InFlight:
    """WSGI middleware: how many order/get calls the exchanger is in the middle of."""

    def __init__(self, app):
        self.app = app
        self.count = 0
        self.changed = threading.Condition()

    def __call__(self, environ, start_response):
        counted = "order/get" in environ["PATH_INFO"]
        if counted:
            with self.changed:
                self.count += 1
                self.changed.notify_all()
        try:
            return self.app(environ, start_response)
        finally:
            if counted:
                with self.changed:
                    self.count -= 1
                    self.changed.notify_all()

    def wait_for(self, count, timeout=30):
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout)


@pytest.fixture
def slow_world(tmp_path):
    exchanger = SandboxServer(str(tmp_path / "sandbox.sqlite"))
    in_flight = InFlight(exchanger.flask_app)
    exchanger.app = in_flight
    env = {
        "FLASK_SECRET_KEY": "slow-exchanger-test-secret-0123456789",
        "FLASK_DATABASE": str(tmp_path / "shop.sqlite"),
        "FLASK_EXCHANGER_URL": exchanger.url,
        "FLASK_PAYOUT_VALUES": json.dumps(PAYOUT),
        "FLASK_EXCHANGER_BUDGET_SECONDS": str(BUDGET),
        "FLASK_STATUS_POLL_SECONDS": "0",
        "FLASK_SERVER_TIMING": "true",
    }
    upgrade({"DATABASE": str(tmp_path / "shop.sqlite")})  # the deploy step: `flask init-db`
    shop = Server("app:create_app()", env, **GUNICORN_SHOP)
    yield shop, exchanger, in_flight, str(tmp_path / "shop.sqlite")
    shop.stop()
    exchanger.stop()


def test_ipn_and_health_answer_while_buyers_wait_on_a_slow_exchanger(slow_world):
    shop, exchanger, in_flight, database = slow_world
    for _ in range(PAGES + 1):
        buy_over_http(requests.Session(), shop.url, follow=False)
    orders = query(database, "SELECT * FROM orders ORDER BY id")
    exchanger.set_faults(api_latency=[LATENCY, LATENCY])

    answers, finished = [None] * PAGES, threading.Event()

    def return_page(n):
        answers[n] = requests.get(f"{shop.url}/orders/{orders[n]['token']}/return", timeout=60)
        finished.set()

    buyers = [threading.Thread(target=return_page, args=(n,)) for n in range(PAGES)]
    for buyer in buyers:
        buyer.start()
    # Every return page is now waiting on the exchanger...
    assert in_flight.wait_for(PAGES)
    health = requests.get(f"{shop.url}/health", timeout=60)
    ipn = requests.post(
        f"{shop.url}/ipn",
        data=fields_for(orders[PAGES], "waitPayment", ts=int(time.time() * 1000)),
        timeout=60,
    )
    # ...and still was when the shop answered these: nothing queued behind the slow pages.
    waiting = not finished.is_set()
    assert health.status_code == 200 and ipn.status_code == 200
    assert waiting, "a return page finished before /health and /ipn were answered"
    for buyer in buyers:
        buyer.join()
    # Each page gave up within its budget after one call (no retries on a slow exchanger),
    # and still showed the buyer their order.
    for answer in answers:
        assert answer.status_code == 200
        assert re.search(r'desc="1 calls"', answer.headers["Server-Timing"]), answer.headers
    applied = query(database, "SELECT status FROM orders WHERE id = ?", orders[PAGES]["id"])
    assert applied[0]["status"] == "waitPayment"


def test_the_client_stops_retrying_when_the_budget_is_spent(sandbox_server):
    sandbox_server.set_faults(api_latency=[2, 2])
    calls = []
    deadline = time.monotonic() + 0.5
    client = ExchangerClient(
        sandbox_server.url,
        timeout=(3, 10),
        observe=lambda path, seconds: calls.append(path),
        deadline=lambda: deadline,
    )
    with pytest.raises(ExchangerUnavailable):
        client.routes()
    assert len(calls) == 1
    # Once the budget is spent, nothing more is sent at all.
    with pytest.raises(ExchangerUnavailable, match="budget"):
        client.routes()
    assert len(calls) == 1


def test_a_write_once_sent_keeps_its_whole_read_timeout(sandbox_server):
    # A slow exchanger (1.5 s) and a request with 2 s of budget: the route read takes most of
    # it, and order/create must still be waited for, or the order it makes is lost to the shop.
    from tests.helpers import btc_order

    sandbox_server.set_faults(api_latency=[1.5, 1.5])
    deadline = time.monotonic() + 2
    client = ExchangerClient(sandbox_server.url, timeout=(3, 10), deadline=lambda: deadline)
    client.route("65f0c0ffee0000000000aa01")
    created = client.create_order(btc_order())
    assert created.uid in sandbox_server.orders()
    # Once the budget is spent, a write is not even started: nothing was made.
    with pytest.raises(ExchangerUnavailable, match="budget") as refused:
        client.create_order(btc_order())
    assert refused.value.may_have_acted is False
