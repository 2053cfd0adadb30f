"""The only module that opens connections: SQLite at run time; Alembic migrations, any engine."""

import fcntl
import os
import sqlite3
import threading
from collections import OrderedDict
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from flask import current_app, g
from flask.cli import with_appcontext

from shop.config import ConfigError

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


# The old numbered-SQL runner kept its version in PRAGMA user_version; its last schema (10) is
# exactly Alembic revision 0001, so such a database is stamped at 0001, never re-created.
LEGACY_USER_VERSION = 10
LEGACY_REVISION = "0001"


def database_url(config):
    """DATABASE_URL (postgresql://...) when set, else the SQLite file DATABASE."""
    url = config.get("DATABASE_URL")
    if not url:
        return sa.URL.create("sqlite", database=str(Path(config["DATABASE"]).resolve()))
    url = sa.make_url(url)
    # psycopg 3 is the PostgreSQL driver, whatever the URL names (postgres://, postgresql://).
    if url.get_backend_name() in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def alembic_config(connection):
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(config):
    """Bring the database to the newest Alembic revision; never drop data. Returns the steps."""
    url = database_url(config)
    if url.get_backend_name() == "sqlite":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # WAL is a property of the file, set once, outside any transaction.
        connect(url.database).execute("PRAGMA journal_mode = WAL").connection.close()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection, migration_lock(connection, url):
            before = MigrationContext.configure(connection).get_current_revision()
            if before is None and stamp_legacy(connection):
                before = LEGACY_REVISION
            alembic_command.upgrade(alembic_config(connection), "head")
            after = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return [] if before == after else [f"{before or 'empty'} -> {after}"]


def stamp_legacy(connection):
    """Stamp a SQLite database made by the old runner; refuse one it left half-way."""
    if connection.dialect.name != "sqlite":
        return False
    version = connection.exec_driver_sql("PRAGMA user_version").scalar()
    if version == 0:
        return False
    if version != LEGACY_USER_VERSION:
        raise click.ClickException(
            f"This database is at the old schema version {version}: run `flask init-db` of"
            " the release that made it first, then this one."
        )
    alembic_command.stamp(alembic_config(connection), LEGACY_REVISION)
    return True


@contextmanager
def migration_lock(connection, url):
    """One migrator at a time, and on SQLite no shop writer meanwhile."""
    if url.get_backend_name() == "sqlite":
        with open(f"{url.database}.lock", "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield
        return
    # Two hosts deploying at once: the second waits, then finds nothing left to do. The lock
    # is the transaction's own, released by its commit.
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    yield


# Any fixed number, the same on every host: names the advisory lock that migrations take.
MIGRATION_LOCK_KEY = 0x5E0B5E0B


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database or bring it to the newest schema; existing data is kept."""
    applied = upgrade(current_app.config)
    click.echo(f"Applied {', '.join(applied)}." if applied else "The database is up to date.")


@click.group("db")
def db_cli():
    """Schema migrations (Alembic): run once per deploy, never by starting the app."""


@db_cli.command("upgrade")
@with_appcontext
def db_upgrade_command():
    """Bring the database to the newest schema; the same as init-db."""
    init_db_command.callback()


@db_cli.command("current")
@with_appcontext
def db_current_command():
    """Print the database's schema revision."""
    engine = sa.create_engine(database_url(current_app.config), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    click.echo(revision or "empty")


def init_app(app):
    if app.config.get("DATABASE_URL"):
        # Migrations already run on PostgreSQL (flask init-db); the shop's queries do not yet,
        # and a shop that migrated one store and wrote to another would lose orders.
        raise ConfigError(
            "DATABASE_URL: the shop runs on SQLite only for now; unset it and use DATABASE"
        )
    app.teardown_appcontext(close_db)
    # Starting never migrates: `flask init-db` (or `flask db upgrade`) does, once per deploy.
    app.cli.add_command(init_db_command)
    app.cli.add_command(db_cli)
