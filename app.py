"""The shop's application factory: `flask --app app run`."""

from flask import Flask, redirect, render_template, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

import sandbox
from shop import (
    api,
    buyer,
    catalog,
    checkout,
    config,
    console,
    db,
    discovery,
    i18n,
    ipn,
    mail,
    merchant,
    paylinks,
    reconcile,
    security,
    webhooks,
    words,
)
from shop.exchanger import ExchangerClient, LocalWSGIAdapter, request_deadline
from shop.i18n import N_

SANDBOX_PREFIX = "/sandbox"

csrf = CSRFProtect()


def create_app(test_config=None):
    """Build the shop: config, database, exchanger client, blueprints, and the sandbox if needed."""
    app = Flask(__name__, instance_relative_config=True)
    config.load(app, test_config)
    # Extensions and hooks: each module's init_app adds only its own.
    db.init_app(app)
    csrf.init_app(app)
    i18n.init_app(app)
    words.init_app(app)
    buyer.init_app(app)
    mail.init_app(app)
    webhooks.init_app(app)
    security.init_app(app)
    paylinks.init_app(app)
    sandbox_app = mount_sandbox(app) if app.config["SANDBOX_MODE"] else None
    app.extensions["exchanger"] = exchanger_client(app, sandbox_app)

    for module in (catalog, checkout, paylinks, buyer, mail, ipn, console, webhooks, i18n, api):
        app.register_blueprint(module.bp)
    app.register_blueprint(paylinks.console_bp)
    app.register_blueprint(api.keys_bp)
    # The IPN is protected by its checksum; the exchanger has no CSRF token to send. The API
    # takes no cookie, only a bearer key, which another site's page cannot send for anyone.
    csrf.exempt(ipn.bp)
    csrf.exempt(api.bp)
    for command in (
        db.init_db_command,
        db.db_cli,
        console.console_cli,
        discovery.exchanger_cli,
        merchant.ipn_cli,
        mail.mail_cli,
        webhooks.webhooks_cli,
        reconcile.reconcile_command,
    ):
        app.cli.add_command(command)

    register_error_pages(app)
    # Server-Timing (benchmarks): how long this request waited on the exchanger.
    app.after_request(security.server_timing)
    app.add_url_rule("/health", "health", lambda: "ok\n")
    # Browsers and crawlers ask for /favicon.ico whatever the page links: no 404 in the log.
    app.add_url_rule(
        "/favicon.ico", "favicon", lambda: redirect(url_for("static", filename="favicon.svg"))
    )
    trust_proxies(app)
    return app


def trust_proxies(app):
    """Behind TRUSTED_PROXIES reverse proxies, take the client's address and scheme from them.

    Never by default: X-Forwarded-For is whatever the client wrote, and the console's login
    limit and the IPN log key on the address.
    """
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        # Not X-Forwarded-Host: the documented proxy sets Host itself, and passes on whatever
        # X-Forwarded-Host a client wrote, which would then pass the redirect guard's origin.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def exchanger_client(app, sandbox_app=None):
    """The client for EXCHANGER_URL, or for the embedded sandbox mounted at /sandbox."""
    settings = {
        "api_key": app.config["EXCHANGER_API_KEY"],
        "api_secret": app.config["EXCHANGER_API_SECRET"],
        "timeout": app.config["EXCHANGER_TIMEOUT"],
        "deadline": request_deadline,
        # Each call's time, for this request's Server-Timing header.
        "observe": security.record_exchanger_call,
    }
    if sandbox_app is None:
        return ExchangerClient(app.config["EXCHANGER_URL"], **settings)
    client = ExchangerClient(app.config["PUBLIC_URL"] + SANDBOX_PREFIX, **settings)
    # In-process calls: a single-threaded server calling itself over HTTP would deadlock.
    client.session.mount(client.base_url, LocalWSGIAdapter(sandbox_app, SANDBOX_PREFIX))
    return client


def mount_sandbox(app):
    """The embedded sandbox exchanger, served at PUBLIC_URL/sandbox (no real money)."""
    sandbox_app = sandbox.create_app(
        {
            "DATABASE": app.config["DATABASE"] + ".sandbox",
            # Embedded, it may call back (IPNs) and send buyers back to this shop only.
            "CALLBACK_ORIGINS": [security.origin(app.config["PUBLIC_URL"])],
            **app.config["SANDBOX"],
        }
    )
    sandbox.mount(app, sandbox_app, SANDBOX_PREFIX)
    app.logger.warning(
        "sandbox mode: the embedded sandbox exchanger at %s%s answers every payment;"
        " no real money moves",
        app.config["PUBLIC_URL"],
        SANDBOX_PREFIX,
    )
    return sandbox_app


def register_error_pages(app):
    """Friendly pages for errors, in the buyer's language; never a traceback."""
    pages = {
        404: (N_("Not found"), N_("There is nothing at this address.")),
        405: (N_("Not allowed"), N_("This page cannot be used that way.")),
        CSRFError: (
            N_("Form expired"),
            N_("The form was open too long or came from elsewhere. Please try again."),
        ),
        500: (N_("Something went wrong"), N_("Sorry: we could not finish that. Please try again.")),
    }
    for error, (title, message) in pages.items():
        status = 400 if error is CSRFError else error

        def handler(e, title=title, message=message, status=status):
            # Under /api/ every answer is JSON, errors from routing included.
            answer = api.http_error(e)
            if answer is not None:
                return answer
            return render_template("error.html", title=title, message=message), status

        app.register_error_handler(error, handler)
