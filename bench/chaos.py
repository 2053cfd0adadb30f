"""Chaos: many orders through the real HTTP flow with every fault on, then reconciliation.

    python -m bench.chaos [--orders 1000] [--buyers 8] [--seed 1]

The shop and the sandbox run live on 127.0.0.1. IPNs are dropped, duplicated, delayed (so they
arrive out of order) and forged; a share of API calls fail in every way the sandbox knows or
hang past the shop's timeout. Then `flask reconcile`'s function runs, and every order is
compared with the sandbox's own table. tests/test_chaos.py runs the same at a small size.
"""

import argparse
import json
import logging
import random
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import sandbox
from app import create_app
from sandbox.autopilot import run_due
from shop.db import upgrade
from shop.orders import payment_state
from shop.reconcile import reconcile_all
from tests.helpers import BTC_ADDRESS, BTC_ROUTE, hidden_inputs
from tests.servers import LiveServer

FAULTS = {
    "ipn_drop": 0.25,
    "ipn_duplicate": 0.25,
    "ipn_delay": [0, 0.5],
    "ipn_forge": 0.25,
    "api_error": 0.1,
    "api_hang": 0.02,
    # Past the shop's read timeout below: the order is made, the answer never arrives.
    "api_hang_seconds": 1.5,
}
# Each above the BTC route's minimum (0.0002 BTC, about 12.9 USDT).
PRODUCTS = ("mug", "tee", "cap", "hoodie")


class Chaos:
    """One run: the two servers, the buyers, the operator, and what everyone saw."""

    def __init__(self, orders, buyers, seed, folder):
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
        self.shop_server = LiveServer()
        self.shop_app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "chaos",
                "DATABASE": str(folder / "shop.sqlite"),
                "PUBLIC_URL": self.shop_server.url,
                "EXCHANGER_URL": self.sandbox_server.url,
                "EXCHANGER_TIMEOUT": (1, 1),
                "PAYOUT_VALUES": {"65f0c0ffee00000000000d10": "TMerchantPayoutWa11etSandboxDemoXq"},
                "DRAFT_TIMEOUT_MINUTES": 0,
                # Every simulated buyer comes from 127.0.0.1: no checkout throttle.
                "CHECKOUT_LIMIT_PER_SESSION": 1_000_000,
                "CHECKOUT_LIMIT_PER_ADDRESS": 1_000_000,
            }
        )
        self.shop_server.app = self.shop_app
        upgrade(self.shop_app.config)  # the deploy step, `flask init-db`: starting never migrates
        self.statuses = Counter()
        self.lock = threading.Lock()

    def stop(self):
        self.shop_server.stop()
        self.sandbox_server.stop()

    # -- buyers --------------------------------------------------------------------------------

    def saw(self, response):
        with self.lock:
            self.statuses[response.status_code] += 1
        return response

    def buy(self, number):
        """One buyer: cart, form, submit (retrying what fails), then pay, cancel or walk away."""
        rng = random.Random(self.seed * 100_003 + number)
        shop = self.shop_server.url
        buyer = requests.Session()
        home = self.saw(buyer.get(f"{shop}/", timeout=30)).text
        data = {"csrf_token": hidden_inputs(home)["csrf_token"], "product_id": rng.choice(PRODUCTS)}
        self.saw(buyer.post(f"{shop}/cart/add", data={**data, "quantity": "1"}, timeout=30))
        for _ in range(6):
            form = self.saw(buyer.get(f"{shop}/checkout/{BTC_ROUTE}", timeout=30))
            if form.status_code != 200:
                continue
            answer = self.saw(
                buyer.post(
                    f"{shop}/checkout/{BTC_ROUTE}",
                    data={
                        **hidden_inputs(form.text),
                        "fromValues_0": BTC_ADDRESS,
                        "routeValues_0": f"buyer{number}@example.com",
                        "agreement": "y",
                    },
                    timeout=30,
                )
            )
            if answer.url.startswith(self.sandbox_server.url) and answer.status_code == 200:
                return self.decide(buyer, answer, rng)
        return "gave up"

    def decide(self, buyer, payment_page, rng):
        fate = rng.choices(("pay", "cancel", "leave"), weights=(7, 1, 2))[0]
        if fate != "leave":
            action = "paid" if fate == "pay" else "cancel"
            self.saw(
                buyer.post(
                    f"{payment_page.url}/{action}",
                    data=hidden_inputs(payment_page.text),
                    timeout=30,
                )
            )
        if rng.random() < 0.5:
            # Some buyers come back at once: the return page asks the exchanger (order/get).
            token = self.shop_token_for(payment_page.url)
            self.saw(buyer.get(f"{self.shop_server.url}/orders/{token}/return", timeout=30))
        return fate

    def shop_token_for(self, payment_url):
        uid = int(payment_url.rstrip("/").split("/")[-2])
        rows = self.shop_rows("SELECT token FROM orders WHERE exchanger_uid = ?", uid)
        return rows[0]["token"]

    # -- the exchanger's side ------------------------------------------------------------------

    def operate(self, rng):
        """The operator fails or freezes a few paid orders; time does the rest."""
        for row in self.sandbox_rows("SELECT uid, status FROM orders WHERE status = 'inProgress'"):
            choice = rng.random()
            if choice < 0.1:
                self.set_status(row["uid"], "errorPayment")
            elif choice < 0.2:
                self.set_status(row["uid"], "hold")
            elif choice < 0.25:
                # Paid, but refunded to the sender; done, returned and deleted are terminal.
                self.set_status(row["uid"], "returned")
        for _ in range(3):
            self.sandbox.clock.advance(10)
            run_due(self.sandbox)
        # Well past every orderTTL: unpaid orders expire to deleted.
        self.sandbox.clock.advance(2 * 3600)
        run_due(self.sandbox)

    def set_status(self, uid, status):
        url = f"{self.sandbox_server.url}/service/api/v1/sandbox/order/set-status"
        requests.post(url, json={"orderUID": uid, "status": status}, timeout=30).raise_for_status()

    # -- reading both sides --------------------------------------------------------------------

    def sandbox_rows(self, sql, *args):
        return rows_of(self.sandbox_app.config["DATABASE"], sql, args)

    def shop_rows(self, sql, *args):
        return rows_of(self.shop_app.config["DATABASE"], sql, args)

    def reconcile(self):
        with self.shop_app.app_context():
            return reconcile_all(attempts=4, backoff=0.2)

    def compare(self):
        """Match every order of either side by its per-order ipnSecret, and count differences."""
        remote = {r["ipn_secret"]: r for r in self.sandbox_rows("SELECT * FROM orders")}
        local = {r["ipn_secret"]: r for r in self.shop_rows("SELECT * FROM orders")}
        report = Counter()
        for secret, mine in local.items():
            theirs = remote.get(secret)
            if theirs is None:
                # Only an order the exchanger surely never made may be missing there.
                report[
                    "local only, create failed" if mine["status"] == "create_failed" else "LOST"
                ] += 1
            elif mine["exchanger_uid"] is None:
                unpaid = theirs["status"] == "deleted" and mine["status"] == "create_failed"
                report["unconfirmed, expired unpaid" if unpaid else "MISMATCH"] += 1
            elif mine["status"] != theirs["status"]:
                report["MISMATCH"] += 1
            else:
                report["equal"] += 1
                paid = payment_state(mine) == "paid"
                if paid != (theirs["status"] == "done"):
                    report["MISMATCH paid"] += 1
        report["LOST"] += sum(1 for secret in remote if secret not in local)
        return report


