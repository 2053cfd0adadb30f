"""SQLite access: the only module that opens connections; schema versions applied in order."""

import fcntl
import os
import sqlite3
import threading
from collections import OrderedDict
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app, g
from flask.cli import with_appcontext

MIGRATIONS = Path(__file__).with_name("migrations")


class Connection(sqlite3.Connection):
    """A connection with its own handle on DATABASE + ".lock" (flock locks belong to the handle)."""

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        self.lock_file = open(f"{path}.lock", "a+b")  # noqa: SIM115 - closed with the connection

    def close(self):
        super().close()
        self.lock_file.close()


def connect(path):
    """A connection in autocommit mode: transactions are opened explicitly, with the lock taken."""
    db = sqlite3.connect(
        path, timeout=15, isolation_level=None, check_same_thread=False, factory=Connection
    )
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    # An IPN is never sent again: once answered, its effect must survive a power cut.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA busy_timeout = 15000")
    return db


class ThreadConnections(threading.local):
    """Each thread keeps its connections open across requests.

    Opening a connection costs a file open and three pragmas, and closing the last one to a
    WAL database checkpoints it: together most of the time of a small request such as an IPN
    (bench/README.md). A thread serves one request at a time, so a connection is never shared.
    """

    def __init__(self):
        self.by_path = OrderedDict()

    def get(self, path):
        key = (os.getpid(), path)
        db = self.by_path.pop(key, None) or connect(path)
        self.by_path[key] = db
        # A thread that has served several databases (tests, several apps) keeps only a few.
        while len(self.by_path) > MAX_CONNECTIONS_PER_THREAD:
            _, oldest = self.by_path.popitem(last=False)
            oldest.close()
        return db


MAX_CONNECTIONS_PER_THREAD = 4
_connections = ThreadConnections()


def get_db():
    if "db" not in g:
        g.db = _connections.get(current_app.config["DATABASE"])
    return g.db


def close_db(e=None):
    """End of request: the connection stays open for the thread's next one, with no transaction."""
    db = g.pop("db", None)
    if db is not None and db.in_transaction:
        db.execute("ROLLBACK")


@contextmanager
def transaction(db, durable=True):
    """BEGIN IMMEDIATE takes the write lock before reading, so read-then-write cannot race.

    Inside another transaction it simply joins it, so callers can make several changes atomic
    (an IPN's status change and its log line). durable=False skips the fsync of this commit:
    in WAL mode the next durable commit flushes it too, so use it only for writes that are
    followed by a durable one before anyone is answered (the IPN log's first line).
    """
    if db.in_transaction:
        yield db
        return
    # SQLite takes a change of synchronous only outside a transaction.
    if not durable:
        db.execute("PRAGMA synchronous = NORMAL")
    try:
        with writer_lock(db):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
    finally:
        if not durable:
            db.execute("PRAGMA synchronous = FULL")


@contextmanager
def writer_lock(db):
    """Writers queue on a file lock next to the database, across threads and processes.

    Without it, a writer that finds the database locked sleeps in SQLite's busy handler (1, 2,
    5, 10 ms and more) however soon the lock is free; the kernel wakes a flock waiter at once.
    This took IPN p99 latency from 40 ms to under 10 (bench/README.md).
    """
    fcntl.flock(db.lock_file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(db.lock_file, fcntl.LOCK_UN)


def now():
    return datetime.now(UTC).isoformat(timespec="seconds")


def migrate(path):
    """Apply every numbered migration newer than the database's user_version; never drop data."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    applied = []
    try:
        db.execute("PRAGMA journal_mode = WAL")
        with transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for script in sorted(MIGRATIONS.glob("*.sql")):
                number = int(script.name.split("_", 1)[0])
                if number > version:
                    # executescript would COMMIT our transaction; run the statements one by one.
                    for statement in split_statements(script.read_text()):
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {number:d}")
                    applied.append(script.name)
    finally:
        db.close()
    return applied


def split_statements(sql):
    statement, statements = "", []
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            statements.append(statement.strip())
            statement = ""
    return statements


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database or bring it to the newest schema; existing data is kept."""
    applied = migrate(current_app.config["DATABASE"])
    click.echo(f"Applied {', '.join(applied)}." if applied else "The database is up to date.")


def init_app(app):
    app.teardown_appcontext(close_db)
    app.cli.add_command(init_db_command)
    migrate(app.config["DATABASE"])
