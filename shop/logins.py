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
from datetime import UTC, datetime, timedelta

from flask import current_app, request, session

from .db import get_db, now, transaction

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


def limited():
    """True when this address, or all addresses together, failed too often lately."""
    db, since = get_db(), _since(FAILURE_WINDOW)
    mine = db.execute(
        "SELECT COUNT(*) FROM login_attempts WHERE remote_addr = ? AND attempted_at >= ?"
        " AND outcome = 'failed'",
        (request.remote_addr, since),
    ).fetchone()[0]
    if mine >= MAX_FAILURES_PER_ADDRESS:
        return True
    everyone = db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM login_attempts WHERE attempted_at >= ?"
        " AND outcome = 'failed' LIMIT ?)",
        (since, MAX_FAILURES_GLOBAL),
    ).fetchone()[0]
    return everyone >= MAX_FAILURES_GLOBAL


def record(outcome):
    db = get_db()
    with transaction(db):
        db.execute(
            "INSERT INTO login_attempts (remote_addr, attempted_at, outcome) VALUES (?, ?, ?)",
            (request.remote_addr or "", now(), outcome),
        )


def recent_attempts(limit=100):
    return (
        get_db()
        .execute("SELECT * FROM login_attempts ORDER BY id DESC LIMIT ?", (limit,))
        .fetchall()
    )


def new_unlock_code():
    """A one-time code that passes the login limit for an hour; only its hash is stored."""
    code = secrets.token_urlsafe(12)
    db = get_db()
    with transaction(db):
        db.execute("DELETE FROM console_unlock_codes WHERE expires_at < ?", (now(),))
        db.execute(
            "INSERT INTO console_unlock_codes (code_hash, expires_at) VALUES (?, ?)",
            (digest(code), _later(UNLOCK_CODE_LIFETIME)),
        )
    return code


def unlock_code_valid(code):
    if not code:
        return False
    row = (
        get_db()
        .execute(
            "SELECT code_hash FROM console_unlock_codes WHERE code_hash = ? AND expires_at >= ?",
            (digest(code), now()),
        )
        .fetchone()
    )
    # The lookup is by hash, so timing reveals nothing about the code itself.
    return row is not None and hmac.compare_digest(row["code_hash"], digest(code))


def use_unlock_code(code):
    db = get_db()
    with transaction(db):
        db.execute("DELETE FROM console_unlock_codes WHERE code_hash = ?", (digest(code),))


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
        db.execute("DELETE FROM console_sessions WHERE expires_at < ?", (now(),))
        db.execute(
            "INSERT INTO console_sessions (id_hash, password_version, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (digest(session_id), password_version(), now(), _later(hours)),
        )
    # Nothing from before the login carries over.
    session.clear()
    session["console"] = session_id


def session_valid():
    session_id = session.get("console")
    if not isinstance(session_id, str):
        return False
    row = (
        get_db()
        .execute(
            "SELECT password_version FROM console_sessions WHERE id_hash = ? AND expires_at >= ?",
            (digest(session_id), now()),
        )
        .fetchone()
    )
    return row is not None and hmac.compare_digest(row["password_version"], password_version())


def end_session():
    session_id = session.get("console")
    if isinstance(session_id, str):
        db = get_db()
        with transaction(db):
            db.execute("DELETE FROM console_sessions WHERE id_hash = ?", (digest(session_id),))
    session.clear()
