"""Junk on /ipn: genuine IPNs while a flood of 16 KB junk runs beside them, and the disk it costs.

    python -m bench.flood

Baseline: genuine IPNs alone, same server, same run. Goals: with the flood, genuine IPN p99 at
most 3x the baseline's and every one applied; the database grows by at most a third of the
junk bytes sent (it grew by all of them, 171 MiB in 10 s, before the IPN log's bound).
"""

import os
import subprocess
import time
from pathlib import Path

from bench.common import (
    GUNICORN_SHOP,
    ROOT,
    WRK,
    Server,
    parse_wrk,
    report,
    scratch,
    shop_env,
    verdict,
    wrk,
)
from bench.ipn import make_orders
from shop.db import connect

ORDERS = 30_000
SECONDS = 5
JUNK_BYTES = len("orderId=junk&x=") * 1092


def database_bytes(path):
    """The database's size with its WAL: what the disk really holds."""
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def start_flood(url, connections=8, seconds=SECONDS):
    command = [WRK, "--latency", "-t", "1", "-c", str(connections), "-d", f"{seconds}s"]
    command += ["-s", str(ROOT / "bench" / "junk.lua"), url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def main():
    with scratch() as folder:
        database = str(folder / "shop.sqlite")
        bodies = make_orders(database, ORDERS)
        (folder / "bodies.txt").write_text("\n".join(bodies) + "\n")
        os.environ["IPN_BODIES"] = str(folder / "bodies.txt")
        shop = Server("app:create_app()", shop_env(folder, "http://127.0.0.1:1"), **GUNICORN_SHOP)
        script = ROOT / "bench" / "ipn.lua"
        try:
            baseline = wrk(shop.url, 8, SECONDS, script=script)
            before = database_bytes(database)
            flood = start_flood(shop.url)
            time.sleep(0.2)  # the flood is under way before genuine IPNs are measured
            flooded = wrk(shop.url, 8, SECONDS, script=script)
            junk = parse_wrk(flood.communicate()[0])
            grown = database_bytes(database) - before
        finally:
            shop.stop()
        db = connect(database)
        # The second run sends the first one's bodies again: duplicates, answered 200 and logged.
        genuine = db.execute(
            "SELECT COUNT(*) FROM ipn_log WHERE outcome IN ('applied', 'duplicate')"
        ).fetchone()[0]
        db.close()
    sent = junk["requests"] * JUNK_BYTES
    answered = baseline["requests"] + flooded["requests"]
    slowdown = flooded["p99_ms"] / baseline["p99_ms"]
    report(
        "IPN flood: 8 connections of genuine IPNs beside 8 of 16 KB junk, gunicorn 2x8 threads",
        [
            (
                "genuine IPN req/s alone / flooded",
                f"{baseline['rps']:.0f} / {flooded['rps']:.0f}",
                "",
                "",
            ),
            (
                "genuine p99 ms alone / flooded",
                f"{baseline['p99_ms']:.1f} / {flooded['p99_ms']:.1f}",
                "",
                "",
            ),
            ("flooded p99 / alone", f"{slowdown:.2f}", "<= 3", verdict(slowdown, 3, False)),
            ("junk sent MB", f"{sent / 1e6:.1f}", "", ""),
            (
                "database growth / junk sent",
                f"{grown / sent:.3f}",
                "<= 0.33",
                verdict(grown / sent, 0.33, False),
            ),
            (
                "genuine IPNs answered / logged, non-2xx",
                f"{answered}/{genuine}, {baseline['non_2xx'] + flooded['non_2xx']}",
                "all, 0",
                verdict(genuine, answered)
                if not baseline["non_2xx"] + flooded["non_2xx"]
                else "MISSES",
            ),
        ],
    )


if __name__ == "__main__":
    main()
