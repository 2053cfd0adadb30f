"""Console access: no lockout by strangers, proxies, revocable sessions, the login log."""

import csv
import io
from datetime import datetime

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import BOTH_ENGINES
from tests.helpers import hidden_inputs, query
from tests.shop.test_console import PASSWORD, log_in, post_button, token_from

pytestmark = BOTH_ENGINES

STRANGER = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def console_app(app):
    app.config.update(WTF_CSRF_ENABLED=True, CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD))
    return app


def attempt(client, password, environ=None, headers=None, code=""):
    """One login POST as a browser sends it, from the given address or proxy headers."""
    csrf = hidden_inputs(
        client.get("/", environ_base=environ, headers=headers).get_data(as_text=True)
    )["csrf_token"]
    return client.post(
        "/console/login",
        data={"csrf_token": csrf, "password": password, "unlock_code": code},
        environ_base=environ,
        headers=headers,
    )


def unlock_code(app):
    output = app.test_cli_runner().invoke(args=["console", "unlock"]).output
    return output.rsplit(":", 1)[1].strip()


def test_a_stranger_cannot_lock_the_merchant_out(console_app):
    """Behind one proxy everyone shares an address: guesses there, and from many addresses."""
    stranger = console_app.test_client()
    for n in range(30):
        attempt(stranger, "guess", environ={"REMOTE_ADDR": f"10.0.0.{n % 6}"})
        attempt(stranger, "guess", environ=STRANGER)
    merchant = console_app.test_client()
    blocked = attempt(merchant, PASSWORD, environ=STRANGER)
    assert blocked.status_code == 429 and "console unlock" in blocked.get_data(as_text=True)
    code = unlock_code(console_app)
    # A typo does not spend the code.
    typo = attempt(merchant, "wrong", environ=STRANGER, code=code)
    assert "Wrong password." in typo.get_data(as_text=True)
    answer = attempt(merchant, PASSWORD, environ=STRANGER, code=code)
    assert answer.status_code == 302 and answer.location == "/console/dashboard"
    assert merchant.get("/console/").status_code == 200
    # One time only: the stranger who saw it over the merchant's shoulder is still slowed.
    assert attempt(stranger, PASSWORD, environ=STRANGER, code=code).status_code == 429


def test_guessing_is_still_slowed(console_app):
    client = console_app.test_client()
    answers = [attempt(client, f"guess{n}", environ=STRANGER).status_code for n in range(8)]
    assert answers[:4] == [200] * 4 and answers[5:] == [429] * 3
    assert attempt(client, "guess", environ=STRANGER, code="made-up").status_code == 429


def test_behind_a_trusted_proxy_each_visitor_has_their_own_address(console_app):
    console_app.config["TRUSTED_PROXIES"] = 1
    from app import trust_proxies

    trust_proxies(console_app)
    stranger = {"X-Forwarded-For": "203.0.113.9"}
    client = console_app.test_client()
    for _ in range(6):
        attempt(client, "guess", environ=STRANGER, headers=stranger)
    assert attempt(client, PASSWORD, environ=STRANGER, headers=stranger).status_code == 429
    merchant = {"X-Forwarded-For": "198.51.100.7"}
    answer = attempt(console_app.test_client(), PASSWORD, environ=STRANGER, headers=merchant)
    assert answer.status_code == 302
    addresses = {
        r["remote_addr"] for r in query(console_app.config, "SELECT * FROM login_attempts")
    }
    assert addresses == {"203.0.113.9", "198.51.100.7"}


def test_forwarded_headers_are_not_trusted_by_default(console_app):
    client = console_app.test_client()
    for n in range(6):
        attempt(client, "guess", environ=STRANGER, headers={"X-Forwarded-For": f"192.0.2.{n}"})
    assert attempt(client, PASSWORD, environ=STRANGER).status_code == 429
    rows = query(console_app.config, "SELECT DISTINCT remote_addr FROM login_attempts")
    assert [r["remote_addr"] for r in rows] == ["127.0.0.1"]


def test_login_attempts_show_in_the_console(console_app):
    client = console_app.test_client()
    attempt(client, "guess", environ={"REMOTE_ADDR": "192.0.2.44"})
    log_in(client)
    page = client.get("/console/logins").get_data(as_text=True)
    assert "192.0.2.44" in page and 'data-outcome="failed"' in page
    assert 'data-outcome="ok"' in page and "Logins" in client.get("/console/").get_data(
        as_text=True
    )


# -- sessions --------------------------------------------------------------------------------


def copied_session(app, client):
    """A second browser holding a copy of client's session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def test_a_copied_cookie_stops_working_after_logout(console_app):
    merchant = console_app.test_client()
    log_in(merchant)
    thief = copied_session(console_app, merchant)
    assert thief.get("/console/").status_code == 200
    post_button(merchant, "/console/logout")
    assert thief.get("/console/").status_code == 302
    assert merchant.get("/console/").status_code == 302


def test_a_new_password_ends_every_session(console_app):
    merchant = console_app.test_client()
    log_in(merchant)
    console_app.config["CONSOLE_PASSWORD_HASH"] = generate_password_hash("a new password!")
    answer = merchant.get("/console/")
    assert answer.status_code == 302 and answer.location.startswith("/console/login")


def test_a_session_lasts_hours_not_weeks(console_app):
    log_in(console_app.test_client())
    (row,) = query(console_app.config, "SELECT * FROM console_sessions")
    lasts = datetime.fromisoformat(row["expires_at"]) - datetime.fromisoformat(row["created_at"])
    assert lasts.total_seconds() == 8 * 3600
    console_app.config["CONSOLE_SESSION_HOURS"] = -1
    client = console_app.test_client()
    log_in(client)
    assert client.get("/console/").status_code == 302


def test_logging_in_needs_the_csrf_token_of_the_session(console_app):
    client = console_app.test_client()
    token_from(client)
    assert client.post("/console/login", data={"password": PASSWORD}).status_code == 400


# -- CSV -------------------------------------------------------------------------------------

TRIGGERS = ("=", "+", "-", "@")


@pytest.mark.parametrize("separator", [",", ";"])
def test_no_csv_cell_starts_a_formula_whatever_the_separator(console_app, separator):
    """`a;=2+3;@e.co` passes the e-mail regexp; Excel in a ";" locale splits it into cells."""
    from tests.shop.test_console import buy

    buy(console_app)
    query(console_app.config, "UPDATE orders SET buyer_email = 'a;=2+3;@e.co'")
    merchant = console_app.test_client()
    log_in(merchant)
    text = merchant.get("/console/orders.csv").get_data(as_text=True)
    # How a spreadsheet splitting naively at the separator would see the cells.
    for line in text.splitlines():
        for cell in line.split(separator):
            assert not cell.strip().strip('"').strip().startswith(TRIGGERS), cell
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["buyer_email"] == "a;'=2+3;'@e.co"


def test_a_trusted_proxy_gives_the_scheme_but_never_a_client_written_host(console_app):
    from flask import request

    from app import trust_proxies

    console_app.config["TRUSTED_PROXIES"] = 1
    trust_proxies(console_app)
    console_app.add_url_rule("/where", "where", lambda: f"{request.scheme} {request.host}")
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    assert console_app.test_client().get("/where", headers=headers).text == "https localhost"
