"""Headers every page carries, a last check that no redirect leaves the site, Server-Timing, no JSON to forms."""

from urllib.parse import urlsplit

from flask import abort, current_app, g, has_request_context, render_template, request

from .exchanger import get_exchanger
from .i18n import N_


def origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins():
    """This site (as configured and as reached) and the exchanger whose payment page we send to."""
    config = current_app.config
    exchanger = get_exchanger().base_url
    return {origin(config["PUBLIC_URL"]), origin(request.host_url), origin(exchanger)}


def content_security_policy():
    # Forms post to the shop, which redirects to the exchanger: Chrome applies form-action to
    # that redirect too, so the exchanger's origin is allowed there and nowhere else.
    exchanger = origin(get_exchanger().base_url)
    return (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        f" connect-src 'self'; form-action 'self' {exchanger}; frame-ancestors 'none';"
        " base-uri 'none'; object-src 'none'"
    )


def guard_redirect(response):
    """Refuse any redirect to another site than this one or the exchanger."""
    location = response.headers.get("Location")
    if not location or not 300 <= response.status_code < 400:
        return response
    parts = urlsplit(location)
    foreign = (parts.scheme or parts.netloc) and origin(location) not in allowed_origins()
    if foreign or "\\" in location:
        current_app.logger.error("refused a redirect from %s to %s", request.path, location[:200])
        page = render_template(
            "error.html", title=N_("Not allowed"), message=N_("That link leads off this site.")
        )
        return current_app.make_response((page, 400))
    return response


def add_headers(response):
    response = guard_redirect(response)
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Our URLs carry order tokens: never hand them to another site in a Referer.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def record_exchanger_call(path, seconds):
    """The exchanger client's observer: time and count its calls for this request."""
    if has_request_context():
        g.exchanger_calls = g.get("exchanger_calls", 0) + 1
        g.exchanger_seconds = g.get("exchanger_seconds", 0.0) + seconds


def server_timing(response):
    """Server-Timing: how long this request waited on the exchanger, and how often (benchmarks)."""
    if current_app.config["SERVER_TIMING"]:
        calls, seconds = g.get("exchanger_calls", 0), g.get("exchanger_seconds", 0.0)
        response.headers["Server-Timing"] = (
            f'exchanger;dur={seconds * 1000:.2f};desc="{calls} calls"'
        )
    return response


# The one view that takes JSON: the exchanger's IPNs may come as a JSON object.
JSON_ENDPOINTS = frozenset({"ipn.receive"})


def refuse_json_forms():
    """415 for a JSON body sent to a form: Flask-WTF would read it as the form and fail on any
    JSON that is not an object. Buyers' and merchants' browsers post forms, never JSON."""
    posted = request.method not in ("GET", "HEAD", "OPTIONS")
    form_view = request.endpoint is not None and request.endpoint not in JSON_ENDPOINTS
    # The merchant's API (shop/api.py) takes JSON and nothing else; it has no forms.
    form_view = form_view and not request.endpoint.startswith("api.")
    if posted and form_view and request.is_json:
        abort(415)


def init_app(app):
    app.before_request(refuse_json_forms)
    app.after_request(add_headers)
