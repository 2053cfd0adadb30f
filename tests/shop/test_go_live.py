"""Safe to go live: no sandbox in production unless named, banners, refusals, secret keys."""

import logging
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import generate_password_hash

from app import create_app
from shop.config import ConfigError
from tests.helpers import (
    BTC_ROUTE,
    PAYOUT_WALLET,
    USDT_PAYOUT_FIELD,
    create_shop,
    place_order,
    query,
)

ROOT = Path(__file__).parents[2]
SECRET = "a-real-secret-key-0123456789abcdef0123456789"
MY_WALLET = {USDT_PAYOUT_FIELD: "TMyOwnPayoutWalletAddress0000000001"}
BANNER = "Sandbox: no real money moves."
API = "/sandbox/service/api/v1/"


def production(tmp_path, **settings):
    """create_app as gunicorn runs it: no debug, no testing."""
    return create_shop(
        {
            "SECRET_KEY": SECRET,
            "DATABASE": str(tmp_path / "shop.sqlite"),
            "SANDBOX": {"BACKGROUND": False},
            **settings,
        }
    )


# -- the embedded sandbox only when named ------------------------------------------------------


def test_production_without_exchanger_url_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="EXCHANGER_URL is not set") as refused:
        production(tmp_path, PAYOUT_VALUES=MY_WALLET)
    assert "FLASK_EXCHANGER_URL" in str(refused.value) and '"sandbox"' in str(refused.value)


def test_production_refuses_to_start_from_the_environment_without_exchanger_url(tmp_path):
    """The way the issue found it: env settings, FLASK_EXCHANGER_URL forgotten."""
    env = {
        "PATH": "/usr/bin:/bin",
        "FLASK_SECRET_KEY": SECRET,
        "FLASK_DATABASE": str(tmp_path / "shop.sqlite"),
    }
    code = "from app import create_app; create_app()"
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert answer.returncode != 0 and "EXCHANGER_URL is not set" in answer.stderr


