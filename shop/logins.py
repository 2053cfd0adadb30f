"""Who may use the merchant console: the login limit, one-time unlock codes, revocable sessions.

The limit slows guessing without handing strangers a lock on the merchant's door: failures
count per address and across all addresses, and past either limit a one-time code printed by
`flask console unlock` (which needs the server's shell) still lets the merchant in.
Sessions live on the server: the cookie holds a random id, which logout deletes, which expires
after CONSOLE_SESSION_HOURS, and which a new password hash invalidates.
"""

import hashlib
import hmac
import secrets
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import current_app, request, session

from .db import (
    advisory_lock,
    execute,
    get_db,
    is_postgresql,
    now,
    query,
    query_one,
    scalar,
    transaction,
)

FAILURE_WINDOW = timedelta(minutes=15)
# Per address: a typo-prone merchant is not slowed; a guesser gets 5 tries per window.
MAX_FAILURES_PER_ADDRESS = 5
# Across every address: a botnet (or everyone behind one proxy) gets this many per window.
MAX_FAILURES_GLOBAL = 20
UNLOCK_CODE_LIFETIME = timedelta(hours=1)


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _since(delta):
    return (datetime.now(UTC) - delta).isoformat(timespec="seconds")


def _later(delta):
    return (datetime.now(UTC) + delta).isoformat(timespec="seconds")


@contextmanager
def one_attempt_at_a_time():
    """On PostgreSQL, login attempts on every host take turns from the count to the record.

    Counting failures and then recording one is two statements: attempts sent to several hosts
    at the same instant would each count below the limit. The global limit spans addresses,
    so the lock is one for all; logins are rare, so the wait is nothing. On SQLite the shop
    has one host, and holding its write lock over a password hash would hold up IPNs.
    """
    db = get_db()
    if not is_postgresql(db):
        yield
        return
    with transaction(db):
        advisory_lock(db, "console login")
        yield


def limited():
    """True when this address, or all addresses together, failed too often lately."""
    db, since = get_db(), _since(FAILURE_WINDOW)
    mine = scalar(
        db,
        "SELECT COUNT(*) FROM login_attempts WHERE remote_addr = :addr"
        " AND attempted_at >= :since AND outcome = 'failed'",
        {"addr": request.remote_addr, "since": since},
    )
    if mine >= MAX_FAILURES_PER_ADDRESS:
        return True
    everyone = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM login_attempts WHERE attempted_at >= :since"
        " AND outcome = 'failed' LIMIT :limit) AS recent",
        {"since": since, "limit": MAX_FAILURES_GLOBAL},
    )
    return everyone >= MAX_FAILURES_GLOBAL


def record(outcome):
    db = get_db()
    with transaction(db):
        execute(
            db,
            "INSERT INTO login_attempts (remote_addr, attempted_at, outcome)"
            " VALUES (:addr, :now, :outcome)",
            {"addr": request.remote_addr or "", "now": now(), "outcome": outcome},
        )


def recent_attempts(limit=100):
    return query(
        get_db(), "SELECT * FROM login_attempts ORDER BY id DESC LIMIT :limit", {"limit": limit}
    )


def new_unlock_code():
    """A one-time code that passes the login limit for an hour; only its hash is stored."""
    code = secrets.token_urlsafe(12)
    db = get_db()
    with transaction(db):
        execute(db, "DELETE FROM console_unlock_codes WHERE expires_at < :now", {"now": now()})
        execute(
            db,
            "INSERT INTO console_unlock_codes (code_hash, expires_at) VALUES (:hash, :expires)",
            {"hash": digest(code), "expires": _later(UNLOCK_CODE_LIFETIME)},
        )
    return code


def unlock_code_valid(code):
    if not code:
        return False
    row = query_one(
        get_db(),
        "SELECT code_hash FROM console_unlock_codes WHERE code_hash = :hash AND expires_at >= :now",
        {"hash": digest(code), "now": now()},
    )
    # The lookup is by hash, so timing reveals nothing about the code itself.
    return row is not None and hmac.compare_digest(row["code_hash"], digest(code))


def use_unlock_code(code):
    db = get_db()
    with transaction(db):
        execute(
            db, "DELETE FROM console_unlock_codes WHERE code_hash = :hash", {"hash": digest(code)}
        )


# -- sessions ---------------------------------------------------------------------------------


def password_version():
    """Changes whenever CONSOLE_PASSWORD_HASH does: a new password ends every session."""
    return digest(current_app.config["CONSOLE_PASSWORD_HASH"] or "")[:32]


def start_session():
    """A fresh console session; the cookie carries only its random id."""
    session_id = secrets.token_urlsafe(32)
    hours = timedelta(hours=current_app.config["CONSOLE_SESSION_HOURS"])
    db = get_db()
    with transaction(db):
        execute(db, "DELETE FROM console_sessions WHERE expires_at < :now", {"now": now()})
        execute(
            db,
            "INSERT INTO console_sessions (id_hash, password_version, created_at, expires_at)"
            " VALUES (:hash, :version, :now, :expires)",
            {
                "hash": digest(session_id),
                "version": password_version(),
                "now": now(),
                "expires": _later(hours),
            },
        )
    # Nothing from before the login carries over but the language chosen on the login page.
    lang = session.get("lang")
    session.clear()
    if lang is not None:
        session["lang"] = lang
    session["console"] = session_id


def session_valid():
    session_id = session.get("console")
    if not isinstance(session_id, str):
        return False
    row = query_one(
        get_db(),
        "SELECT password_version FROM console_sessions WHERE id_hash = :hash"
        " AND expires_at >= :now",
        {"hash": digest(session_id), "now": now()},
    )
    return row is not None and hmac.compare_digest(row["password_version"], password_version())


def end_session():
    session_id = session.get("console")
    if isinstance(session_id, str):
        db = get_db()
        with transaction(db):
            execute(
                db,
                "DELETE FROM console_sessions WHERE id_hash = :hash",
                {"hash": digest(session_id)},
            )
    # The merchant logged out, not the language: the login page stays in the one chosen.
    lang = session.get("lang")
    session.clear()
    if lang is not None:
        session["lang"] = lang
