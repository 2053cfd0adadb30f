"""The exchanger's routes, cached in the database for ROUTE_CACHE_SECONDS and shared by workers.

A warm checkout page asks the exchanger nothing. When an entry is older than the TTL, one
worker refreshes it (it takes a short lease) while the others keep serving the old value; when
the exchanger is down or slow, the old value is served with a notice. Creating an order never
uses the cache: it reads its route fresh, so a stale rate never reaches order/create.
"""

import json
import time
from decimal import Decimal

from flask import current_app

from .db import execute, get_db, query_one, transaction
from .exchanger import ExchangerError, ExchangerRejected, ExchangerUnavailable, get_exchanger

LEASE_SECONDS = 30
WAIT_STEP = 0.02


class Cached:
    """A value from the cache, and whether it is older than the exchanger's last answer should be."""

    def __init__(self, value, stale):
        self.value = value
        self.stale = stale


def _row(db, key):
    return query_one(db, "SELECT * FROM route_cache WHERE key = :key", {"key": key})


def _claim(db, key, now):
    """Take the refresh lease for key; False when another worker holds it."""
    # A conditional UPDATE: on PostgreSQL a second host's waits for the first's row lock, then
    # re-reads refreshing_until and finds the lease taken.
    with transaction(db):
        cursor = execute(
            db,
            "UPDATE route_cache SET refreshing_until = :until WHERE key = :key"
            " AND refreshing_until < :now",
            {"until": now + LEASE_SECONDS, "key": key, "now": now},
        )
    return cursor.rowcount == 1


def store(key, value):
    """Put a fresh value in the cache (also used after a fresh read at order creation)."""
    db = get_db()
    with transaction(db):
        execute(
            db,
            "INSERT INTO route_cache (key, value, fetched_at) VALUES (:key, :value, :now)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " fetched_at = excluded.fetched_at, refreshing_until = 0, failed_at = NULL",
            {"key": key, "value": json.dumps(value, default=str), "now": time.time()},
        )


def forget(key):
    db = get_db()
    with transaction(db):
        execute(db, "DELETE FROM route_cache WHERE key = :key", {"key": key})


def _claim_missing(db, key, now):
    """Take the lease on an entry nobody has cached yet (a placeholder row, fetched_at 0)."""
    # Two hosts inserting the same key meet on its primary key: the loser's insert becomes the
    # conditional update, which finds the lease taken.
    with transaction(db):
        cursor = execute(
            db,
            "INSERT INTO route_cache (key, value, fetched_at, refreshing_until)"
            " VALUES (:key, 'null', 0, :until) ON CONFLICT (key) DO UPDATE"
            " SET refreshing_until = excluded.refreshing_until"
            " WHERE route_cache.fetched_at = 0 AND route_cache.refreshing_until < :now",
            {"key": key, "until": now + LEASE_SECONDS, "now": now},
        )
    return cursor.rowcount == 1


def _wait_for(db, key):
    """The entry another worker is fetching, once stored; None if it gave up or failed."""
    left = get_exchanger().remaining()
    end = time.monotonic() + (LEASE_SECONDS if left is None else min(LEASE_SECONDS, left))
    while time.monotonic() < end:
        row = _row(db, key)
        if row is None or row["fetched_at"] > 0 or row["refreshing_until"] < time.time():
            return row if row is not None and row["fetched_at"] > 0 else None
        # A fetch takes tens of milliseconds to seconds; polling the row costs microseconds.
        time.sleep(WAIT_STEP)
    return None


def _cached(row):
    return Cached(json.loads(row["value"], parse_float=Decimal), stale=row["failed_at"] is not None)


def get(key, fetch):
    """The cached value for key, fetching it when missing or expired; a Cached.

    One worker fetches a missing or expired entry; the others serve the old value, or, when
    there is none yet, wait for that worker's answer instead of asking the exchanger too.
    """
    db = get_db()
    row = _row(db, key)
    now = time.time()
    if row is not None and row["fetched_at"] > 0:
        fresh = now - row["fetched_at"] < current_app.config["ROUTE_CACHE_SECONDS"]
        if fresh or not _claim(db, key, now):
            return _cached(row)
    else:
        row = None
        if not _claim_missing(db, key, now):
            stored = _wait_for(db, key)
            if stored is not None:
                return _cached(stored)
    try:
        value = fetch()
    except ExchangerError as exc:
        # Down, slow, under maintenance or flooded: the old value will do, with a notice.
        passing = isinstance(exc, ExchangerUnavailable) or exc.retry_after is not None
        if row is None or not passing:
            _release_missing(db, key)
            raise
        with transaction(db):
            execute(
                db,
                "UPDATE route_cache SET failed_at = :now, refreshing_until = 0 WHERE key = :key",
                {"now": now, "key": key},
            )
        current_app.logger.warning("serving cached %s: the exchanger did not answer", key)
        return Cached(_cached(row).value, stale=True)
    store(key, value)
    return Cached(value, stale=False)


def _release_missing(db, key):
    """After a failed first fetch: drop the placeholder so waiting workers stop waiting."""
    with transaction(db):
        execute(db, "DELETE FROM route_cache WHERE key = :key AND fetched_at = 0", {"key": key})


def routes():
    """route/get, cached: a Cached list of route summaries."""
    return get("routes", get_exchanger().routes)


def route(route_id, lang, fresh=False):
    """route/get/one, cached unless fresh=True (order creation), which also refreshes the cache."""
    key = f"route:{route_id}:{lang}"
    try:
        if not fresh:
            return get(key, lambda: get_exchanger().route(route_id, lang))
        value = get_exchanger().route(route_id, lang)
    except ExchangerRejected as exc:
        if exc.route_unavailable:
            forget(key)
        raise
    store(key, value)
    return Cached(value, stale=False)
