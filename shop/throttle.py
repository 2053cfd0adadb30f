"""Checkout's throttle: how many orders one buyer session, and one address, may start.

Every order/create costs an exchanger call and leaves an order there; without a limit one
session made 30 in 0.7 s, enough to push the shop into the exchanger's anti-flood limit.
Counted in the database, so every worker and host shares the count. (Flask-Limiter would keep
it per process, or need Redis or Memcached: a second service for what one table does here.)
"""

import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, request, session

from .db import advisory_lock, execute, get_db, now, scalar, transaction


def session_key():
    """A random id for this buyer's session (the cookie session has none of its own)."""
    if not isinstance(session.get("throttle"), str):
        session["throttle"] = secrets.token_urlsafe(16)
    return session["throttle"]


def allow_checkout():
    """Count this order creation; False when the session or the address has had enough."""
    config = current_app.config
    since = (datetime.now(UTC) - timedelta(minutes=config["CHECKOUT_LIMIT_MINUTES"])).isoformat(
        timespec="seconds"
    )
    key, address = session_key(), request.remote_addr or ""
    db = get_db()
    # Counted and recorded in one write transaction: concurrent submits cannot all slip under.
    with transaction(db, durable=False):
        # SQLite's BEGIN IMMEDIATE already serialises this; on PostgreSQL two hosts counting
        # the same session or address at once wait for each other here (always session first,
        # then address, so two such waits never deadlock).
        advisory_lock(db, f"checkout session {key}")
        advisory_lock(db, f"checkout address {address}")
        mine = _count(db, "session_key", key, since, config["CHECKOUT_LIMIT_PER_SESSION"])
        here = _count(db, "remote_addr", address, since, config["CHECKOUT_LIMIT_PER_ADDRESS"])
        if (
            mine >= config["CHECKOUT_LIMIT_PER_SESSION"]
            or here >= config["CHECKOUT_LIMIT_PER_ADDRESS"]
        ):
            return False
        execute(
            db,
            "INSERT INTO checkout_attempts (session_key, remote_addr, attempted_at)"
            " VALUES (:key, :address, :now)",
            {"key": key, "address": address, "now": now()},
        )
        execute(db, "DELETE FROM checkout_attempts WHERE attempted_at < :since", {"since": since})
    return True


def _count(db, column, value, since, limit):
    # column is one of two names written above, never input.
    return scalar(
        db,
        f"SELECT COUNT(*) FROM (SELECT 1 FROM checkout_attempts WHERE {column} = :value"  # noqa: S608
        " AND attempted_at >= :since LIMIT :limit) AS recent",
        {"value": value, "since": since, "limit": limit},
    )


def fixed_window(name, limit, seconds):
    """Count one request against name's fixed window; (allowed, seconds until the next window).

    For the API's limit per key: one upserted row per name and window, shared by every worker
    and host like the checkout's count. Windows older than the current one are deleted as
    they pass, so the table holds about one row per active name.
    """
    clock = int(datetime.now(UTC).timestamp())
    start = clock - clock % seconds
    db = get_db()
    # Not flushed on its own: a count lost to a power cut only lets a few more requests in.
    with transaction(db, durable=False):
        count = scalar(
            db,
            "INSERT INTO rate_windows (name, window_start, count) VALUES (:name, :start, 1)"
            " ON CONFLICT (name, window_start) DO UPDATE SET count = rate_windows.count + 1"
            " RETURNING count",
            {"name": name, "start": start},
        )
        if count == 1:
            # The first request of a window clears the name's old ones.
            execute(
                db,
                "DELETE FROM rate_windows WHERE name = :name AND window_start < :start",
                {"name": name, "start": start},
            )
    return count <= limit, start + seconds - clock
