"""Settings: defaults here, then instance/config.py, then FLASK_* environment variables."""

import os
import re
import secrets
from urllib.parse import urlsplit

import click

DEFAULT_SECRET_KEY = "dev"  # noqa: S105 - the well-known dev key that check() refuses

DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"
SANDBOX = "sandbox"

DEFAULTS = {
    "SECRET_KEY": DEFAULT_SECRET_KEY,
    # Where buyers reach the shop; decides the clientCallbackUrl and ipnUrl sent to the exchanger.
    "PUBLIC_URL": DEFAULT_PUBLIC_URL,
    # The exchanger's site, or "sandbox" for the embedded one at PUBLIC_URL/sandbox (no real
    # money). Unset means the sandbox only under debug or testing; production refuses to start.
    "EXCHANGER_URL": None,
    "EXCHANGER_API_KEY": None,
    "EXCHANGER_API_SECRET": None,
    # (connect, read) seconds for every exchanger call.
    "EXCHANGER_TIMEOUT": (3.05, 10),
    # Total seconds one web request may wait on the exchanger, all calls and retries together:
    # well under the worker timeout (gunicorn's --timeout 30), so a slow exchanger never gets
    # a worker killed, and buyers hear "try again" instead of waiting on a dead page.
    "EXCHANGER_BUDGET_SECONDS": 12,
    # postgresql://user:password@host/name for a shop on several hosts; unset, the SQLite file
    # DATABASE (instance/shop.sqlite) is the store. Schema changes: `flask init-db`.
    "DATABASE_URL": None,
    # Buyer mail: smtp://user:pass@host:587 (STARTTLS) or smtps://... ; None keeps mail queued
    # (in sandbox mode it shows in the sandbox mailbox page instead).
    "MAIL_URL": None,
    "MAIL_FROM": "Exchange Shop <shop@localhost>",
    # Seconds one SMTP connection may take; a down server delays mail, never a page.
    "MAIL_TIMEOUT": 10,
    # Attempts before a mail is given up (shown in the console), backing off between them.
    "MAIL_MAX_ATTEMPTS": 8,
    # Webhooks out (console, Webhooks): (connect, read) seconds per delivery attempt; how long a
    # failing event is retried, backing off up to an hour between attempts, before it is given
    # up; and whether a worker sends new events in a background thread right after the response
    # (off, only `flask webhooks send` from cron delivers).
    "WEBHOOK_TIMEOUT": (3.05, 10),
    "WEBHOOK_RETRY_HOURS": 24,
    "WEBHOOK_SEND_AFTER_RESPONSE": True,
    "SETTLEMENT_XML": "USDTTRC20",
    # The merchant's payout requisites: to-field id (or field name) -> value.
    "PAYOUT_VALUES": {},
    # Largest IPN body accepted; real ones are well under 2 KB.
    "IPN_MAX_BYTES": 16 * 1024,
    # The IPN log's bound: a rejected body keeps this many bytes (verified ones stay whole);
    # each address gets this many rejected entries a minute, and all together this many; past that,
    # rejected IPNs are only counted, so a flood grows the database by a small fraction.
    "IPN_LOG_PREFIX_BYTES": 512,
    "IPN_LOG_PER_ADDRESS_PER_MINUTE": 30,
    "IPN_LOG_PER_MINUTE": 300,
    # How often the order status endpoint may ask the exchanger about one order.
    "STATUS_POLL_SECONDS": 10,
    # flask reconcile: orders asked about at once, and how long a draft whose order/create
    # never answered may wait for an IPN to identify it before it is marked failed.
    "RECONCILE_CONCURRENCY": 8,
    "DRAFT_TIMEOUT_MINUTES": 60,
    # A done order is asked about again this many hours after it finished, so that a refund
    # whose single IPN was lost is still found: 1 hour, 1 day, 7 days. [] turns the checks off.
    "SETTLEMENT_CHECK_HOURS": [1, 24, 168],
    # An open order the exchanger has not finished in this many days goes to review once ("the
    # exchanger has not finished this order in N days"), and is then asked about weekly. Asked
    # every run in its first hour, then ever more rarely (shop/orders.py, POLL_STEPS).
    "OPEN_ORDER_REVIEW_DAYS": 7,
    # Orders one buyer session, and one address, may start per CHECKOUT_LIMIT_MINUTES.
    "CHECKOUT_LIMIT_PER_SESSION": 10,
    "CHECKOUT_LIMIT_PER_ADDRESS": 30,
    "CHECKOUT_LIMIT_MINUTES": 10,
    # How long route lists and definitions are served from the shared cache before a refresh.
    "ROUTE_CACHE_SECONDS": 60,
    # Requests one API key may make per API_RATE_WINDOW_SECONDS (a fixed window, counted in
    # the database so every worker and host shares it); past it, 429 with Retry-After.
    "API_RATE_LIMIT": 120,
    "API_RATE_WINDOW_SECONDS": 60,
    # Add a Server-Timing header (time waited on the exchanger) to every answer: benchmarks.
    "SERVER_TIMING": False,
    # Werkzeug hash of the merchant console's password (flask console password); None = closed.
    "CONSOLE_PASSWORD_HASH": None,
    # A console login lasts this long at most (logout and a new password end it sooner).
    "CONSOLE_SESSION_HOURS": 8,
    # Reverse proxies in front of the shop that set X-Forwarded-For and -Proto (ProxyFix).
    # 0 trusts no such header: anyone can send them, so only the proxies' own count is safe.
    "TRUSTED_PROXIES": 0,
    # Settings for the embedded sandbox (see sandbox.DEFAULTS).
    "SANDBOX": {},
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
}

