"""The only module that opens connections: SQLite or PostgreSQL, through SQLAlchemy Core and Alembic."""

import fcntl
import functools
import sqlite3
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click
import sqlalchemy as sa
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


def connect(path, rows=True):
    """A connection in autocommit mode: transactions are opened explicitly, with the lock taken."""
    db = sqlite3.connect(
        path, timeout=15, isolation_level=None, check_same_thread=False, factory=Connection
    )
    if rows:
        db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    # An IPN is never sent again: once answered, its effect must survive a power cut.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA busy_timeout = 15000")
    db.create_aggregate("decimal_sum", 1, DecimalSum)
    return db


class DecimalSum:
    """SQLite's decimal_sum(money): the exact sum of decimal text, as text (SUM adds floats)."""

    def __init__(self):
        self.total = None

    def step(self, value):
        if value is not None:
            self.total = Decimal(value) + (self.total or 0)

    def finalize(self):
        return None if self.total is None else str(self.total)


def make_engine(config):
    """The app's engine: a pool of open SQLite connections, or of PostgreSQL ones.

    Both run in autocommit; `transaction` opens every transaction itself (BEGIN IMMEDIATE with
    the writer lock on SQLite), so a read never holds a transaction open between requests.
    """
    url = database_url(config)
    if url.get_backend_name() == "sqlite":
        # Connections stay open in the pool across requests, one lent to a request at a time.
        # Opening one costs a file open and three pragmas, and closing the last one to a WAL
        # database checkpoints it: together most of the time of a small request such as an
        # IPN (bench/README.md). Not one per thread: a threaded dev server starts a thread
        # per request.
        return sa.create_engine(
            url,
            creator=lambda: connect(url.database, rows=False),
            poolclass=sa.pool.QueuePool,
            pool_size=KEPT_CONNECTIONS,
            max_overflow=64,
            isolation_level="AUTOCOMMIT",
        )
    # Every worker thread may hold one connection; pre-ping drops those a restart closed.
    engine = sa.create_engine(
        url, pool_size=8, max_overflow=24, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
    )
    sa.event.listen(engine, "connect", money_as_text)
    return engine


def money_as_text(dbapi_connection, connection_record):
    """NUMERIC comes back as its decimal text, as SQLite's TEXT money does: the shop reads
    both engines' rows the same way and makes a Decimal where it computes (never a float)."""
    from psycopg.types.string import TextLoader

    dbapi_connection.adapters.register_loader("numeric", TextLoader)


# SQLite connections a process keeps open: gunicorn's --threads 8 and a few more.
KEPT_CONNECTIONS = 16


def get_db():
    """The request's connection (SQLAlchemy Core), returned to the pool at teardown."""
    if "db" not in g:
        g.db = engine().connect()
    return g.db


def engine():
    """The current app's engine for its configured database (made on first use)."""
    config = current_app.config
    key = (config.get("DATABASE_URL"), config["DATABASE"])
    engines = current_app.extensions["db_engines"]
    if key not in engines:
        engines[key] = make_engine(config)
    return engines[key]


def close_db(e=None):
    """End of request: the connection goes back to its pool, with no transaction open."""
    db = g.pop("db", None)
    if db is not None:
        if db.info.get("in_transaction"):
            db.exec_driver_sql("ROLLBACK")
            db.info["in_transaction"] = False
        db.close()


@functools.lru_cache(maxsize=1024)
def _text(sql):
    # Parsing the :name parameters out of a statement is done once per statement, not per call.
    return sa.text(sql)


def execute(db, sql, params=None):
    """Run one statement, SQL with :name parameters (a list of dicts runs it for each)."""
    params = params if params is not None else {}
    if is_postgresql(db):
        params = [no_nul(p) for p in params] if isinstance(params, list) else no_nul(params)
    return db.execute(_text(sql), params)


def no_nul(params):
    """PostgreSQL's text cannot hold NUL, which any IPN body or form may carry: it becomes
    U+FFFD, as undecodable bytes already do, instead of an error (and a 500)."""
    return {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in params.items()}


def query(db, sql, params=None):
    """Every row, each a mapping: row["column"]."""
    return execute(db, sql, params).mappings().all()


def query_one(db, sql, params=None):
    """The first row, or None."""
    return execute(db, sql, params).mappings().first()


def scalar(db, sql, params=None):
    """The first column of the first row (a count, an id)."""
    return execute(db, sql, params).scalar()


def is_postgresql(db):
    return db.dialect.name == "postgresql"


def money_sum(db):
    """The SQL aggregate that adds money exactly: NUMERIC's SUM, or SQLite's decimal_sum."""
    return "SUM" if is_postgresql(db) else "decimal_sum"


