"""The only code that talks to the exchanger: its API client, its errors and request signing."""

import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote, urlsplit

import requests
from flask import current_app, g, has_request_context
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError
from urllib3.util import Retry
from werkzeug.test import Client as WSGIClient

API_PATH = "/service/api/v1/"
FIELD_INVALID = 6231546409213868
ROUTE_UNAVAILABLE = 6801545277215051
ANTI_FLOOD = 5030000
NOT_AUTHORISED = 40301
MAINTENANCE = 5555555555555555
CAPTCHA_REQUIRED = 1601588666628861
UID_PATTERN = re.compile(r"^\d{1,12}$")
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9]{8,64}$")


class ExchangerError(Exception):
    """Any failure to get a usable answer from the exchanger."""

    def __init__(self, message, code=None, obj=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.object = obj if isinstance(obj, dict) else {}


class ExchangerUnavailable(ExchangerError):
    """No usable answer: refused, timed out, 5xx, an HTML page, or JSON that makes no sense.

    may_have_acted says whether the request could have reached the exchanger and done its work
    (a write that timed out may have created an order; a refused connection cannot have).
    """

    def __init__(self, message, may_have_acted=True):
        super().__init__(message)
        self.may_have_acted = may_have_acted


class ExchangerRejected(ExchangerError):
    """The exchanger answered with its error envelope: a code, a message and maybe an object."""

    @property
    def field(self):
        """(values group, field id) of the requisite the exchanger refused, if that is the error."""
        if self.code == FIELD_INVALID and self.object.get("fieldId"):
            return self.object.get("type"), str(self.object["fieldId"])
        return None

    @property
    def route_unavailable(self):
        return self.code == ROUTE_UNAVAILABLE

    @property
    def captcha_required(self):
        """The site wants a captcha a server cannot solve: a setup problem, not the buyer's."""
        return self.code == CAPTCHA_REQUIRED

    @property
    def retry_after(self):
        """Seconds to wait before asking again (anti-flood says; maintenance: a guess), or None."""
        if self.code == MAINTENANCE:
            return 2.0
        if self.code != ANTI_FLOOD:
            return None
        try:
            return max(0.0, float(self.object.get("time", 1)))
        except (TypeError, ValueError):
            return 1.0


@dataclass(frozen=True)
class CreatedOrder:
    id: str
    uid: int
    rid: str
    secret: str
    in_amount: Decimal
    out_amount: Decimal


def get_exchanger():
    """The app's ExchangerClient (built once in create_app), like get_db for the database."""
    return current_app.extensions["exchanger"]


def request_deadline():
    """When the current web request must stop waiting on the exchanger (time.monotonic()).

    EXCHANGER_BUDGET_SECONDS from its first exchanger call, for every call of the request
    together: a slow exchanger then costs a buyer seconds, never a worker past its timeout.
    None outside a request (the CLI's reconcile has only the per-call timeouts).
    """
    if not has_request_context():
        return None
    if "exchanger_deadline" not in g:
        g.exchanger_deadline = time.monotonic() + current_app.config["EXCHANGER_BUDGET_SECONDS"]
    return g.exchanger_deadline


def api_signature(params, api_secret):
    """sha256_hex(sha256_hex(JSON.stringify of all params, query first) + api_secret)."""
    inner = hashlib.sha256(js_json(params).encode()).hexdigest()
    return hashlib.sha256((inner + api_secret).encode()).hexdigest()


# -- JSON exactly as JavaScript's JSON.stringify writes it -------------------------------------
# The platform is Node: it verifies a signature over JSON.stringify of the params it parsed.
# Python's json.dumps differs for numbers (150.0, 5e-05, 1e+16) and lone surrogates, so a
# merchant key would be refused (40301) for those; every body is sent in this form, too, so
# what is signed is exactly what the server parses and re-serialises.

_JS_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_JS_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')
_ARRAY_INDEX = re.compile(r"^(0|[1-9]\d{0,9})$")
_SAFE_INTEGER = 2**53 - 1


def js_json(value):
    """value as JavaScript's JSON.stringify(value) writes it, byte for byte (a str)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        # JavaScript strings are UTF-16: a surrogate pair is one character, a lone half is
        # written as \\udXXX (ES2019 well-formed JSON.stringify).
        text = value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return '"' + _JS_NEEDS_ESCAPE.sub(_js_escape, text) + '"'
    if isinstance(value, int):
        # JavaScript has only doubles: a bigger integer arrives rounded.
        return str(value) if abs(value) <= _SAFE_INTEGER else js_number(float(value))
    if isinstance(value, (float, Decimal)):
        return js_number(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{js_json(str(k))}:{js_json(v)}" for k, v in _js_items(value)) + "}"
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _js_escape(match):
    char = match.group()
    return _JS_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _js_items(mapping):
    # JavaScript objects list integer-like keys first, in numeric order, then the rest as added.
    indices, others = [], []
    for key, item in mapping.items():
        key = str(key)
        is_index = _ARRAY_INDEX.match(key) and int(key) < 2**32 - 1
        (indices if is_index else others).append((key, item))
    return sorted(indices, key=lambda pair: int(pair[0])) + others


def js_number(number):
    """A float as JavaScript's Number.prototype.toString writes it (ECMA-262 Number::toString)."""
    if number != number or number in (float("inf"), float("-inf")):
        return "null"  # what JSON.stringify writes for NaN and the infinities
    if number == 0:
        return "0"
    if number < 0:
        return "-" + js_number(-number)
    # repr gives the shortest digits that read back as the same double, as JavaScript does.
    _sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digits))
    k, n = len(digits), exponent + len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def wire_headers(query, body):
    """The headers the platform's own front-end sends: JSON both ways, and the page language."""
    lang = (body or {}).get("lang") or query.get("lang")
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Lang": lang if lang in ("en", "ru") else "en",
    }


