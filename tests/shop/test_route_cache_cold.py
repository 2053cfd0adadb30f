"""A cold route cache: concurrent checkouts ask the exchanger once per entry, not once each."""

import re
import threading

import requests

from tests.conftest import BOTH_ENGINES, ShopServer
from tests.helpers import add_to_cart_over_http

pytestmark = BOTH_ENGINES


def exchanger_calls(answer):
    return int(re.search(r'desc="(\d+) calls"', answer.headers["Server-Timing"]).group(1))


def test_two_cold_checkouts_make_the_calls_of_one(store, sandbox_server):
    shop = ShopServer(store["DATABASE"], sandbox_server.url, SERVER_TIMING=True, **store)
    try:
        buyers = [requests.Session() for _ in range(2)]
        for buyer in buyers:
            add_to_cart_over_http(buyer, shop.url, "mug", 1)
        # The cart page has cached the route list (it names the currency): cold again.
        shop.query("DELETE FROM route_cache")
        # Each exchanger call takes a while, so the two pages overlap for their whole length.
        sandbox_server.set_faults(api_latency=[0.2, 0.2])
        start = threading.Barrier(2)
        answers = [None, None]

        def check_out(n):
            start.wait()
            answers[n] = buyers[n].get(f"{shop.url}/checkout", timeout=60)

        threads = [threading.Thread(target=check_out, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].text.count("data-route=") == answers[1].text.count("data-route=") > 0
        # One route list and seven definitions, however the two pages interleaved.
        assert sum(exchanger_calls(a) for a in answers) == 8
    finally:
        shop.stop()
