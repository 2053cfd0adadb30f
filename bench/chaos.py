"""Chaos: many orders through the real HTTP flow with every fault on, then reconciliation.

    python -m bench.chaos [--orders 1000] [--buyers 8] [--seed 1] [--database postgresql]

The sandbox runs live on 127.0.0.1, the shop under gunicorn with the README's setting (2
workers x 8 threads); with --database postgresql, two such shops (two hosts) share one
PostgreSQL server started here, and every buyer's requests alternate between them. IPNs are dropped, duplicated, delayed (so they arrive out of order) and
forged; a share of API calls fail in every way the sandbox knows, hang past the shop's
timeout, or answer late. While the exchanger walks paid orders to done, buyers' status pages
poll it, so slow poll answers race the IPNs, and polls see a final state before the late IPNs
of earlier steps. A gunicorn worker is killed (SIGKILL) in the middle of the buying burst and
again in the middle of the IPN burst. Some done orders are refunded with their IPN lost. Then
`flask reconcile`'s function runs, and every order is compared with the sandbox's own table
and history. tests/test_chaos.py runs the same at a small size.
"""

import argparse
import json
import logging
import os
import random
import signal
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import requests

import sandbox
from app import create_app
from bench.common import GUNICORN_SHOP, Server, shop_env
from sandbox.autopilot import run_due
from shop.orders import FINAL, payment_state
from shop.reconcile import reconcile_all
from tests.helpers import BTC_ADDRESS, BTC_ROUTE, hidden_inputs, query
from tests.servers import LiveServer

FAULTS = {
    "ipn_drop": 0.25,
    "ipn_duplicate": 0.25,
    # Up to 3 s: long enough for a status page's poll to see done before the IPNs of the
    # steps that led there arrive.
    "ipn_delay": [0, 3],
    "ipn_forge": 0.25,
    "api_error": 0.1,
    "api_hang": 0.02,
    # Past the shop's read timeout below: the order is made, the answer never arrives.
    "api_hang_seconds": 1.5,
    # Within it: an answer describing the order as it was when asked, arriving late.
    "api_answer_delay": [0, 0.4],
}
# Settings of the shop, under gunicorn and in-process (for reconcile) alike.
SHOP_SETTINGS = {
    "EXCHANGER_TIMEOUT": [1, 1],
    "DRAFT_TIMEOUT_MINUTES": 0,
    # Every status page view asks the exchanger: as many racing polls as possible.
    "STATUS_POLL_SECONDS": 0,
    # Refund checks due at once, so reconcile finds the refunds whose IPN was lost.
    "SETTLEMENT_CHECK_HOURS": [0],
}
# Each above the BTC route's minimum (0.0002 BTC, about 12.9 USDT).
PRODUCTS = ("mug", "tee", "cap", "hoodie")
# Done orders the operator refunds, with every IPN lost meanwhile.
REFUNDED_AFTER_DONE = 0.05


