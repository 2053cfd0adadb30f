"""Shop pages while the exchanger is slow: catalogue, cart and the route choice, and page weight.

    python -m bench.pages

The sandbox answers every API call after 300 ms; the shop runs on gunicorn (2 workers x 8 threads).
Baseline: the same server's /health. Goals: the warm route-choice page at least 0.4 of the
baseline's throughput, with a median latency that does not depend on the exchanger's; the
catalogue under 200 KB with everything it loads, from no other host.
"""

import re
from urllib.parse import urljoin, urlsplit

import requests

from bench.common import (
    GUNICORN_SHOP,
    Server,
    report,
    sandbox_server,
    scratch,
    set_faults,
    shop_env,
    verdict,
    wrk,
)
from tests.helpers import hidden_inputs

CONNECTIONS = 16
SECONDS = 4
LATENCY = 0.3


def buyer_with_cart(shop_url):
    """A session cookie whose cart holds a mug, and the Cookie header for wrk."""
    buyer = requests.Session()
    token = hidden_inputs(buyer.get(f"{shop_url}/", timeout=30).text)["csrf_token"]
    data = {"csrf_token": token, "product_id": "mug", "quantity": "2"}
    buyer.post(f"{shop_url}/cart/add", data=data, timeout=30).raise_for_status()
    return buyer, f"Cookie: session={buyer.cookies['session']}"


def exchanger_calls(response):
    return int(re.search(r'desc="(\d+) calls"', response.headers["Server-Timing"]).group(1))


def page_weight(url):
    """Bytes of the page and of every stylesheet, script and image it loads; foreign hosts."""
    html = requests.get(url, timeout=30)
    assets = re.findall(r'<(?:link[^>]+href|script[^>]+src|img[^>]+src)="([^"]+)"', html.text)
    total, foreign = len(html.content), []
    for asset in set(assets):
        absolute = urljoin(url, asset)
        if urlsplit(absolute).netloc != urlsplit(url).netloc:
            foreign.append(absolute)
            continue
        total += len(requests.get(absolute, timeout=30).content)
    return total, len(set(assets)), foreign


def main():
    with scratch() as folder:
        sandbox = sandbox_server(folder, latency=LATENCY)
        shop = Server("app:create_app()", shop_env(folder, sandbox.url), **GUNICORN_SHOP)
        try:
            buyer, cookie = buyer_with_cart(shop.url)
            cold = buyer.get(f"{shop.url}/checkout", timeout=60)
            warm = buyer.get(f"{shop.url}/checkout", timeout=60)
            wrk(f"{shop.url}/health", CONNECTIONS, 1)
            baseline = wrk(f"{shop.url}/health", CONNECTIONS, SECONDS)
            catalogue = wrk(f"{shop.url}/", CONNECTIONS, SECONDS)
            cart = wrk(f"{shop.url}/cart", CONNECTIONS, SECONDS, headers=[cookie])
            routes_slow = wrk(f"{shop.url}/checkout", CONNECTIONS, SECONDS, headers=[cookie])
            set_faults(sandbox.url, api_latency=[0, 0])
            routes_fast = wrk(f"{shop.url}/checkout", CONNECTIONS, SECONDS, headers=[cookie])
            weight, assets, foreign = page_weight(f"{shop.url}/")
            memory = shop.peak_worker_mb()
        finally:
            shop.stop()
            sandbox.stop()
    ratio = routes_slow["rps"] / baseline["rps"]
    independence = routes_slow["p50_ms"] / routes_fast["p50_ms"]
    errors = sum(
        r["non_2xx"] + r["socket_errors"] for r in (catalogue, cart, routes_slow, routes_fast)
    )
    report(
        f"Pages: exchanger answering in {LATENCY * 1000:.0f} ms, {CONNECTIONS} connections, {SECONDS} s each",
        [
            ("baseline /health req/s", f"{baseline['rps']:.0f}", "", ""),
            (
                "catalogue req/s (ratio)",
                f"{catalogue['rps']:.0f} ({catalogue['rps'] / baseline['rps']:.2f})",
                "",
                "",
            ),
            (
                "cart req/s (ratio)",
                f"{cart['rps']:.0f} ({cart['rps'] / baseline['rps']:.2f})",
                "",
                "",
            ),
            ("route choice, cold: exchanger calls", str(exchanger_calls(cold)), "", ""),
            (
                "route choice, warm: exchanger calls",
                str(exchanger_calls(warm)),
                "0",
                verdict(-exchanger_calls(warm), 0),
            ),
            ("warm route choice req/s", f"{routes_slow['rps']:.0f}", "", ""),
            ("warm route choice / baseline", f"{ratio:.2f}", ">= 0.4", verdict(ratio, 0.4)),
            (
                "median ms at 300 ms / at 0 ms latency",
                f"{routes_slow['p50_ms']:.1f} / {routes_fast['p50_ms']:.1f}",
                "",
                "",
            ),
            (
                "median ratio (1.00 = independent)",
                f"{independence:.2f}",
                "about 1",
                verdict(-abs(independence - 1), -0.25),
            ),
            ("errors (non-2xx, socket)", str(errors), "0", verdict(-errors, 0)),
            (
                "catalogue weight KB",
                f"{weight / 1024:.1f} ({assets} assets)",
                "< 200",
                verdict(weight / 1024, 200, False),
            ),
            ("assets from other hosts", str(len(foreign)), "0", verdict(-len(foreign), 0)),
            ("peak worker memory MB", f"{memory:.0f}", "< 80", verdict(memory, 80, False)),
        ],
    )


if __name__ == "__main__":
    main()
