"""The house rules that keep the code clear (design.md 3), checked on the source itself."""

import re
from pathlib import Path

SHOP = Path(__file__).parents[2] / "shop"


def sources():
    return {path.name: path.read_text() for path in SHOP.glob("*.py")}


def test_only_the_exchanger_module_and_webhooks_make_http_calls():
    # The exchanger's one door; and the merchant's webhooks, their own module (design.md 3),
    # which posts only from the outbox, never inline.
    importing = {
        name
        for name, text in sources().items()
        if re.search(r"^\s*(import|from) requests", text, re.M)
    }
    assert importing == {"exchanger.py", "webhooks.py"}


def test_only_orders_py_writes_the_order_row_and_its_history():
    writes = re.compile(r"(UPDATE orders|INSERT INTO (orders|status_history))\b")
    writing = {name for name, text in sources().items() if writes.search(text)}
    assert writing == {"orders.py"}


def test_only_db_py_opens_connections():
    opening = {
        name
        for name, text in sources().items()
        if re.search(r"sqlite3\.connect|create_engine|psycopg\.connect", text)
    }
    assert opening == {"db.py"}
