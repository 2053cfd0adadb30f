"""Schema migrations: Alembic on both engines; the old runner's databases stamped, not re-made."""

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from shop import db

LEGACY = Path(__file__).with_name("legacy_migrations")


def head():
    """The newest revision: what init-db brings every database to."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(db.alembic_config(None)).get_current_head()


def upgrade_to(url, revision):
    """The database at one revision, as a release that stopped there left it."""
    from alembic import command

    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(db.alembic_config(connection), revision)
    finally:
        engine.dispose()


def legacy_database(path, up_to=db.LEGACY_USER_VERSION):
    """A database as the old numbered-SQL runner left it at PRAGMA user_version = up_to."""
    connection = sqlite3.connect(path)
    for script in sorted(LEGACY.glob("*.sql")):
        number = int(script.name.split("_", 1)[0])
        if number <= up_to:
            connection.executescript(script.read_text())
            connection.execute(f"PRAGMA user_version = {number:d}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.commit()
    return connection


def schema(url):
    """Every table's columns, keys and indexes, as the database itself reports them."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found = {}
        for table in inspector.get_table_names():
            key = inspector.get_pk_constraint(table)["constrained_columns"]
            found[table] = {
                # SQLite reports `id INTEGER PRIMARY KEY` as nullable, though it is the rowid
                # and can never be NULL: a key column counts as NOT NULL whatever it says.
                "columns": [
                    (
                        c["name"],
                        str(c["type"]),
                        c["nullable"] and c["name"] not in key,
                        str(c["default"]),
                    )
                    for c in inspector.get_columns(table)
                ],
                "primary key": key,
                "unique": sorted(
                    tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
                ),
                "foreign keys": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"])
                    for f in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (
                        i["name"],
                        tuple(i["column_names"]),
                        " ".join(str(i.get("dialect_options", {}).get("sqlite_where", "")).split()),
                    )
                    for i in inspector.get_indexes(table)
                ),
            }
        return found
    finally:
        engine.dispose()


def init_db(tmp_path, database, *args):
    app = create_shop_unmigrated(database)
    return app.test_cli_runner().invoke(args=[*args] or ["init-db"])


def create_shop_unmigrated(database):
    from app import create_app

    return create_app({"TESTING": True, "DATABASE": database, "SANDBOX": {"BACKGROUND": False}})


def test_an_old_runners_database_is_stamped_and_keeps_its_data(tmp_path):
    path = str(tmp_path / "shop.sqlite")
    old = legacy_database(path)
    old.execute(
        "INSERT INTO login_attempts (remote_addr, attempted_at, outcome)"
        " VALUES ('192.0.2.1', '2026-01-01T00:00:00+00:00', 'failed')"
    )
    old.commit()
    old.close()

    result = init_db(tmp_path, path)

    assert result.exit_code == 0, result.output
    # Stamped at the old runner's last version, then only the newer revisions run.
    assert "empty" not in result.output and "0001" not in result.output
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head(),)
        ]
        assert connection.execute("SELECT remote_addr FROM login_attempts").fetchall() == [
            ("192.0.2.1",)
        ]


def test_the_alembic_history_makes_exactly_the_old_runners_last_schema(tmp_path):
    legacy_database(str(tmp_path / "old.sqlite")).close()
    upgrade_to(f"sqlite:///{tmp_path / 'new.sqlite'}", db.LEGACY_REVISIONS[db.LEGACY_USER_VERSION])
    old = schema(f"sqlite:///{tmp_path / 'old.sqlite'}")
    new = schema(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert new.pop("alembic_version")
    assert new == old


def test_a_half_migrated_old_database_is_refused_untouched(tmp_path):
    path = str(tmp_path / "shop.sqlite")
    legacy_database(path, up_to=5).close()
    before = schema(f"sqlite:///{path}")

    result = init_db(tmp_path, path)

    assert result.exit_code != 0
    assert "old schema version 5" in result.output
    assert schema(f"sqlite:///{path}") == before


def test_starting_never_migrates_and_init_db_is_idempotent(tmp_path):
    path = str(tmp_path / "shop.sqlite")
    create_shop_unmigrated(path)
    assert not Path(path).exists() or schema(f"sqlite:///{path}") == {}

    first = init_db(tmp_path, path)
    again = init_db(tmp_path, path, "db", "upgrade")
    current = init_db(tmp_path, path, "db", "current")

    assert f"Applied empty -> {head()}." in first.output
    assert "The database is up to date." in again.output
    assert current.output.strip() == head()
    assert {"orders", "ipn_log", "status_history"} <= set(schema(f"sqlite:///{path}"))


def test_the_same_revision_makes_the_schema_on_postgresql(postgres):
    url = postgres.database()
    assert db.upgrade({"DATABASE_URL": url}) == [f"empty -> {head()}"]
    assert db.upgrade({"DATABASE_URL": url}) == []

    tables = schema(db.database_url({"DATABASE_URL": url}))
    assert set(tables) - {"alembic_version"} == {
        "orders",
        "order_items",
        "status_history",
        "ipn_log",
        "ipn_log_suppressed",
        "route_cache",
        "login_attempts",
        "console_unlock_codes",
        "console_sessions",
        "checkout_attempts",
        "mail_outbox",
        "order_counts",
        "api_keys",
        "payments",
        "rate_windows",
        "webhook_endpoints",
        "webhook_outbox",
        "webhook_deliveries",
    }
    columns = {c[0]: c[1] for c in tables["orders"]["columns"]}
    # Money is NUMERIC, never a float; millisecond timestamps need 64 bits.
    assert columns["price"] == "NUMERIC" and columns["last_event_ms"] == "BIGINT"
    # Seconds since 1970 need 8-byte floats: PostgreSQL's REAL has 4.
    cache = {c[0]: c[1] for c in tables["route_cache"]["columns"]}
    assert cache["refreshing_until"] == "DOUBLE PRECISION"
    assert ("orders_in_limbo", ("from_xml", "to_xml", "created_at"), "") in tables["orders"][
        "indexes"
    ]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_every_spelling_of_a_postgresql_url_uses_psycopg_3(scheme):
    url = db.database_url({"DATABASE_URL": f"{scheme}://shop:pw@db.example/shop"})
    assert url.drivername == "postgresql+psycopg" and url.host == "db.example"


def test_an_old_runners_earlier_version_is_stamped_then_upgraded(tmp_path):
    path = str(tmp_path / "shop.sqlite")
    legacy_database(path, up_to=10).close()

    result = init_db(tmp_path, path)

    assert result.exit_code == 0, result.output
    assert f"Applied 0001 -> {head()}." in result.output
    assert "mail_outbox" in schema(f"sqlite:///{path}")