class Chaos:
    """One run: the two servers, the buyers, the operator, and what everyone saw."""

    def __init__(self, orders, buyers, seed, folder, database_url=None):
        self.orders, self.buyers, self.seed = orders, buyers, seed
        self.sandbox_app = sandbox.create_app(
            {
                "DATABASE": str(folder / "sandbox.sqlite"),
                "BACKGROUND": False,
                "IPN_TIMEOUT": (2, 5),
                "FAULTS": {**FAULTS, "seed": seed},
            }
        )
        self.sandbox = self.sandbox_app.extensions["sandbox"]
        self.sandbox_server = LiveServer(self.sandbox_app)
        env = shop_env(folder, self.sandbox_server.url, database_url, **SHOP_SETTINGS)
        # In-process too, for reconcile and for reading; made first, so the schema is there
        # before gunicorn's workers start.
        self.shop_app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": env["FLASK_SECRET_KEY"],
                "DATABASE": env["FLASK_DATABASE"],
                "DATABASE_URL": database_url,
                "EXCHANGER_URL": self.sandbox_server.url,
                "PAYOUT_VALUES": json.loads(env["FLASK_PAYOUT_VALUES"]),
                **SHOP_SETTINGS,
            }
        )
        # Two hosts on PostgreSQL: nothing shared but the database (and the secret key, as a
        # deploy sets it), each its own PUBLIC_URL, so IPNs go to the host that made the order.
        self.shops = [
            Server("app:create_app()", env, **GUNICORN_SHOP)
            for _ in range(2 if database_url else 1)
        ]
        self.shop_app.config["PUBLIC_URL"] = self.shops[0].url
        self.requests_made = 0
        self.statuses = Counter()
        self.kills = 0
        self.lock = threading.Lock()

    def stop(self):
        for shop in self.shops:
            shop.stop()
        self.sandbox_server.stop()

    def host(self):
        """The shop to send the next request to: the hosts in turn, as a balancing proxy does."""
        with self.lock:
            self.requests_made += 1
            return self.shops[self.requests_made % len(self.shops)].url

    def kill_a_worker(self):
        """SIGKILL one gunicorn worker, whatever it is doing; the master starts another."""
        os.kill(self.shops[self.kills % len(self.shops)].worker_pids()[0], signal.SIGKILL)
        self.kills += 1

    # -- buyers --------------------------------------------------------------------------------

    def call(self, buyer, method, url, **kwargs):
        """One request to the shop; None when a killed worker cut it off."""
        try:
            response = buyer.request(method, url, timeout=30, **kwargs)
        except requests.ConnectionError:
            response = None
        with self.lock:
            self.statuses["cut" if response is None else response.status_code] += 1
        return response

    def buy(self, number):
        """One buyer: cart, form, submit (retrying what fails), then pay, cancel or walk away."""
        if number == self.orders // 3:
            self.kill_a_worker()  # in the middle of the buying burst
        rng = random.Random(self.seed * 100_003 + number)
        buyer = requests.Session()
        if not self.fill_cart(buyer, rng.choice(PRODUCTS)):
            return "gave up"
        shop = self.host()
        for _ in range(6):
            form = self.call(buyer, "GET", f"{shop}/checkout/{BTC_ROUTE}")
            if form is None or form.status_code != 200:
                continue
            values = {
                **hidden_inputs(form.text),
                "fromValues_0": BTC_ADDRESS,
                "routeValues_0": f"buyer{number}@example.com",
                "agreement": "y",
            }
            answer = self.call(buyer, "POST", f"{shop}/checkout/{BTC_ROUTE}", data=values)
            paying = answer is not None and answer.url.startswith(self.sandbox_server.url)
            if paying and answer.status_code == 200:
                return self.decide(buyer, answer, rng)
        return "gave up"

    def fill_cart(self, buyer, product):
        for _ in range(6):
            home = self.call(buyer, "GET", f"{self.host()}/")
            if home is None or home.status_code != 200:
                continue
            data = {"csrf_token": hidden_inputs(home.text)["csrf_token"], "product_id": product}
            added = self.call(
                buyer, "POST", f"{self.host()}/cart/add", data={**data, "quantity": "1"}
            )
            if added is not None and added.status_code < 400:
                return True
        return False

    def decide(self, buyer, payment_page, rng):
        fate = rng.choices(("pay", "cancel", "leave"), weights=(7, 1, 2))[0]
        if fate != "leave":
            action = "paid" if fate == "pay" else "cancel"
            buyer.post(
                f"{payment_page.url}/{action}", data=hidden_inputs(payment_page.text), timeout=30
            )
        if rng.random() < 0.5:
            # Some buyers come back at once: the return page asks the exchanger (order/get).
            token = self.shop_token_for(payment_page.url)
            self.call(buyer, "GET", f"{self.host()}/orders/{token}/return")
        return fate

    def shop_token_for(self, payment_url):
        uid = int(payment_url.rstrip("/").split("/")[-2])
        rows = self.shop_rows("SELECT token FROM orders WHERE exchanger_uid = ?", uid)
        return rows[0]["token"]

    def status_pages(self, pool):
        """Every open order's status page once, each asking order/get: polls racing IPNs."""
        tokens = [
            r["token"]
            for r in self.shop_rows("SELECT token FROM orders WHERE exchanger_uid IS NOT NULL")
        ]
        buyer = requests.Session()
        list(
            pool.map(lambda t: self.call(buyer, "GET", f"{self.host()}/orders/{t}/status"), tokens)
        )

    # -- the exchanger's side ------------------------------------------------------------------

    def operate(self, rng):
        """The operator fails, freezes or refunds some paid orders; the autopilot walks the rest
        to done while buyers' pages poll; then some done orders are refunded, their IPN lost."""
        for row in self.sandbox_rows("SELECT uid, status FROM orders WHERE status = 'inProgress'"):
            choice = rng.random()
            if choice < 0.1:
                self.set_status(row["uid"], "errorPayment")
            elif choice < 0.2:
                self.set_status(row["uid"], "hold")
            elif choice < 0.25:
                # Paid, but refunded to the sender; done, returned and deleted are terminal.
                self.set_status(row["uid"], "returned")
        # The autopilot's steps, back to back: each order's IPNs are on their way at once,
        # delayed up to 3 s, while every buyer's status page asks the exchanger, twice.
        for step in range(3):
            self.sandbox.clock.advance(10)
            run_due(self.sandbox)
            if step == 1:
                self.kill_a_worker()  # in the middle of the IPN burst
        with ThreadPoolExecutor(max_workers=12) as pool:
            for _ in range(2):
                self.status_pages(pool)
        assert self.sandbox.dispatcher().wait_idle(120), "IPNs still queued"
        refunded = self.refund_some_done_orders(rng)
        # Well past every orderTTL: unpaid orders expire to deleted.
        self.sandbox.clock.advance(2 * 3600)
        run_due(self.sandbox)
        return refunded

    def refund_some_done_orders(self, rng):
        """Refunds after done whose single IPN is lost: only the refund checks can find them."""
        done = [r["uid"] for r in self.sandbox_rows("SELECT uid FROM orders WHERE status = 'done'")]
        refunded = rng.sample(
            done, k=min(len(done), max(1, round(len(done) * REFUNDED_AFTER_DONE)))
        )
        self.sandbox.faults.update({"ipn_drop": 1.0})
        for uid in refunded:
            self.set_status(uid, "returned")
        self.sandbox.faults.update({"ipn_drop": FAULTS["ipn_drop"]})
        return refunded

    def set_status(self, uid, status):
        url = f"{self.sandbox_server.url}/service/api/v1/sandbox/order/set-status"
        requests.post(url, json={"orderUID": uid, "status": status}, timeout=30).raise_for_status()

    # -- reading both sides --------------------------------------------------------------------

    def sandbox_rows(self, sql, *args):
        return rows_of(self.sandbox_app.config["DATABASE"], sql, args)

    def shop_rows(self, sql, *args):
        return query(self.shop_app.config, sql, *args)

    def reconcile(self):
        with self.shop_app.app_context():
            return reconcile_all(attempts=4, backoff=0.2)

    def exchanger_history(self):
        """uid -> the statuses the exchanger went through, from its own IPN log."""
        history = {}
        for d in self.sandbox_rows(
            "SELECT order_uid, new_status FROM ipn_deliveries WHERE kind = 'normal' ORDER BY id"
        ):
            history.setdefault(d["order_uid"], []).append(d["new_status"])
        return history

    def compare(self):
        """Match every order of either side by its per-order ipnSecret, and count differences."""
        remote = {r["ipn_secret"]: r for r in self.sandbox_rows("SELECT * FROM orders")}
        local = {r["ipn_secret"]: r for r in self.shop_rows("SELECT * FROM orders")}
        history = self.exchanger_history()
        report = Counter()
        for secret, mine in local.items():
            theirs = remote.get(secret)
            if theirs is None:
                # Only an order the exchanger surely never made may be missing there.
                report[
                    "local only, create failed" if mine["status"] == "create_failed" else "LOST"
                ] += 1
                continue
            if mine["exchanger_uid"] is None:
                unpaid = theirs["status"] == "deleted" and mine["status"] == "create_failed"
                report["unconfirmed, expired unpaid" if unpaid else "MISMATCH"] += 1
            elif mine["status"] != theirs["status"]:
                report["MISMATCH"] += 1
            else:
                report["equal"] += 1
                if (payment_state(mine) == "paid") != (theirs["status"] == "done"):
                    report["MISMATCH paid"] += 1
            if mine["review_reason"]:
                report[review_kind(mine, history.get(theirs["uid"], []))] += 1
        report["LOST"] += sum(1 for secret in remote if secret not in local)
        return report