# The embedded sandbox's demo payout wallet and card, so the demo runs with no configuration.
SANDBOX_PAYOUT_VALUES = {
    "65f0c0ffee00000000000d10": "TMerchantPayoutWa11etSandboxDemoXq",
    "65f0c0ffee00000000000d11": "2200000000000004",
    "65f0c0ffee00000000000d12": "DEMO MERCHANT",
}
SECRET_SETTINGS = ("SECRET_KEY", "EXCHANGER_API_KEY", "EXCHANGER_API_SECRET")


def payout_value(config, field):
    """The merchant's value for one of a route's to.fields: by field id, else by field name."""
    configured = config["PAYOUT_VALUES"]
    return configured.get(str(field.get("_id"))) or configured.get(str(field.get("name"))) or ""


def payout_problem(config, field):
    """Why PAYOUT_VALUES cannot fill this to-field ('missing', 'does not match ...'), or None."""
    value = payout_value(config, field)
    if not value:
        return "missing" if field.get("required") else None
    try:
        if field.get("regexp") and not re.search(field["regexp"], value):
            return "does not match the field's regexp"
    except re.error:
        return None  # a pattern Python cannot read: the exchanger will judge
    return None


class ConfigError(RuntimeError):
    """A setting the shop cannot run with; the message names it."""


def load(app, test_config=None):
    """Fill app.config from defaults, the instance file and the environment (or test_config)."""
    app.config.from_mapping(DEFAULTS, DATABASE=os.path.join(app.instance_path, "shop.sqlite"))
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
    else:
        app.config.from_mapping(test_config)
    production = not (app.testing or debug_from_the_command_line(app))
    app.config["SANDBOX_MODE"] = sandbox_mode(app.config, production)
    # The demo wallet only ever pays the sandbox: it never fills a real exchanger's payout.
    if app.config["SANDBOX_MODE"] and not app.config["PAYOUT_VALUES"]:
        app.config["PAYOUT_VALUES"] = dict(SANDBOX_PAYOUT_VALUES)
    app.config["PUBLIC_URL"] = str(app.config["PUBLIC_URL"]).rstrip("/")
    # Behind https the session cookie (the console login) must never travel in clear.
    if app.config["PUBLIC_URL"].startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    weak_key = app.config["SECRET_KEY"] in (None, "", DEFAULT_SECRET_KEY)
    if weak_key and not production and not dev_server(app):
        # Debug under gunicorn, say: the well-known key would let anyone sign a console cookie.
        # A random one per process instead (production refuses to start, in check()).
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    check(app.config, production=production)


def sandbox_mode(config, production):
    """True when the embedded sandbox is the exchanger: asked for by name, or debug/testing."""
    url = config["EXCHANGER_URL"]
    if url == SANDBOX:
        return True
    if url:
        return False
    if production:
        raise ConfigError(
            "EXCHANGER_URL is not set: set FLASK_EXCHANGER_URL to your exchanger's site"
            ' (https://...), or to "sandbox" for the built-in sandbox where no real money moves'
        )
    return True


def debug_from_the_command_line(app):
    """Debug relaxes the production checks only at the flask command line.

    `flask run --debug` on loopback, or a command such as `flask --debug exchanger routes`
    while setting up; never under gunicorn (no click context) or `flask run` on a public host,
    where FLASK_DEBUG=1 left in an environment would otherwise switch every check off.
    """
    context = click.get_current_context(silent=True)
    if not app.debug or context is None:
        return False
    return context.info_name != "run" or dev_server(app)


def dev_server(app):
    """Under `flask run --debug` on loopback the known dev key is harmless; nowhere else."""
    # `flask run` loads the app inside its own command, whose --host is the address served.
    context = click.get_current_context(silent=True)
    if not app.debug or context is None or context.info_name != "run":
        return False
    return context.params.get("host") in ("127.0.0.1", "localhost", "::1")