def rows_of(database, sql, args):
    db = sqlite3.connect(database, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(sql, args).fetchall()]
    finally:
        db.close()


def run(orders=1000, buyers=8, seed=1, folder=None):
    """Run the scenario; returns a dict of counts (and prints nothing)."""
    with tempfile.TemporaryDirectory() as scratch:
        chaos = Chaos(orders, buyers, seed, Path(folder or scratch))
        try:
            return play(chaos, random.Random(seed))
        finally:
            chaos.stop()


def play(chaos, rng):
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=chaos.buyers) as pool:
        fates = Counter(pool.map(chaos.buy, range(chaos.orders)))
    chaos.sandbox.dispatcher().wait_idle(120)
    chaos.operate(rng)
    assert chaos.sandbox.dispatcher().wait_idle(120), "IPNs still queued"
    first = chaos.reconcile()
    # A second pass with the API healthy, as the next cron run would be.
    chaos.sandbox.faults.update({"reset": True})
    second = chaos.reconcile()
    third = chaos.reconcile()
    deliveries = chaos.sandbox_rows("SELECT kind, outcome, http_status FROM ipn_deliveries")
    forged = [d for d in deliveries if d["kind"].startswith("forged")]
    ipn_outcomes = Counter(r["outcome"] for r in chaos.shop_rows("SELECT outcome FROM ipn_log"))
    return {
        "orders attempted": chaos.orders,
        "buyer fates": dict(fates),
        "shop orders": len(chaos.shop_rows("SELECT id FROM orders")),
        "sandbox orders": len(chaos.sandbox_rows("SELECT uid FROM orders")),
        "comparison": dict(chaos.compare()),
        "http statuses seen by buyers": dict(chaos.statuses),
        "ipns dropped": sum(d["outcome"] == "dropped" for d in deliveries),
        "ipns duplicated": sum(d["kind"] == "duplicate" for d in deliveries),
        "ipns forged": len(forged),
        "forged ipns accepted": sum(d["http_status"] == 200 for d in forged),
        "ipn answers 500": sum(d["http_status"] == 500 for d in deliveries),
        "shop ipn outcomes": dict(ipn_outcomes),
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
    args = parser.parse_args()
    print(json.dumps(run(args.orders, args.buyers, args.seed), indent=2))


if __name__ == "__main__":
    main()