def review_kind(order, statuses):
    """A review is explained by the exchanger's own history: one final state after another, or
    done paying out less than the price."""
    finals = [s for s in statuses if s in FINAL]
    if len(set(finals)) > 1:
        return "review: " + " then ".join(dict.fromkeys(finals))
    reported = order["reported_out"]
    if order["status"] == "done" and reported and Decimal(reported) < Decimal(order["price"]):
        return "review: underpaid"
    return "REVIEW UNEXPLAINED"


def rows_of(database, sql, args):
    db = sqlite3.connect(database, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def run(orders=1000, buyers=8, seed=1, folder=None, database_url=None):
    """Run the scenario; returns a dict of counts (and prints nothing)."""
    with tempfile.TemporaryDirectory() as scratch:
        chaos = Chaos(orders, buyers, seed, Path(folder or scratch), database_url)
        try:
            return play(chaos, random.Random(seed))
        finally:
            chaos.stop()


def play(chaos, rng):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=chaos.buyers) as pool:
        fates = Counter(pool.map(chaos.buy, range(chaos.orders)))
    chaos.sandbox.dispatcher().wait_idle(120)
    refunded = chaos.operate(rng)
    assert chaos.sandbox.dispatcher().wait_idle(120), "IPNs still queued"
    first = chaos.reconcile()
    # A second pass with the API healthy, as the next cron run would be.
    chaos.sandbox.faults.update({"reset": True})
    second = chaos.reconcile()
    third = chaos.reconcile()
    deliveries = chaos.sandbox_rows("SELECT kind, outcome, http_status FROM ipn_deliveries")
    forged = [d for d in deliveries if d["kind"].startswith("forged")]
    ipn_outcomes = Counter(r["outcome"] for r in chaos.shop_rows("SELECT outcome FROM ipn_log"))
    found = chaos.shop_rows(
        f"SELECT COUNT(*) AS n FROM orders WHERE status = 'returned'"  # noqa: S608 - numbers only
        f" AND exchanger_uid IN ({','.join(str(int(uid)) for uid in refunded) or 'NULL'})"
    )[0]["n"]
    return {
        "orders attempted": chaos.orders,
        "buyer fates": dict(fates),
        "shop orders": len(chaos.shop_rows("SELECT id FROM orders")),
        "sandbox orders": len(chaos.sandbox_rows("SELECT uid FROM orders")),
        "comparison": dict(chaos.compare()),
        "http statuses seen by buyers": dict(chaos.statuses),
        "shop hosts": len(chaos.shops),
        "gunicorn workers killed": chaos.kills,
        "ipns dropped": sum(d["outcome"] == "dropped" for d in deliveries),
        "ipns duplicated": sum(d["kind"] == "duplicate" for d in deliveries),
        "ipns forged": len(forged),
        "ipns cut off by a killed worker": sum(d["outcome"] == "error" for d in deliveries),
        "forged ipns accepted": sum(d["http_status"] == 200 for d in forged),
        "ipn answers 500": sum(d["http_status"] == 500 for d in deliveries),
        "shop ipn outcomes": dict(ipn_outcomes),
        "refunds after done, ipn lost / found": [len(refunded), found],
        "reconcile runs": [dict(first), dict(second), dict(third)],
        "seconds": round(time.monotonic() - started, 1),
    }


def main():
    # Thousands of request lines would bury the result.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("app").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--buyers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.database == "sqlite":
        print(json.dumps(run(args.orders, args.buyers, args.seed), indent=2))
        return
    from tests.postgres import PostgresServer

    server = PostgresServer(durable=True)
    try:
        report = run(args.orders, args.buyers, args.seed, database_url=server.database())
    finally:
        server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
