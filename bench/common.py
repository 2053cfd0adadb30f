"""What every benchmark needs: real servers under gunicorn on 127.0.0.1, wrk, and a worker's memory.

Each benchmark starts what it needs, runs for a bounded time, stops all it started, and prints
its figures as ratios against a baseline measured in the same run (these machines are shared
and noisy), next to the goal.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
WRK = shutil.which("wrk")
# A payout wallet of the sandbox's format, not its demo wallet (production refuses that one).
PAYOUT = {"65f0c0ffee00000000000d10": "TBenchPayoutWa11etNotTheDemoXqzzzz"}
# The README's recommended gunicorn setting for the shop: a buyer waiting on a slow exchanger
# holds one thread, never a whole worker, so IPNs and /health are answered by the others; and
# EXCHANGER_BUDGET_SECONDS (12) ends every wait well inside --timeout.
GUNICORN_SHOP = {"workers": 2, "threads": 8, "timeout": 30}


def store_config(database, database_url=None):
    """The shop's database settings: a SQLite path, and a PostgreSQL URL when given."""
    return {"DATABASE": str(database), "DATABASE_URL": database_url}


def insert_open_orders(database, orders, database_url=None):
    """Open orders as checkout leaves them: (exchanger id, uid, secret, ipnSecret) each."""
    from shop.db import execute, make_engine, now, transaction, upgrade

    config = store_config(database, database_url)
    upgrade(config)
    engine = make_engine(config)
    stamp = now()
    with engine.connect() as db, transaction(db):
        execute(
            db,
            "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
            " price, route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret,"
            " status, exchanger_id, exchanger_uid, exchanger_secret, next_poll_at)"
            " VALUES (:token, :key, :now, :now, 'en', 'USDTTRC20', '12.50', 'r', 'BTC', 'Bitcoin',"
            " 'USDTTRC20', '0.00021012', '[]', :ipn_secret, 'new', :order_id, :uid, :secret, :now)",
            [
                {
                    # Just made, so due for reconcile's first check (next_poll_at).
                    "now": stamp,
                    "token": f"t{uid}",
                    "key": f"k{uid}",
                    "ipn_secret": ipn_secret,
                    "order_id": order_id,
                    "uid": uid,
                    "secret": secret,
                }
                for order_id, uid, secret, ipn_secret in orders
            ],
        )
    engine.dispose()


def count_rows(database, sql, database_url=None):
    """One number from the shop's database (SQLite or PostgreSQL)."""
    from shop.db import make_engine, scalar

    engine = make_engine(store_config(database, database_url))
    with engine.connect() as db:
        value = scalar(db, sql)
    engine.dispose()
    return value


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A gunicorn process serving one app on a free port of 127.0.0.1."""

    def __init__(self, spec, env, workers=1, threads=1, timeout=60, ready_path="/health", log=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The shop's links and ipnUrl point at where it really listens.
        env = {"FLASK_PUBLIC_URL": self.url, **env}
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{self.port}",
        ]
        if threads > 1:
            command += ["--worker-class", "gthread", "--threads", str(threads)]
        command += ["--timeout", str(timeout), "--log-level", "warning", spec]
        self.log = log or open(os.devnull, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait(ready_path)

    def _wait(self, path):
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(self.url + path, timeout=1).status_code < 500:
                    return
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or a worker still importing the app on a busy machine.
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start in 30 s")

    def worker_pids(self):
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def peak_worker_mb(self):
        """The largest peak resident size (VmHWM) among the workers, in MB."""
        peaks = []
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)
        return max(peaks)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def sandbox_server(folder, latency=0.0, threads=32):
    """The sandbox exchanger under gunicorn, with threads so injected latency overlaps."""
    env = {
        "SANDBOX_DATABASE": str(folder / "sandbox.sqlite"),
        "SANDBOX_BACKGROUND": "false",
        "SANDBOX_FAULTS": json.dumps({"api_latency": [latency, latency]}),
    }
    return Server("sandbox:create_app()", env, workers=1, threads=threads, ready_path="/operator")


def shop_env(folder, exchanger_url, database_url=None, **settings):
    from shop.db import upgrade

    # The deploy step (`flask init-db`): starting the shop never migrates.
    upgrade(store_config(folder / "shop.sqlite", database_url))
    env = {
        "FLASK_SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
        "FLASK_DATABASE": str(folder / "shop.sqlite"),
        "FLASK_EXCHANGER_URL": exchanger_url,
        "FLASK_PAYOUT_VALUES": json.dumps(PAYOUT),
        "FLASK_SERVER_TIMING": "true",
        # Every simulated buyer comes from 127.0.0.1: no checkout throttle.
        "FLASK_CHECKOUT_LIMIT_PER_SESSION": "1000000",
        "FLASK_CHECKOUT_LIMIT_PER_ADDRESS": "1000000",
    }
    if database_url:
        env["FLASK_DATABASE_URL"] = database_url
    env.update(
        {
            f"FLASK_{name}": value if isinstance(value, str) else json.dumps(value)
            for name, value in settings.items()
        }
    )
    return env


def set_faults(sandbox_url, **faults):
    url = f"{sandbox_url}/service/api/v1/sandbox/faults"
    requests.post(url, json={"reset": True, **faults}, timeout=10).raise_for_status()


def wrk(url, connections=16, seconds=5, script=None, headers=()):
    """Run wrk; returns requests per second, latency percentiles (ms) and error counts."""
    if WRK is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk (make bench does it)")
    command = [WRK, "--latency", "-t", "2", "-c", str(connections), "-d", f"{seconds}s"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)


def parse_wrk(output):
    def ms(text):
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    result["requests"] = int(re.search(r"(\d+) requests in", output).group(1))
    for pct in ("50", "90", "99"):
        result[f"p{pct}_ms"] = ms(
            re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", output, re.M).group(1)
        )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    result["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    return result


@contextmanager
def scratch():
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        yield Path(folder)


def verdict(value, goal, higher_is_better=True):
    ok = value >= goal if higher_is_better else value <= goal
    return "meets" if ok else "MISSES"


def report(title, rows):
    """Print one benchmark's figures: (name, value, goal text, verdict or '')."""
    print(f"\n== {title}")
    width = max(len(name) for name, *_ in rows)
    for name, value, goal, result in rows:
        print(f"  {name:<{width}}  {value:>12}  {goal:<22} {result}")


def worker_memory(server):
    """{worker pid: (VmRSS, VmHWM) in MB}: resident now and at its peak, per gunicorn worker."""
    found = {}
    for pid in server.worker_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:  # a worker restarting right now
            continue
        rss, hwm = (
            int(re.search(rf"{name}:\s+(\d+) kB", status).group(1)) / 1024
            for name in ("VmRSS", "VmHWM")
        )
        found[pid] = (rss, hwm)
    return found


def console_session(shop_url, password):
    """A requests session logged into the shop's console (the login form's CSRF token)."""
    from tests.helpers import hidden_inputs

    merchant = requests.Session()
    form = merchant.get(f"{shop_url}/console/login", timeout=30).text
    data = {**hidden_inputs(form), "password": password}
    answer = merchant.post(f"{shop_url}/console/login", data=data, timeout=30)
    if not answer.ok or "/console/login" in answer.url:
        raise RuntimeError(f"console login failed: HTTP {answer.status_code}")
    return merchant


def reset_peak_memory(server):
    """Set each worker's VmHWM back to its VmRSS (Linux clear_refs 5), so that the next peak
    read is that of what follows, not of anything the worker did before."""
    for pid in server.worker_pids():
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except (FileNotFoundError, PermissionError):  # restarting, or a kernel without it
            continue
