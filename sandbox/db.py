"""The sandbox's SQLite store: one connection per request or background thread."""

import sqlite3
from pathlib import Path

from flask import current_app, g


def connect(path):
    """A connection that waits for the write lock instead of failing at once."""
    db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout = 10000")
    return db


def get_db():
    if "sandbox_db" not in g:
        g.sandbox_db = connect(current_app.config["DATABASE"])
    return g.sandbox_db


def close_db(e=None):
    db = g.pop("sandbox_db", None)
    if db is not None:
        db.close()


def init_db(path):
    """Create the tables if they are missing; WAL lets the payer page read while IPNs write."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(Path(__file__).with_name("schema.sql").read_text())
    finally:
        db.close()


def init_app(app):
    app.teardown_appcontext(close_db)
    init_db(app.config["DATABASE"])
