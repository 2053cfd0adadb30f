"""The shared route cache: TTL, shared across processes, stale on error, fresh at order creation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BOTH_ENGINES
from tests.helpers import BTC_ROUTE, query, submit_requisites

pytestmark = BOTH_ENGINES

ROOT = Path(__file__).parents[2]


@pytest.fixture
def calls(app, monkeypatch):
    """Count the exchanger's route calls."""
    exchanger = app.extensions["exchanger"]
    counted = []
    for name in ("routes", "route"):
        real = getattr(exchanger, name)

        def counting(*args, real=real, name=name, **kwargs):
            counted.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(exchanger, name, counting)
    return counted


@pytest.fixture
def cart(client):
    client.post("/cart/add", data={"product_id": "mug", "quantity": "2"})
    return client


def set_faults(app, **faults):
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/faults"
    exchanger.session.post(url, json={"reset": True, **faults}, timeout=5)


def test_a_warm_checkout_page_asks_the_exchanger_nothing(cart, calls):
    assert cart.get("/checkout").status_code == 200
    assert calls.count("routes") == 1 and calls.count("route") == 7
    calls.clear()
    assert cart.get("/checkout").status_code == 200
    assert cart.get(f"/checkout/{BTC_ROUTE}").status_code == 200
    assert calls == []


def test_entries_expire_after_the_ttl(app, cart, calls):
    cart.get("/checkout")
    query(app.config, "UPDATE route_cache SET fetched_at = fetched_at - 61")
    calls.clear()
    cart.get("/checkout")
    assert calls.count("routes") == 1 and calls.count("route") == 7


def test_the_cache_is_shared_by_every_process(app, cart):
    cart.get("/checkout")
    # Another process (a second gunicorn worker, say) with the same database.
    script = f"""
import json
from app import create_app
app = create_app({{"TESTING": True, "SECRET_KEY": "t", "WTF_CSRF_ENABLED": False,
    "PUBLIC_URL": "http://127.0.0.1:1", "DATABASE": {app.config["DATABASE"]!r}, "DATABASE_URL": {app.config["DATABASE_URL"]!r},
    "SANDBOX": {{"BACKGROUND": False}}}})
exchanger = app.extensions["exchanger"]
calls = []
for name in ("routes", "route"):
    real = getattr(exchanger, name)
    setattr(exchanger, name, lambda *a, real=real, name=name, **k: calls.append(name) or real(*a, **k))
client = app.test_client()
client.post("/cart/add", data={{"product_id": "mug", "quantity": "1"}})
page = client.get("/checkout")
print(json.dumps({{"status": page.status_code, "calls": calls}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": 200, "calls": []}


@pytest.mark.parametrize("kind", ["http500", "envelope", "antiflood"])
def test_a_down_exchanger_gets_the_cached_routes_with_a_notice(app, cart, kind):
    fresh = cart.get("/checkout").get_data(as_text=True)
    assert 'id="stale-notice"' not in fresh
    app.config["ROUTE_CACHE_SECONDS"] = 0
    app.extensions["exchanger"].backoff = 0
    # HTTP 500, the maintenance envelope, anti-flood: all pass; the cached routes will do.
    set_faults(app, api_error=1, api_error_kinds=[kind])
    stale = cart.get("/checkout")
    html = stale.get_data(as_text=True)
    assert stale.status_code == 200 and 'id="stale-notice"' in html
    assert f'data-route="{BTC_ROUTE}"' in html
    set_faults(app)
    assert 'id="stale-notice"' not in cart.get("/checkout").get_data(as_text=True)


def test_with_nothing_cached_a_down_exchanger_gets_the_retry_page(app, cart):
    app.extensions["exchanger"].backoff = 0
    set_faults(app, api_error=1, api_error_kinds=["html"])
    assert cart.get("/checkout").status_code == 503


def test_one_worker_refreshes_while_the_others_serve_the_old_value(app, cart, calls):
    cart.get("/checkout")
    query(
        app.config, "UPDATE route_cache SET fetched_at = fetched_at - 61, refreshing_until = 9e18"
    )
    calls.clear()
    assert cart.get("/checkout").status_code == 200
    assert calls == []


def test_creating_an_order_reads_its_route_fresh(app, cart, calls, monkeypatch):
    page = cart.get(f"/checkout/{BTC_ROUTE}").get_data(as_text=True)
    exchanger = app.extensions["exchanger"]
    real_route = exchanger.route

    def doubled_rate(route_id, lang="en"):
        route = real_route(route_id, lang)
        route["rate"]["rateFullNumber"] = str(2 * float(route["rate"]["rateFullNumber"]))
        return route

    monkeypatch.setattr(exchanger, "route", doubled_rate)
    answer = submit_requisites(cart, page)
    assert answer.status_code == 302
    (order,) = query(app.config, "SELECT send_amount FROM orders")
    # (25 + 1 fee) x the doubled rate: the new rate, not the cached one, priced the order.
    assert order["send_amount"] == "0.00080934"


def test_server_timing_counts_the_exchanger_calls_of_a_page(app, cart):
    app.config["SERVER_TIMING"] = True
    cold = cart.get("/checkout").headers["Server-Timing"]
    warm = cart.get("/checkout").headers["Server-Timing"]
    assert 'desc="8 calls"' in cold and 'desc="0 calls"' in warm
    app.config["SERVER_TIMING"] = False
    assert "Server-Timing" not in cart.get("/checkout").headers