def advisory_lock(db, name):
    """On PostgreSQL, a lock on a name (not a row) until the transaction ends, on every host.

    For rules that count rows rather than change one (checkout throttle, login limit): there
    is no row to lock with FOR UPDATE, so two hosts would both count below the limit. On
    SQLite the transaction's write lock already excludes everyone else.
    """
    if is_postgresql(db):
        execute(db, "SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))", {"name": name})


@contextmanager
def transaction(db, durable=True):
    """One transaction; on SQLite BEGIN IMMEDIATE takes the write lock before reading.

    Inside another transaction it simply joins it, so callers can make several changes atomic
    (an IPN's status change and its log line). durable=False skips the flush of this commit:
    on SQLite (WAL) the next durable commit flushes it too, on PostgreSQL the next one's WAL
    flush does; use it only for writes that are followed by a durable one before anyone is
    answered (the IPN log's first line).
    """
    if db.info.get("in_transaction"):
        yield db
        return
    sqlite = not is_postgresql(db)
    # Transaction control goes straight to the driver connection: SQLAlchemy runs in
    # autocommit here and has nothing to add to BEGIN and COMMIT but its per-statement cost,
    # a fifth of an IPN's (bench/README.md).
    raw = db.connection.dbapi_connection
    # SQLite takes a change of synchronous only outside a transaction.
    if sqlite and not durable:
        raw.execute("PRAGMA synchronous = NORMAL")
    try:
        with writer_lock(db) if sqlite else nullcontext():
            raw.execute("BEGIN IMMEDIATE" if sqlite else "BEGIN")
            db.info["in_transaction"] = True
            try:
                if not sqlite and not durable:
                    raw.execute("SET LOCAL synchronous_commit = off")
                yield db
            except BaseException:
                db.info["in_transaction"] = False
                raw.execute("ROLLBACK")
                raise
            db.info["in_transaction"] = False
            raw.execute("COMMIT")
    finally:
        if sqlite and not durable:
            raw.execute("PRAGMA synchronous = FULL")


@contextmanager
def writer_lock(db):
    """SQLite's writers queue on a file lock next to the database, across threads and processes.

    Without it, a writer that finds the database locked sleeps in SQLite's busy handler (1, 2,
    5, 10 ms and more) however soon the lock is free; the kernel wakes a flock waiter at once.
    This took IPN p99 latency from 40 ms to under 10 (bench/README.md). PostgreSQL needs none:
    its row locks queue writers, on any host.
    """
    lock_file = db.connection.dbapi_connection.lock_file
    fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock_file, fcntl.LOCK_UN)


def now():
    return datetime.now(UTC).isoformat(timespec="seconds")


# The old numbered-SQL runner kept its version in PRAGMA user_version; the schemas it left
# are exactly these Alembic revisions, so such a database is stamped, never re-created.
LEGACY_REVISIONS = {10: "0001", 12: "0002"}
LEGACY_USER_VERSION = max(LEGACY_REVISIONS)


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
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(config):
    """Bring the database to the newest Alembic revision; never drop data. Returns the steps."""
    # Imported here, not at the top: a web worker never migrates, and Alembic costs memory.
    from alembic import command as alembic_command
    from alembic.runtime.migration import MigrationContext

    url = database_url(config)
    if url.get_backend_name() == "sqlite":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # WAL is a property of the file, set once, outside any transaction.
        connect(url.database).execute("PRAGMA journal_mode = WAL").connection.close()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection, migration_lock(connection, url):
            before = MigrationContext.configure(connection).get_current_revision()
            if before is None:
                before = stamp_legacy(connection)
            alembic_command.upgrade(alembic_config(connection), "head")
            after = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return [] if before == after else [f"{before or 'empty'} -> {after}"]


def stamp_legacy(connection):
    """Stamp a SQLite database made by the old runner (its revision, or None when it is not
    one); refuse one it left between two of its versions."""
    if connection.dialect.name != "sqlite":
        return None
    version = connection.exec_driver_sql("PRAGMA user_version").scalar()
    if version == 0:
        return None
    from alembic import command as alembic_command

    if version not in LEGACY_REVISIONS:
        raise click.ClickException(
            f"This database is at the old schema version {version}: run `flask init-db` of"
            " the release that made it first, then this one."
        )
    alembic_command.stamp(alembic_config(connection), LEGACY_REVISIONS[version])
    return LEGACY_REVISIONS[version]


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
    from alembic.runtime.migration import MigrationContext

    engine = sa.create_engine(database_url(current_app.config), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    click.echo(revision or "empty")


def init_app(app):
    # Engines are made on first use, one per configured database (tests point an app at
    # another file); making one opens no connection.
    app.extensions["db_engines"] = {}
    app.teardown_appcontext(close_db)
    # Starting never migrates: `flask init-db` (or `flask db upgrade`) does, once per deploy.
