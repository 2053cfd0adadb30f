"""SQLite access: the only module that opens connections; schema versions applied in order."""

import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app, g
from flask.cli import with_appcontext

MIGRATIONS = Path(__file__).with_name("migrations")


def connect(path):
    """A connection in autocommit mode: transactions are opened explicitly, with the lock taken."""
    db = sqlite3.connect(path, timeout=15, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    # An IPN is never sent again: once answered, its effect must survive a power cut.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA busy_timeout = 15000")
    return db


def get_db():
    if "db" not in g:
        g.db = connect(current_app.config["DATABASE"])
    return g.db


def close_db(e=None):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def transaction(db):
    """BEGIN IMMEDIATE takes the write lock before reading, so read-then-write cannot race."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