def test_the_sandbox_named_runs_in_production_with_its_banner_and_log(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        app = production(tmp_path, EXCHANGER_URL="sandbox", WTF_CSRF_ENABLED=False)
    assert "no real money moves" in caplog.text
    client = app.test_client()
    for path in ("/", "/cart", "/no-such-page"):
        assert BANNER in client.get(path).get_data(as_text=True), path
    russian = client.get("/", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Песочница: настоящие деньги не переводятся." in russian
    # The demo wallet fills the payout, so the whole journey works in one command.
    assert "/sandbox/en/payment/" in place_order(client)
    (order,) = query(app.config, "SELECT token FROM orders")
    assert BANNER in client.get(f"/orders/{order['token']}/return").get_data(as_text=True)


def test_the_console_shows_the_sandbox_banner(tmp_path):
    app = production(
        tmp_path, EXCHANGER_URL="sandbox", CONSOLE_PASSWORD_HASH=generate_password_hash("x" * 12)
    )
    assert BANNER in app.test_client().get("/console/login").get_data(as_text=True)


def test_a_real_exchanger_has_no_banner_and_no_sandbox(tmp_path):
    app = production(
        tmp_path,
        EXCHANGER_URL="https://exchanger.example",
        PUBLIC_URL="https://shop.example",
        PAYOUT_VALUES=MY_WALLET,
    )
    client = app.test_client()
    assert BANNER not in client.get("/").get_data(as_text=True)
    assert client.get("/sandbox/operator").status_code == 404
    assert client.post(API + "sandbox/order/set-status", json={}).status_code in (404, 405)


def test_flask_exchanger_check_says_it_is_the_sandbox(tmp_path):
    app = production(tmp_path, EXCHANGER_URL="sandbox")
    result = app.test_cli_runner().invoke(args=["exchanger", "check"])
    assert "is the embedded sandbox: no real money moves" in result.output


def test_the_demo_wallet_never_satisfies_the_production_guard(tmp_path):
    real = {"EXCHANGER_URL": "https://exchanger.example", "PUBLIC_URL": "https://shop.example"}
    with pytest.raises(ConfigError, match="PAYOUT_VALUES is missing"):
        production(tmp_path, **real)
    with pytest.raises(ConfigError, match="demo wallet"):
        production(tmp_path, **real, PAYOUT_VALUES={USDT_PAYOUT_FIELD: PAYOUT_WALLET})


def test_production_refuses_the_default_public_url_with_a_real_exchanger(tmp_path):
    with pytest.raises(ConfigError, match="PUBLIC_URL is the default") as refused:
        production(tmp_path, EXCHANGER_URL="https://exchanger.example", PAYOUT_VALUES=MY_WALLET)
    assert "FLASK_PUBLIC_URL" in str(refused.value)


# -- the embedded sandbox's own pages and API -------------------------------------------------


def test_sandbox_pages_carry_the_shops_security_headers(app, client):
    location = place_order(client)
    payment_path = location.removeprefix(app.config["PUBLIC_URL"])
    for path in ("/sandbox/operator", payment_path, "/sandbox/no-such-page"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("ipnUrl", "http://169.254.169.254/latest/meta-data"),
        ("ipnUrl", "http://127.0.0.1:1.evil.example/ipn"),
        ("clientCallbackUrl", "https://evil.example/"),
    ],
)
def test_the_embedded_sandbox_calls_back_only_to_the_shop(app, client, name, url):
    """A visitor's order/create must not make the shop's host post anywhere they like."""
    payload = {
        "routeId": BTC_ROUTE,
        "amount": 0.001,
        "fromValues": [{"key": "65f0c0ffee00000000000d01", "value": "bc1qxy2kgdygjrsqtzq2n0y"}],
        "toValues": [{"key": USDT_PAYOUT_FIELD, "value": PAYOUT_WALLET}],
        "agreement": True,
        "ipnUrl": app.config["PUBLIC_URL"] + "/ipn",
        "ipnSecret": "s" * 20,
        name: url,
    }
    answer = client.post(API + "public/exchanger/order/create", json=payload).get_json()
    assert answer["success"] is False and name in answer["error"]["message"]
    orders = client.get(API + "sandbox/orders").get_json()["data"]["orders"]
    assert orders == []


def test_the_embedded_sandbox_accepts_the_shops_own_ipn_url(client):
    location = place_order(client)
    assert "/sandbox/en/payment/" in location


# -- make run ---------------------------------------------------------------------------------


def make_config(path):
    return subprocess.run(
        [sys.executable, "scripts/make_instance_config.py", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout


def test_make_run_config_names_the_sandbox_and_starts_in_production(tmp_path):
    path = tmp_path / "instance" / "config.py"
    assert "password (shown once)" in make_config(path)
    settings = runpy.run_path(str(path))
    assert settings["EXCHANGER_URL"] == "sandbox"
    app = create_shop({**settings, "DATABASE": str(tmp_path / "shop.sqlite")})
    assert app.config["SANDBOX_MODE"] and not app.testing and not app.debug


def test_make_run_upgrades_an_older_config_that_named_no_exchanger(tmp_path):
    path = tmp_path / "config.py"
    path.write_text(f"SECRET_KEY = {SECRET!r}\n")
    assert 'added EXCHANGER_URL = "sandbox"' in make_config(path)
    assert runpy.run_path(str(path)) == {
        **runpy.run_path(str(path)),
        "SECRET_KEY": SECRET,
        "EXCHANGER_URL": "sandbox",
    }
    make_config(path)
    assert path.read_text().count("EXCHANGER_URL") == 1


def test_make_run_leaves_a_chosen_exchanger_alone(tmp_path):
    path = tmp_path / "config.py"
    text = f'SECRET_KEY = {SECRET!r}\nEXCHANGER_URL = "https://exchanger.example"\n'
    path.write_text(text)
    make_config(path)
    assert path.read_text() == text


# -- secret keys -----------------------------------------------------------------------------


def forged_console_cookie(app, key):
    """The session cookie a stranger signs with a key they know."""
    forger = Flask("forger")
    forger.secret_key = key
    return SecureCookieSessionInterface().get_signing_serializer(forger).dumps({"console": True})


def test_debug_under_a_wsgi_server_keeps_every_production_check(tmp_path):
    """FLASK_DEBUG=1 left set under gunicorn: no 'dev' key, no sandbox unless named, no demo wallet."""
    settings = {"DEBUG": True, "DATABASE": str(tmp_path / "shop.sqlite")}
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app({**settings, "EXCHANGER_URL": "sandbox"})
    with pytest.raises(ConfigError, match="EXCHANGER_URL is not set"):
        create_app({**settings, "SECRET_KEY": "k" * 32})


def test_the_sandbox_never_serves_a_public_address_in_production(tmp_path):
    """instance/config.py names the sandbox (make run), and the merchant adds a real PUBLIC_URL."""
    with pytest.raises(ConfigError, match="anyone can mark an order paid"):
        production(tmp_path, EXCHANGER_URL="sandbox", PUBLIC_URL="https://shop.example")


@pytest.mark.parametrize("key", [None, "", "dev"])
def test_production_still_refuses_a_missing_or_default_key(tmp_path, key):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        production(tmp_path, SECRET_KEY=key, EXCHANGER_URL="sandbox")


def test_each_process_without_a_key_gets_its_own(tmp_path):
    settings = {"TESTING": True, "DATABASE": str(tmp_path / "shop.sqlite")}
    assert create_shop(settings).secret_key != create_shop(settings).secret_key


def flask_command(name, host=None):
    """The click context the flask command line gives create_app (`flask run --host ...`)."""
    import click

    command = click.Command(name, params=[click.Option(["--host"])])
    context = click.Context(command, info_name=name)
    context.params["host"] = host
    return context


def test_flask_run_debug_on_loopback_keeps_the_dev_key_and_a_public_host_does_not(tmp_path):
    settings = {"DEBUG": True, "DATABASE": str(tmp_path / "shop.sqlite")}
    with flask_command("run", "127.0.0.1"):
        assert create_app(settings).secret_key == "dev"
    with flask_command("run", "0.0.0.0"), pytest.raises(ConfigError, match="SECRET_KEY"):  # noqa: S104
        create_app({**settings, "EXCHANGER_URL": "sandbox"})


def test_a_setup_command_under_debug_runs_before_the_payout_is_known(tmp_path):
    # `flask --debug exchanger routes` is how a merchant learns which PAYOUT_VALUES to set.
    with flask_command("routes"):
        app = create_app({"DEBUG": True, "DATABASE": str(tmp_path / "shop.sqlite")})
    assert app.secret_key != "dev"


def test_the_console_orders_page_counts_nothing_from_the_forged_cookie(tmp_path):
    # The same forged cookie with the right key is still refused: sessions live on the server.
    app = production(
        tmp_path, EXCHANGER_URL="sandbox", CONSOLE_PASSWORD_HASH=generate_password_hash("x" * 12)
    )
    client = app.test_client()
    client.set_cookie("session", forged_console_cookie(app, SECRET))
    assert client.get("/console/").status_code == 302
    assert query(app.config, "SELECT COUNT(*) AS n FROM console_sessions")[0]["n"] == 0
