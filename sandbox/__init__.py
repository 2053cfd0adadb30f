"""A simulated exchanger of the platform, for running and testing a shop with no account.

Run it alone with `flask --app sandbox run --port 5001`, or mount it inside another app with
`sandbox.mount(app)`. It never imports the shop: the two speak only HTTP.
"""

import os
import secrets
import threading
import time
from contextlib import suppress
from decimal import Decimal
from pathlib import Path

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from . import api, autopilot, db, pages
from .faults import Faults
from .ipn import Dispatcher
from .pricing import plain
from .routes import DEFAULT_ROUTES_FILE, RouteBook

DEFAULTS = {
    "SECRET_KEY": None,
    # Its own cookie, so the sandbox's pages never overwrite a mounting shop's session.
    "SESSION_COOKIE_NAME": "sandbox_session",
    "ROUTES_FILE": str(DEFAULT_ROUTES_FILE),
    # {api_key: api_secret}; empty means anonymous calls are accepted, as on the public site.
    "API_KEYS": {},
    # Walk paid orders inProgress -> inProgressPayout -> done after these delays (seconds).
    "AUTOPILOT": True,
    "AUTOPILOT_DELAYS": {"inProgress": 3, "inProgressPayout": 3},
    # A background thread runs the autopilot and expiry every tick; tests turn it off.
    "BACKGROUND": True,
    "TICK_SECONDS": 0.5,
    "IPN_TIMEOUT": (2, 5),
    # Initial fault settings (see faults.DEFAULTS); None keeps what the database has.
    "FAULTS": None,
    # Origins an order's ipnUrl and clientCallbackUrl may point at; None = anywhere (the
    # platform's behaviour). Embedded in a shop: only the shop, or visitors could make the
    # shop's host post wherever they like.
    "CALLBACK_ORIGINS": None,
}

# The same headers as the shop's pages: the sandbox's pages are served from the shop's origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none';"
        " object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Clock:
    """Wall-clock time that tests can move forward instead of sleeping."""

    def __init__(self):
        self.offset = 0.0

    def now(self):
        return time.time() + self.offset

    def advance(self, seconds):
        self.offset += seconds


class Sandbox:
    """Per-app state: routes, faults, the clock, and per-process background workers."""

    def __init__(self, app):
        self.app = app
        self.routes = RouteBook(app.config["ROUTES_FILE"])
        self.faults = Faults(app.config["DATABASE"])
        self.clock = Clock()
        self._lock = threading.Lock()
        self._workers_pid = None
        self._dispatcher = None

    def dispatcher(self):
        """The IPN sender of this process (threads do not survive a fork, so one per pid)."""
        self.start_workers()
        return self._dispatcher

    def start_workers(self):
        with self._lock:
            if self._workers_pid == os.getpid():
                return
            self._workers_pid = os.getpid()
            self._dispatcher = Dispatcher(
                self.app.config["DATABASE"], self.app.config["IPN_TIMEOUT"]
            )
            if self.app.config["BACKGROUND"]:
                autopilot.start(self)


def create_app(test_config=None):
    """The sandbox exchanger as a Flask app."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(DEFAULTS, DATABASE=os.path.join(app.instance_path, "sandbox.sqlite"))
    if test_config is None:
        app.config.from_prefixed_env(prefix="SANDBOX")
    else:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        # Every worker must sign forms with the same key, or a page from one worker posted to
        # another fails its CSRF check: one random key, kept beside the sandbox's database.
        app.config["SECRET_KEY"] = shared_secret_key(app.config["DATABASE"] + ".secret-key")

    db.init_app(app)
    app.extensions["sandbox"] = Sandbox(app)
    if app.config["FAULTS"] is not None:
        app.extensions["sandbox"].faults.update({"reset": True, **app.config["FAULTS"]})

    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.add_template_filter(lambda text: plain(Decimal(text)), "plain")
    app.before_request(app.extensions["sandbox"].start_workers)
    app.after_request(add_security_headers)
    return app


def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def shared_secret_key(path):
    """The key in path, made (atomically, readable by this user only) by whoever comes first."""
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))
        # link() never replaces: a worker that lost the race reads the winner's key below.
        with suppress(FileExistsError):
            os.link(draft, target)
        draft.unlink()
    return target.read_text().strip()


def mount(app, sandbox_app, prefix="/sandbox"):
    """Serve sandbox_app under prefix of app, in the same process."""
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {prefix: sandbox_app})
