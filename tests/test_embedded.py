"""The embedded sandbox: the shop and its exchanger in one process, under the dev server and gunicorn."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from shop.db import upgrade
from tests.helpers import buy_over_http, create_shop, hidden_inputs, query

ROOT = Path(__file__).parents[1]
FAST_SANDBOX = {
    "AUTOPILOT_DELAYS": {"inProgress": 0.2, "inProgressPayout": 0.2},
    "TICK_SECONDS": 0.1,
}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def buy_and_pay(base):
    """Click through the whole journey with requests; returns the order's status JSON URL."""
    buyer = requests.Session()
    payment = buy_over_http(buyer, base)
    assert payment.url.startswith(f"{base}/sandbox/en/payment/"), payment.url
    buyer.post(f"{payment.url}/paid", data=hidden_inputs(payment.text), timeout=10)
    back = buyer.get(payment.url, timeout=10)
    return buyer, back


def wait_until_final(buyer, status_url, deadline=30):
    """Poll the status endpoint as the return page does, until final or the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status = buyer.get(status_url, timeout=10).json()
        if status["final"]:
            return status
        time.sleep(0.2)
    raise AssertionError(f"still {status} after {deadline} s")


def status_url_of(base, database):
    (order,) = query(database, "SELECT token FROM orders")
    return f"{base}/orders/{order['token']}/status"


def test_single_threaded_dev_server_with_the_embedded_sandbox(tmp_path):
    port = free_port()
    database = str(tmp_path / "shop.sqlite")
    app = create_shop(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE": database,
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "SANDBOX": FAST_SANDBOX,
        }
    )
    # threaded=False: a shop calling its own port would wait on itself forever.
    server = make_server("127.0.0.1", port, app, threaded=False)
    import threading

    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        base = f"http://127.0.0.1:{port}"
        buyer, _ = buy_and_pay(base)
        status = wait_until_final(buyer, status_url_of(base, database))
        assert status["state"] == "paid"
        operator = buyer.get(f"{base}/sandbox/operator", timeout=10).text
        assert ">done<" in operator
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gunicorn_shop(tmp_path):
    port = free_port()
    database = str(tmp_path / "shop.sqlite")
    env = {
        **os.environ,
        "FLASK_SECRET_KEY": "gunicorn-test-secret-0123456789abcdef",
        "FLASK_DATABASE": database,
        "FLASK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "FLASK_EXCHANGER_URL": "sandbox",
        "FLASK_SANDBOX": json.dumps(FAST_SANDBOX),
    }
    upgrade({"DATABASE": database})  # the deploy step: `flask init-db`
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync"]
    command += ["--bind", f"127.0.0.1:{port}", "--timeout", "30", "app:create_app()"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and process.poll() is None:
            try:
                if requests.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or its one worker still importing the app (busy machine).
                time.sleep(0.1)
        else:
            raise AssertionError(
                process.stdout.read().decode()
                if process.poll() is not None
                else "gunicorn did not start"
            )
        yield base, database
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_one_sync_gunicorn_worker_does_not_deadlock(gunicorn_shop):
    base, database = gunicorn_shop
    buyer, _ = buy_and_pay(base)
    status = wait_until_final(buyer, status_url_of(base, database))
    assert status["state"] == "paid"
