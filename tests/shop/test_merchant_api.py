"""The merchant's API: keys, payments, idempotency, errors, the rate limit, and its OpenAPI
description checked against the real answers."""

import json
import re
import threading

import pytest
import requests
from werkzeug.security import generate_password_hash

from shop import api, openapi
from tests.conftest import BOTH_ENGINES, ShopServer
from tests.helpers import BTC_ADDRESS, BTC_ROUTE, ODD_VALUES, hidden_inputs, query

pytestmark = BOTH_ENGINES

PASSWORD = "correct horse battery"
NEW = {
    "amount": "30.00",
    "description": "Invoice 1042",
    "reference": "INV-1042",
    "buyer_email": "client@example.com",
    "return_url": "https://merchant.example/invoices/1042",
}


def make_key(app, name="test"):
    with app.app_context():
        from shop.db import get_db

        return api.new_key(get_db(), name)


@pytest.fixture
def key(app):
    return make_key(app)


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def create(client, key, body=None, idem=None, **headers):
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return client.post(
        "/api/v1/payments", json=NEW if body is None else body, headers={**auth(key), **headers}
    )


def error_code(answer):
    assert answer.content_type == "application/json", answer.get_data(as_text=True)[:200]
    return answer.status_code, answer.get_json()["error"]["code"]


# -- schema check: the OpenAPI document against the real answers -------------------------------

SCHEMAS = openapi.DOCUMENT["components"]["schemas"]


def conforms(value, schema, where="$"):
    """A check of the JSON Schema keywords the document uses (jsonschema is not installed)."""
    if "$ref" in schema:
        return conforms(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], where)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        python = {
            "string": str,
            "integer": int,
            "boolean": bool,
            "object": dict,
            "array": list,
            "null": type(None),
        }
        ok = any(
            isinstance(value, python[k]) and not (k == "integer" and isinstance(value, bool))
            for k in kinds
        )
        assert ok, f"{where}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {missing}"
        properties = schema.get("properties", {})
        if schema.get("type") == "object" and "required" in schema and properties:
            extra = set(value) - set(properties)
            assert not extra, f"{where}: undocumented {extra}"
        for name, sub in properties.items():
            if name in value:
                conforms(value[name], sub, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            conforms(item, schema["items"], f"{where}[{index}]")


def operation(method, path):
    """The document's operation for a real request path (/api/v1/payments/7 -> /payments/{id})."""
    local = re.sub(r"^/api/v1", "", path.split("?")[0])
    local = re.sub(r"/payments/\d+$", "/payments/{id}", local)
    return openapi.DOCUMENT["paths"][local][method.lower()]


def documented(answer, method, path):
    """Assert the answer is one the document describes for this operation, body and all."""
    responses = operation(method, path)["responses"]
    status = str(answer.status_code)
    assert status in responses, f"{method} {path}: {status} is not documented"
    content = responses[status].get("content", {}).get("application/json")
    if content is None:
        return
    body = answer.get_json()
    conforms(body, content["schema"])
    if "x-error-codes" in content:
        assert body["error"]["code"] in content["x-error-codes"], (method, path, body)


# -- keys --------------------------------------------------------------------------------------


@pytest.fixture
def merchant(app):
    app.config.update(WTF_CSRF_ENABLED=True, CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD))
    client = app.test_client()
    csrf = hidden_inputs(client.get("/console/login").get_data(as_text=True))["csrf_token"]
    assert (
        client.post("/console/login", data={"csrf_token": csrf, "password": PASSWORD}).status_code
        == 302
    )
    return client