def create_body(payload):
    """order/create's body as the platform's front-end sends it: no partner when there is none."""
    body = dict(payload)
    if not body.get("partner"):
        body.pop("partner", None)
    return body


def http_problem(response):
    """A non-200 answer in words; a redirect names where it points (EXCHANGER_URL is not canonical)."""
    if response.is_redirect:
        target = response.headers.get("Location", "")[:200]
        return f"HTTP {response.status_code} redirect to {target} (set EXCHANGER_URL to the final address)"
    return f"HTTP {response.status_code}"


def not_json_problem(response):
    """What came instead of JSON: an HTML page is a bot check, a login wall or the wrong URL."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    if b"<html" in response.content[:1000].lower() or kind == "text/html":
        return (
            f"the answer is an HTML page, not JSON ({kind}: a bot check, or not the API's address?)"
        )
    return f"the answer is not JSON ({kind})"


def _nothing_sent(exc):
    """True when the request certainly never reached the exchanger."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _decimal(value):
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


class ExchangerClient:
    """One exchanger site's API over a pooled requests.Session."""

    def __init__(
        self,
        base_url,
        api_key=None,
        api_secret=None,
        timeout=(3.05, 10),
        read_retries=2,
        backoff=0.2,
        session=None,
        observe=None,
        deadline=None,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_secret = api_secret
        self.timeout = tuple(timeout)
        self.read_retries = read_retries
        self.backoff = backoff
        self.session = session or requests.Session()
        # Called with (path, seconds) after every call, answered or not: timing, counting.
        self.observe = observe or (lambda path, seconds: None)
        # Returns when the caller must stop waiting (a time.monotonic() value), or None.
        self.deadline = deadline or (lambda: None)
        # Connection errors happen before a request is sent, so retrying them is always safe.
        # Nothing else is retried here: reads are retried below, re-signed; writes never.
        safe = Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.1)
        self.session.mount(self.base_url, HTTPAdapter(pool_maxsize=16, max_retries=safe))
        self._time_lock = threading.Lock()
        self._last_time = 0

    # -- the API's methods ---------------------------------------------------------------------

    def routes(self):
        """Every direction the site shows (route/get)."""
        routes = self._read("public/exchanger/route/get", {}).get("routes")
        if not isinstance(routes, list):
            raise ExchangerUnavailable("route/get answered without a routes list")
        return [r for r in routes if isinstance(r, dict) and r.get("routeId")]

    def route(self, route_id, lang="en"):
        """One direction with its fields, limits and rate (route/get/one)."""
        route = self._read("public/exchanger/route/get/one", {"id": route_id, "lang": lang}).get(
            "route"
        )
        # The shop reads these without further checks: a route lacking them is no route.
        usable = (
            isinstance(route, dict)
            and isinstance(route.get("routeId"), str)
            and all(
                isinstance(route.get(side), dict) and isinstance(route[side].get("xml"), str)
                for side in ("from", "to")
            )
        )
        if not usable:
            raise ExchangerUnavailable("route/get/one answered without a usable route")
        return route

    def create_order(self, payload):
        """order/create; never retried, since a retry could make a second order."""
        data = self._call("POST", "public/exchanger/order/create", body=create_body(payload))
        uid, secret = str(data.get("uid", "")), data.get("secret")
        in_amount, out_amount = _decimal(data.get("inAmount")), _decimal(data.get("outAmount"))
        order_id = data.get("_id")
        if (
            not isinstance(order_id, str)
            or not 0 < len(order_id) <= 64
            or not UID_PATTERN.match(uid)
            or not isinstance(secret, str)
            or not SECRET_PATTERN.match(secret)
            or in_amount is None
            or out_amount is None
        ):
            raise ExchangerUnavailable("order/create answered with an order that makes no sense")
        return CreatedOrder(
            order_id, int(uid), str(data.get("rid", "")), secret, in_amount, out_amount
        )

    def get_order(self, uid, secret, view="order"):
        """order/get: the order as the exchanger has it now."""
        params = {"orderUID": uid, "orderSecret": secret, "type": view}
        order = self._read("public/exchanger/order/get", params).get("order")
        if not isinstance(order, dict) or not isinstance(order.get("status"), str):
            raise ExchangerUnavailable("order/get answered without an order")
        return order

    def update_status(self, uid, secret, status):
        """order/update-status (PUT): only the changes a client may make."""
        # A string, as the platform's own front-end sends it (exchanger-api.md 8).
        body = {"orderUID": str(uid), "orderSecret": secret, "status": status}
        return self._call("PUT", "public/exchanger/order/update-status", body=body)

    def payment_url(self, lang, uid, secret):
        """The payer's page for an order (merchant docs, 'Payment')."""
        return f"{self.base_url}/{quote(lang)}/payment/{int(uid)}/{quote(secret, safe='')}"

    def order_url(self, lang, uid, secret):
        """The order's page as every client sees it (the merchant's view, with /order/)."""
        return f"{self.base_url}/{quote(lang)}/order/{int(uid)}/{quote(secret, safe='')}"

    # -- transport -----------------------------------------------------------------------------

    def remaining(self):
        """Seconds left of the caller's time budget, or None when it has none."""
        deadline = self.deadline()
        return None if deadline is None else deadline - time.monotonic()

    def _read(self, path, params):
        """A GET, retried with back-off when no usable answer came: reads change nothing.

        The retries stop when the time budget is spent: a slow exchanger is not waited on twice.
        """
        for attempt in range(self.read_retries + 1):
            try:
                return self._call("GET", path, query=params)
            except ExchangerUnavailable:
                pause = self.backoff * 2**attempt
                left = self.remaining()
                if attempt == self.read_retries or (left is not None and left <= pause):
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _timeout(self, method, path):
        """(connect, read) seconds for one call: a read's cut to what is left of the time budget.

        A write once started keeps its whole read timeout: cut short, it would leave an order
        made at the exchanger that the shop never heard of. Writes are never retried, so the
        most a request waits is the budget plus one read timeout (12 + 10 s by default), inside
        gunicorn's 30 s. Nothing at all is sent once the budget is spent.
        """
        left = self.remaining()
        if left is None:
            return self.timeout
        if left <= 0:
            raise ExchangerUnavailable(f"{path}: the time budget is spent", may_have_acted=False)
        if method != "GET":
            return self.timeout
        return tuple(min(part, left) for part in self.timeout)

    def _nonce(self):
        # Strictly increasing per client, even for two calls in the same millisecond.
        with self._time_lock:
            self._last_time = max(int(time.time() * 1000), self._last_time + 1)
            return self._last_time

    def _call(self, method, path, query=None, body=None):
        query = {k: str(v) for k, v in (query or {}).items()}
        body = dict(body) if body is not None else None
        headers = wire_headers(query, body)
        if self.api_key:
            if body is None:
                query["time"] = str(self._nonce())
            else:
                body["time"] = self._nonce()
            headers["apikey"] = self.api_key
            headers["hash"] = api_signature({**query, **(body or {})}, self.api_secret)
        data = js_json(body) if body else None
        started = time.perf_counter()
        timeout = self._timeout(method, path)
        try:
            response = self.session.request(
                method,
                f"{self.base_url}{API_PATH}{path}/",
                params=query,
                data=data.encode() if data else None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise ExchangerUnavailable(
                f"{path}: {type(exc).__name__}", may_have_acted=not _nothing_sent(exc)
            ) from exc
        finally:
            self.observe(path, time.perf_counter() - started)
        return self._unwrap(path, response)

    def _unwrap(self, path, response):
        if response.status_code != 200:
            raise ExchangerUnavailable(f"{path}: {http_problem(response)}")
        try:
            answer = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise ExchangerUnavailable(f"{path}: {not_json_problem(response)}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            raise ExchangerUnavailable(f"{path}: the answer has no envelope")
        if not answer["success"]:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            code = error.get("errorCode")
            message = error.get("message") if isinstance(error.get("message"), str) else ""
            raise ExchangerRejected(message or "rejected", code=code, obj=error.get("object"))
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ExchangerUnavailable(f"{path}: the answer has no data")
        return data


class LocalWSGIAdapter(BaseAdapter):
    """Serves requests from a WSGI app in this process: the embedded sandbox.

    A shop calling itself over the network deadlocks a single-threaded server (a gunicorn sync
    worker waits on itself); in-process calls cannot. The read timeout still applies.
    """

    def __init__(self, wsgi_app, script_name):
        super().__init__()
        self.script_name = script_name
        self.client = WSGIClient(wsgi_app, use_cookies=False)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="local-exchanger")

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        future = self.pool.submit(self._call, request)
        try:
            return future.result(timeout=read_timeout)
        except FutureTimeout:
            raise requests.ReadTimeout(f"no answer in {read_timeout} s", request=request) from None

    def _call(self, request):
        url = urlsplit(request.url)
        answer = self.client.open(
            url.path.removeprefix(self.script_name),
            base_url=f"{url.scheme}://{url.netloc}{self.script_name}",
            query_string=url.query,
            method=request.method,
            headers=dict(request.headers),
            data=request.body,
            environ_overrides={"REMOTE_ADDR": "127.0.0.1"},
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.get_data()
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self):
        self.pool.shutdown(wait=False)


def post_form(url, fields, timeout=(3, 10)):
    """POST a form and return (HTTP status, body text): `flask ipn send` posting a test IPN
    to the shop's own /ipn as the exchanger would. Not an exchanger call, but here so that
    every outbound HTTP request of the shop lives in this one module, with its timeouts and
    its one error family."""
    try:
        answer = requests.post(url, data=fields, timeout=timeout)
    except requests.RequestException as exc:
        raise ExchangerUnavailable(type(exc).__name__) from None
    return answer.status_code, answer.text
