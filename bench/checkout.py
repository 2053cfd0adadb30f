"""The shop's own time for placing one order, on top of the exchanger's.

    python -m bench.checkout

The sandbox answers in 50 ms; the shop (gunicorn, 2 workers x 8 threads) reports in Server-Timing how
long each request waited on the exchanger. Own time = the buyer's wait for the order submit
minus that. Goal: median under 15 ms.
"""

import re
import statistics
import time

import requests

from bench.common import GUNICORN_SHOP, Server, report, sandbox_server, scratch, shop_env, verdict
from tests.helpers import BTC_ADDRESS, BTC_ROUTE, hidden_inputs

ORDERS = 150
LATENCY = 0.05


def place(shop_url):
    """One buyer's submit: (seconds waited, seconds the shop waited on the exchanger, calls)."""
    buyer = requests.Session()
    token = hidden_inputs(buyer.get(f"{shop_url}/", timeout=30).text)["csrf_token"]
    buyer.post(
        f"{shop_url}/cart/add",
        data={"csrf_token": token, "product_id": "mug", "quantity": "1"},
        timeout=30,
    )
    form = buyer.get(f"{shop_url}/checkout/{BTC_ROUTE}", timeout=30).text
    data = {
        **hidden_inputs(form),
        "fromValues_0": BTC_ADDRESS,
        "routeValues_0": "b@example.com",
        "agreement": "y",
    }
    started = time.perf_counter()
    answer = buyer.post(
        f"{shop_url}/checkout/{BTC_ROUTE}", data=data, allow_redirects=False, timeout=30
    )
    waited = time.perf_counter() - started
    assert answer.status_code == 302, answer.status_code
    timing = re.search(r'dur=([\d.]+);desc="(\d+) calls"', answer.headers["Server-Timing"])
    return waited, float(timing.group(1)) / 1000, int(timing.group(2))


def main():
    with scratch() as folder:
        sandbox = sandbox_server(folder, latency=LATENCY)
        shop = Server("app:create_app()", shop_env(folder, sandbox.url), **GUNICORN_SHOP)
        try:
            place(shop.url)  # warm the route cache and both workers' imports
            results = [place(shop.url) for _ in range(ORDERS)]
            memory = shop.peak_worker_mb()
        finally:
            shop.stop()
            sandbox.stop()
    own = sorted((waited - exchanger) * 1000 for waited, exchanger, _ in results)
    exchanger = statistics.median(e * 1000 for _, e, _ in results)
    median, p95 = statistics.median(own), own[int(len(own) * 0.95) - 1]
    report(
        f"Checkout: {ORDERS} orders placed one after another, exchanger latency {LATENCY * 1000:.0f} ms",
        [
            ("exchanger calls per order", str(results[0][2]), "2 (fresh route, create)", ""),
            ("median ms waiting on the exchanger", f"{exchanger:.1f}", "", ""),
            ("shop's own ms, median", f"{median:.1f}", "< 15", verdict(median, 15, False)),
            ("shop's own ms, p95", f"{p95:.1f}", "", ""),
            ("peak worker memory MB", f"{memory:.0f}", "< 80", verdict(memory, 80, False)),
        ],
    )


if __name__ == "__main__":
    main()