def test_a_key_made_in_the_console_is_shown_once_stored_hashed_and_can_be_revoked(app, merchant):
    page = merchant.get("/console/api-keys").get_data(as_text=True)
    made = merchant.post(
        "/console/api-keys",
        data={"csrf_token": hidden_inputs(page)["csrf_token"], "name": "invoicing"},
    )
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    key = re.search(r'id="new-key-value">([^<]+)<', made.get_data(as_text=True)).group(1)
    assert key.startswith("sk_") and len(key) > 40
    (row,) = query(app.config, "SELECT * FROM api_keys")
    assert row["name"] == "invoicing" and key not in json.dumps(row)
    assert row["prefix"] == key[:10]
    again = merchant.get("/console/api-keys").get_data(as_text=True)
    assert key not in again and f"{key[:10]}…" in again
    # Nor is it kept in the (signed, not encrypted) session cookie.
    assert all(key not in c.value for c in merchant._cookies.values())

    client = app.test_client()
    assert client.get("/api/v1/payments", headers=auth(key)).status_code == 200
    revoked = merchant.post(
        f"/console/api-keys/{row['id']}/revoke",
        data={"csrf_token": hidden_inputs(again)["csrf_token"]},
    )
    assert revoked.status_code == 302
    answer = client.get("/api/v1/payments", headers=auth(key))
    assert error_code(answer) == (401, "revoked_api_key")
    assert "revoked" in merchant.get("/console/api-keys").get_data(as_text=True)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_api_key"),
        ({"Authorization": "Bearer"}, "invalid_api_key"),
        ({"Authorization": "Bearer sk_" + "A" * 43}, "invalid_api_key"),
        ({"Authorization": "Bearer not a key at all"}, "invalid_api_key"),
        ({"Authorization": "Bearer " + "é" * 20}, "invalid_api_key"),
    ],
)
def test_requests_without_a_valid_key_are_refused(client, key, headers, code):
    for method, path in (
        ("GET", "/api/v1/payments"),
        ("POST", "/api/v1/payments"),
        ("GET", "/api/v1/payments/1"),
    ):
        answer = client.open(path, method=method, headers=headers, json=NEW)
        assert error_code(answer) == (401, code)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        documented(answer, method, path)
    assert query(client.application.config, "SELECT * FROM payments") == []


# -- payments ----------------------------------------------------------------------------------


def test_create_read_and_list_payments(app, client, key):
    made = create(client, key)
    assert made.status_code == 201
    documented(made, "POST", "/api/v1/payments")
    payment = made.get_json()
    assert payment["state"] == "open" and payment["reference"] == "INV-1042"
    assert payment["amount"] == "30.00" and payment["currency"] == "USDTTRC20"
    assert payment["single_use"] is True and payment["orders"] == []
    assert re.fullmatch(r"http://127\.0\.0\.1:1/pay/[A-Za-z0-9_-]{32}", payment["checkout_url"])
    assert made.headers["Location"] == f"/api/v1/payments/{payment['id']}"

    shown = client.get(made.headers["Location"], headers=auth(key))
    assert shown.status_code == 200 and shown.get_json() == payment
    documented(shown, "GET", made.headers["Location"])

    for n in range(4):
        create(client, key, {**NEW, "reference": f"R{n}"})
    first = client.get("/api/v1/payments?limit=2", headers=auth(key))
    documented(first, "GET", "/api/v1/payments")
    page1 = first.get_json()
    assert [p["reference"] for p in page1["data"]] == ["R3", "R2"] and page1["has_more"]
    page2 = client.get(
        f"/api/v1/payments?limit=2&after={page1['next_after']}", headers=auth(key)
    ).get_json()
    assert [p["reference"] for p in page2["data"]] == ["R1", "R0"] and page2["has_more"]
    page3 = client.get(
        f"/api/v1/payments?limit=2&after={page2['next_after']}", headers=auth(key)
    ).get_json()
    assert [p["reference"] for p in page3["data"]] == ["INV-1042"]
    assert page3["has_more"] is False and page3["next_after"] is None