def check(config, production):
    """Raise ConfigError for a setting that is malformed, or unsafe outside debug and testing."""
    for name in ("PUBLIC_URL", "EXCHANGER_URL"):
        value = config[name]
        if name == "EXCHANGER_URL" and value in (None, SANDBOX):
            continue
        parts = urlsplit(str(value))
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ConfigError(
                f"{name} must be an absolute http(s) URL without query, got {value!r}"
            )
    if bool(config["EXCHANGER_API_KEY"]) != bool(config["EXCHANGER_API_SECRET"]):
        raise ConfigError(
            "EXCHANGER_API_KEY and EXCHANGER_API_SECRET go together: set both or neither"
        )
    hours = config["SETTLEMENT_CHECK_HOURS"]
    if not isinstance(hours, list | tuple) or not all(
        isinstance(h, int | float) and not isinstance(h, bool) and 0 <= h <= 24 * 366 for h in hours
    ):
        raise ConfigError("SETTLEMENT_CHECK_HOURS must be a JSON list of hours, like [1, 24, 168]")
    if list(hours) != sorted(hours):
        raise ConfigError("SETTLEMENT_CHECK_HOURS must be in increasing order")
    days = config["OPEN_ORDER_REVIEW_DAYS"]
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
        raise ConfigError(
            f"OPEN_ORDER_REVIEW_DAYS must be a whole number of days, 1 to 365: {days!r}"
        )
    retry = config["WEBHOOK_RETRY_HOURS"]
    if isinstance(retry, bool) or not isinstance(retry, int | float) or not 0 < retry <= 24 * 30:
        raise ConfigError(
            f"WEBHOOK_RETRY_HOURS must be a number of hours, above 0 and at most 720: {retry!r}"
        )
    timeout = config["WEBHOOK_TIMEOUT"]
    parts = list(timeout) if isinstance(timeout, list | tuple) else [timeout]
    if len(parts) not in (1, 2) or not all(
        isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 120 for t in parts
    ):
        raise ConfigError(
            f"WEBHOOK_TIMEOUT must be seconds (at most 120: an attempt must end well inside its lease), or [connect, read] seconds: {timeout!r}"
        )
    proxies = config["TRUSTED_PROXIES"]
    if isinstance(proxies, bool) or not isinstance(proxies, int) or not 0 <= proxies <= 5:
        raise ConfigError(f"TRUSTED_PROXIES must be a whole number of proxies, 0 to 5: {proxies!r}")
    payout = config["PAYOUT_VALUES"]
    if not isinstance(payout, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in payout.items()
    ):
        raise ConfigError('PAYOUT_VALUES must be a JSON object of strings: {"field id": "value"}')
    if not production:
        return
    if not config["SECRET_KEY"] or config["SECRET_KEY"] == DEFAULT_SECRET_KEY:
        raise ConfigError("SECRET_KEY is the default: set FLASK_SECRET_KEY to a long random value")
    if not payout or not all(v.strip() for v in payout.values()):
        raise ConfigError(
            "PAYOUT_VALUES is missing a payout requisite: the exchanger would have nowhere to pay you"
        )
    if config["SANDBOX_MODE"]:
        check_sandbox_stays_local(config)
    else:
        check_real_exchanger(config)
    for name in SECRET_SETTINGS:
        value = config[name]
        if isinstance(value, str) and value != value.strip():
            raise ConfigError(f"{name} has stray whitespace at its start or end")
    for field, value in payout.items():
        if value != value.strip():
            raise ConfigError(f"PAYOUT_VALUES[{field!r}] has stray whitespace at its start or end")


def check_sandbox_stays_local(config):
    """The sandbox lets anyone mark an order paid: it serves this machine only, never buyers.

    `make run` names the sandbox in instance/config.py; a merchant who then adds a real
    PUBLIC_URL to that file, and forgets the sandbox line, must not go live on the sandbox.
    """
    host = urlsplit(config["PUBLIC_URL"]).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f'EXCHANGER_URL is "sandbox" but PUBLIC_URL {config["PUBLIC_URL"]} is not this'
            " machine: in the built-in sandbox anyone can mark an order paid. Set EXCHANGER_URL"
            " to your exchanger's site (and remove the sandbox line from instance/config.py)"
        )


def check_real_exchanger(config):
    """With real money, the sandbox's demo settings would pay or call the wrong party."""
    if config["PUBLIC_URL"] == DEFAULT_PUBLIC_URL:
        raise ConfigError(
            f"PUBLIC_URL is the default {DEFAULT_PUBLIC_URL}: set FLASK_PUBLIC_URL to the address"
            " buyers and the exchanger reach the shop at, or IPNs would go to the exchanger's own"
            " localhost"
        )
    demo = set(SANDBOX_PAYOUT_VALUES.values())
    for field, value in config["PAYOUT_VALUES"].items():
        if value in demo:
            raise ConfigError(
                f"PAYOUT_VALUES[{field!r}] is the sandbox's demo wallet: set your own payout requisite"
            )