def test_the_openapi_document_lists_exactly_the_real_routes_and_error_codes(app, client):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.get_json() == openapi.DOCUMENT
    assert answer.get_json()["openapi"].startswith("3.1")
    real = {
        (re.sub(r"<int:(\w+)>", r"{id}", rule.rule).removeprefix("/api/v1"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {
        (path, method) for path, ops in openapi.DOCUMENT["paths"].items() for method in ops
    }
    assert real == described
    assert set(openapi.ERROR_CODES) == set(api.ERRORS)
    # Every error code an operation documents has the status the API gives it.
    for ops in openapi.DOCUMENT["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                for code in (
                    response.get("content", {}).get("application/json", {}).get("x-error-codes", [])
                ):
                    assert api.ERRORS[code] == int(status), code


BAD_FIELDS = [
    ({"amount": 30}, "amount"),
    ({"amount": "30.5.0"}, "amount"),
    ({"amount": "0.00"}, "amount"),
    ({"amount": "-1"}, "amount"),
    ({"amount": "1.123456789"}, "amount"),
    ({"amount": "1e3"}, "amount"),
    ({"amount": None}, "amount"),
    ({"description": ""}, "description"),
    ({"description": "x" * 201}, "description"),
    ({"description": "two\nlines"}, "description"),
    ({"description": 5}, "description"),
    ({"description": "half a pair \ud800"}, "description"),
    ({"reference": "\udfff"}, "reference"),
    # A line separator is a second line; a bidi override turns the text the buyer reads around.
    ({"description": "two\u2028lines"}, "description"),
    ({"description": "Invoice \u202egnp.exe"}, "description"),
    ({"reference": "INV\u2067-1"}, "reference"),
    ({"reference": None}, "reference"),
    ({"reference": "r" * 101}, "reference"),
    ({"buyer_email": "nobody"}, "buyer_email"),
    ({"return_url": "javascript:alert(1)"}, "return_url"),
    ({"return_url": "ftp://merchant.example/"}, "return_url"),
    ({"return_url": "//merchant.example/"}, "return_url"),
    ({"return_url": "https://user:pw@merchant.example/"}, "return_url"),
    ({"return_url": "https:\\\\merchant.example"}, "return_url"),
    ({"return_url": "http://[::1"}, "return_url"),
    ({"refrence": "typo"}, "refrence"),
]


@pytest.mark.parametrize(("change", "field"), BAD_FIELDS)
def test_each_invalid_field_is_named(client, key, change, field):
    body = {**NEW, **change}
    if change.get(field, "") is None and field in ("amount", "reference"):
        body.pop(field)
    answer = create(client, key, body)
    assert error_code(answer) == (422, "invalid_field")
    assert answer.get_json()["error"]["field"] == field
    documented(answer, "POST", "/api/v1/payments")
    assert query(client.application.config, "SELECT * FROM payments") == []


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (b"{not json", "application/json", (400, "invalid_json")),
        (b"[1, 2]", "application/json", (400, "invalid_json")),
        (b'"text"', "application/json", (400, "invalid_json")),
        (b'{"amount": NaN}', "application/json", (400, "invalid_json")),
        (b"\xff\xfe", "application/json", (400, "invalid_json")),
        (b"[" * 3000 + b"]" * 3000, "application/json", (400, "invalid_json")),
        (b"amount=1", "application/x-www-form-urlencoded", (415, "unsupported_media_type")),
        (b"", None, (415, "unsupported_media_type")),
        (b"{" + b" " * 20_000 + b"}", "application/json", (413, "body_too_large")),
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(client, key, data, content_type, expected):
    headers = {**auth(key)}
    if content_type:
        headers["Content-Type"] = content_type
    answer = client.post("/api/v1/payments", data=data, headers=headers)
    assert error_code(answer) == expected
    documented(answer, "POST", "/api/v1/payments")


def test_not_found_and_method_not_allowed_are_json(client, key):
    for path in ("/api/v1/payments/999", "/api/v1/payments/99999999999999999999"):
        answer = client.get(path, headers=auth(key))
        assert error_code(answer) == (404, "not_found")
        documented(answer, "GET", "/api/v1/payments/1")
    assert error_code(client.get("/api/v1/payments/abc", headers=auth(key))) == (404, "not_found")
    assert error_code(client.get("/api/v2/anything", headers=auth(key))) == (404, "not_found")
    answer = client.delete("/api/v1/payments", headers=auth(key))
    assert error_code(answer) == (405, "method_not_allowed")
    assert set(answer.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert error_code(client.put("/api/v1/payments/1", headers=auth(key), json={})) == (
        405,
        "method_not_allowed",
    )
    # Digits of other scripts too: "²" passes str.isdigit, and int() refuses it; "١" it takes.
    odd = ("limit=0", "limit=101", "limit=x", "after=-1", "after=99999999999", "limit=²")
    for query_string in (*odd, "after=%D9%A1", "limit=%EF%BC%95", "limit=+5", "limit= 5"):
        answer = client.get(f"/api/v1/payments?{query_string}", headers=auth(key))
        assert error_code(answer) == (422, "invalid_field"), query_string
        documented(answer, "GET", "/api/v1/payments")


def test_odd_values_in_any_field_never_give_a_500(client, key):
    client.application.config["API_RATE_LIMIT"] = 10_000
    for name in (*api.CREATE_FIELDS, "extra"):
        for value in [*ODD_VALUES, 0, -1, 1.5, True, [], {}, None, "\x00"]:
            answer = create(client, key, {**NEW, name: value})
            assert answer.status_code in (201, 422), (name, value, answer.get_data(as_text=True))
            assert answer.content_type == "application/json"
    for value in ODD_VALUES:
        answer = client.get(f"/api/v1/payments/{value}", headers=auth(key))
        assert answer.status_code in (404, 405) and answer.content_type == "application/json"
        answer = create(client, key, idem=value or " ")
        assert answer.status_code in (201, 422) and answer.content_type == "application/json"


# -- idempotency ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_answer_as_the_first_did(app, client, key):
    first = create(client, key, idem="order-1042-attempt")
    again = create(
        client, key, {**{k: NEW[k] for k in reversed(list(NEW))}}, idem="order-1042-attempt"
    )
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert (
        again.headers["Idempotent-Replayed"] == "true"
        and "Idempotent-Replayed" not in first.headers
    )
    assert len(query(app.config, "SELECT * FROM payments")) == 1

    other = create(client, key, {**NEW, "amount": "31.00"}, idem="order-1042-attempt")
    assert error_code(other) == (409, "idempotency_conflict")
    assert other.get_json()["error"]["field"] == "Idempotency-Key"
    documented(other, "POST", "/api/v1/payments")
    # Another key's Idempotency-Key space is its own; no key at all makes a new payment each time.
    assert (
        create(client, make_key(app, "other"), idem="order-1042-attempt").get_json()["id"]
        != first.get_json()["id"]
    )
    create(client, key)
    create(client, key)
    assert len(query(app.config, "SELECT * FROM payments")) == 4
    bad = create(client, key, idem="x" * 256)
    assert (
        error_code(bad) == (422, "invalid_field")
        and bad.get_json()["error"]["field"] == "Idempotency-Key"
    )


@pytest.fixture
def live_shop(store, sandbox_server):
    server = ShopServer(
        store["DATABASE"],
        sandbox_server.url,
        CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD),
        **store,
    )
    yield server
    server.stop()


def test_concurrent_retries_with_one_idempotency_key_make_exactly_one_payment(live_shop):
    key = make_key(live_shop.flask_app)
    start = threading.Barrier(8)
    answers = []

    def retry():
        with requests.Session() as http:
            start.wait()
            answer = http.post(
                f"{live_shop.url}/api/v1/payments",
                json=NEW,
                headers={**auth(key), "Idempotency-Key": "one-and-only"},
                timeout=30,
            )
            answers.append((answer.status_code, answer.content))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(answers) == 8
    assert {status for status, _ in answers} == {201}
    assert len({body for _, body in answers}) == 1
    assert len(live_shop.query("SELECT * FROM payments")) == 1


# -- rate limit ----------------------------------------------------------------------------------


def test_each_key_has_its_own_rate_limit(app, client, key):
    app.config.update(API_RATE_LIMIT=3, API_RATE_WINDOW_SECONDS=3600)
    for _ in range(3):
        assert client.get("/api/v1/payments", headers=auth(key)).status_code == 200
    limited = client.get("/api/v1/payments", headers=auth(key))
    assert error_code(limited) == (429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    documented(limited, "GET", "/api/v1/payments")
    assert error_code(create(client, key)) == (429, "rate_limited")
    assert query(app.config, "SELECT * FROM payments") == []
    # Another key is not slowed by this one.
    assert client.get("/api/v1/payments", headers=auth(make_key(app, "other"))).status_code == 200
    # The count is one row per key and window, not a row per request.
    assert len(query(app.config, "SELECT * FROM rate_windows")) == 2


# -- paid through the live sandbox -------------------------------------------------------------


def test_an_api_payment_paid_through_the_sandbox_shows_paid_with_its_reference(
    sandbox_server, live_shop
):
    shop = live_shop.url
    key = make_key(live_shop.flask_app)
    made = requests.post(f"{shop}/api/v1/payments", json=NEW, headers=auth(key), timeout=10)
    assert made.status_code == 201
    payment = made.json()
    assert payment["checkout_url"].startswith(f"{shop}/pay/")

    buyer = requests.Session()
    link = payment["checkout_url"]
    assert "Invoice 1042" in buyer.get(link, timeout=10).text
    form = buyer.get(f"{link}/{BTC_ROUTE}", timeout=10).text
    # The e-mail the merchant gave is filled in for the buyer.
    email = re.search(r'<input[^>]*name="routeValues_0"[^>]*>', form).group(0)
    assert 'value="client@example.com"' in email
    to_pay = buyer.post(
        f"{link}/{BTC_ROUTE}",
        data={
            **hidden_inputs(form),
            "fromValues_0": BTC_ADDRESS,
            "routeValues_0": "client@example.com",
            "agreement": "y",
        },
        allow_redirects=False,
        timeout=10,
    )
    payment_url = to_pay.headers["Location"]
    pending = requests.get(
        f"{shop}/api/v1/payments/{payment['id']}", headers=auth(key), timeout=10
    ).json()
    assert pending["state"] == "pending" and len(pending["orders"]) == 1
    (order,) = live_shop.query("SELECT * FROM orders")
    assert order["buyer_email"] == "client@example.com" and order["reference"] == "INV-1042"
    before = buyer.get(f"{shop}/orders/{order['token']}/return", timeout=10).text
    # Not before the order is settled: a buyer who has not paid is not sent away.
    assert 'id="back-to-merchant"' not in before

    payment_page = buyer.get(payment_url, timeout=10).text
    buyer.post(f"{payment_url}/paid", data=hidden_inputs(payment_page), timeout=10)
    sandbox_server.autopilot_to_done()

    shown = requests.get(
        f"{shop}/api/v1/payments/{payment['id']}", headers=auth(key), timeout=10
    ).json()
    assert shown["state"] == "paid" and shown["reference"] == "INV-1042"
    assert shown["orders"][0]["state"] == "paid" and shown["orders"][0]["token"] == order["token"]
    back = buyer.get(f"{shop}/orders/{order['token']}/return", timeout=10).text
    assert 'data-state="paid"' in back
    assert (
        '<a class="button" id="back-to-merchant" href="https://merchant.example/invoices/1042"'
        ' rel="noopener noreferrer">Back to merchant.example</a>'
    ) in back
    # The console lists it paid, with its reference.
    console = requests.Session()
    csrf = hidden_inputs(console.get(f"{shop}/console/login", timeout=10).text)["csrf_token"]
    console.post(
        f"{shop}/console/login", data={"csrf_token": csrf, "password": PASSWORD}, timeout=10
    )
    listing = console.get(f"{shop}/console/links", timeout=10).text
    assert f'data-payment="{payment["id"]}" data-state="paid" data-reference="INV-1042"' in listing
    # Used up: the checkout URL now refuses.
    assert buyer.get(link, timeout=10).status_code == 410
