"""The sandbox's platform API over real HTTP: every method, every error the issue names."""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from sandbox import errors
from tests.helpers import (
    BTC_ADDRESS_FIELD,
    BTC_ROUTE,
    CARD_ROUTE,
    EMAIL_FIELD,
    HIDDEN_ROUTE,
    USDT_MULTI_ROUTE,
    USDT_PAYOUT_FIELD,
    btc_order,
)


def create(server, payload):
    return server.api("POST", "public/exchanger/order/create/", json=payload)


def error_code(answer):
    assert answer["success"] is False, answer
    return answer["error"]["errorCode"]


def test_route_list_shows_only_visible_routes_with_or_without_trailing_slash(sandbox_server):
    for path in ("public/exchanger/route/get", "public/exchanger/route/get/"):
        answer = sandbox_server.api("GET", path)
        assert answer["success"] is True and "requestId" in answer and "latency_ms" in answer
        ids = {r["routeId"] for r in answer["data"]["routes"]}
        assert BTC_ROUTE in ids and HIDDEN_ROUTE not in ids
        assert len(ids) >= 6
    targets = {r["to"]["xml"] for r in answer["data"]["routes"]}
    assert {"USDTTRC20", "CARDRUB"} <= targets


def test_route_one_by_get_query_and_by_json_post(sandbox_server):
    by_get = sandbox_server.data("GET", "public/exchanger/route/get/one", params={"id": BTC_ROUTE})
    by_post = sandbox_server.data("POST", "public/exchanger/route/get/one/", json={"id": BTC_ROUTE})
    assert by_get == by_post
    route = by_get["route"]
    assert route["from"]["decimal"] == 8 and route["to"]["xml"] == "USDTTRC20"
    assert route["from"]["fields"][0]["_id"] == BTC_ADDRESS_FIELD
    assert route["fields"][0]["_id"] == EMAIL_FIELD
    assert "##en##" in route["instructions"][0]["content"]


@pytest.mark.parametrize("route_id", [HIDDEN_ROUTE, "65f0c0ffee0000000000ffff", ""])
def test_unknown_or_hidden_route_is_not_available(sandbox_server, route_id):
    answer = sandbox_server.api("GET", "public/exchanger/route/get/one", params={"id": route_id})
    assert error_code(answer) == errors.ROUTE_UNAVAILABLE
    assert (
        error_code(create(sandbox_server, btc_order(routeId=route_id))) == errors.ROUTE_UNAVAILABLE
    )


def platform_out(route, amount_in):
    """exchanger-api.md's formula, written out independently of the sandbox's code."""
    rate = Decimal(route["rate"]["rateFullNumber"])
    fee = Decimal(str(route["rate"]["outFeeAmount"]))
    step = Decimal(1).scaleb(-route["to"]["decimal"])
    return (amount_in / rate - fee).quantize(step, rounding=ROUND_FLOOR)


def test_create_with_a_positive_amount_computes_what_is_received(sandbox_server):
    route = sandbox_server.data("GET", "public/exchanger/route/get/one", params={"id": BTC_ROUTE})[
        "route"
    ]
    data = sandbox_server.data("POST", "public/exchanger/order/create", json=btc_order(amount=0.01))
    assert len(data["_id"]) == 24 and int(data["_id"], 16) >= 0
    assert isinstance(data["uid"], int) and data["secret"].isalnum() and len(data["secret"]) == 24
    assert Decimal(str(data["inAmount"])) == Decimal("0.01")
    assert Decimal(str(data["outAmount"])) == platform_out(route, Decimal("0.01"))


def test_create_with_a_negative_amount_means_the_amount_to_receive(sandbox_server):
    route = sandbox_server.data("GET", "public/exchanger/route/get/one", params={"id": BTC_ROUTE})[
        "route"
    ]
    data = sandbox_server.data("POST", "public/exchanger/order/create", json=btc_order(amount=-100))
    rate, fee = Decimal(route["rate"]["rateFullNumber"]), Decimal("1")
    expected_in = ((Decimal(100) + fee) * rate).quantize(Decimal("1e-8"), rounding=ROUND_CEILING)
    assert Decimal(str(data["inAmount"])) == expected_in
    assert Decimal(str(data["outAmount"])) >= 100


def test_create_accepts_a_form_body_with_bracket_keys(sandbox_server):
    form = {
        "routeId": BTC_ROUTE,
        "amount": "0.01",
        "fromValues[0][key]": BTC_ADDRESS_FIELD,
        "fromValues[0][value]": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
        "toValues[0][key]": USDT_PAYOUT_FIELD,
        "toValues[0][value]": "TMerchantPayoutWa11etSandboxDemoXq",
        "routeValues[0][key]": EMAIL_FIELD,
        "routeValues[0][value]": "a@example.com",
        "skipPreview": "true",
    }
    data = sandbox_server.data("POST", "public/exchanger/order/create", data=form)
    order = sandbox_server.data(
        "GET",
        "public/exchanger/order/get",
        params={"orderUID": data["uid"], "orderSecret": data["secret"]},
    )["order"]
    assert order["routeValues"][0]["value"] == "a@example.com"
    assert order["status"] == "waitPayment"


@pytest.mark.parametrize(
    ("group", "values", "field", "err"),
    [
        ("fromValues", [], BTC_ADDRESS_FIELD, "required"),
        ("fromValues", [{"key": BTC_ADDRESS_FIELD, "value": "   "}], BTC_ADDRESS_FIELD, "required"),
        (
            "fromValues",
            [{"key": BTC_ADDRESS_FIELD, "value": "not-an-address"}],
            BTC_ADDRESS_FIELD,
            "regexp",
        ),
        ("fromValues", [{"key": BTC_ADDRESS_FIELD, "value": 12345}], BTC_ADDRESS_FIELD, "type"),
        (
            "toValues",
            [{"key": USDT_PAYOUT_FIELD, "value": "0xnot-tron"}],
            USDT_PAYOUT_FIELD,
            "regexp",
        ),
        ("routeValues", "nonsense", EMAIL_FIELD, "required"),
        ("routeValues", [{"key": EMAIL_FIELD, "value": "no-at-sign"}], EMAIL_FIELD, "regexp"),
    ],
)
def test_missing_or_invalid_requisites_name_the_field(sandbox_server, group, values, field, err):
    answer = create(sandbox_server, btc_order(**{group: values}))
    assert error_code(answer) == errors.FIELD_INVALID
    assert answer["error"]["object"]["fieldId"] == field
    assert answer["error"]["object"]["type"] == group
    assert answer["error"]["object"]["err"] == err
    assert answer["error"]["object"]["nameField"]


def test_a_select_field_takes_only_its_options(sandbox_server):
    payload = {
        "routeId": USDT_MULTI_ROUTE,
        "amount": 50,
        "fromValues": [
            {"key": "65f0c0ffee00000000000d06", "value": "tron"},
            {"key": "65f0c0ffee00000000000d07", "value": "0x" + "a" * 40},
        ],
        "toValues": [{"key": USDT_PAYOUT_FIELD, "value": "TMerchantPayoutWa11etSandboxDemoXq"}],
        "routeValues": [{"key": EMAIL_FIELD, "value": "a@example.com"}],
    }
    answer = create(sandbox_server, payload)
    assert answer["error"]["object"]["err"] == "options"
    payload["fromValues"][0]["value"] = "bep20"
    assert create(sandbox_server, payload)["success"] is True


def test_optional_fields_may_be_left_out(sandbox_server):
    payload = btc_order(routeId=CARD_ROUTE, amount=50)
    payload["fromValues"] = [
        {"key": "65f0c0ffee00000000000d08", "value": "4000 0000 0000 0002"},
        {"key": "65f0c0ffee00000000000d09", "value": "JANE DOE"},
    ]
    # The card route also asks for a phone, which is optional.
    assert create(sandbox_server, payload)["success"] is True


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("abc", errors.AMOUNT_NOT_NUMBER),
        (None, errors.AMOUNT_NOT_NUMBER),
        (True, errors.AMOUNT_NOT_NUMBER),
        ("NaN", errors.AMOUNT_NOT_NUMBER),
        ("Infinity", errors.AMOUNT_NOT_NUMBER),
        (0, errors.AMOUNT_NOT_POSITIVE),
        ("-0", errors.AMOUNT_NOT_POSITIVE),
        # 0.00001 BTC is worth less than the 1 USDT fee: nothing would be received.
        (0.00001, errors.AMOUNT_NOT_POSITIVE),
        (0.000000001, errors.AMOUNT_NOT_POSITIVE),
        (0.0001, errors.AMOUNT_BELOW_MIN),
        (3, errors.AMOUNT_ABOVE_MAX),
        (-2_000_000, errors.AMOUNT_ABOVE_MAX),
    ],
)
def test_amount_errors(sandbox_server, amount, code):
    answer = create(sandbox_server, btc_order(amount=amount))
    assert error_code(answer) == code
    if code == errors.AMOUNT_BELOW_MIN:
        assert answer["error"]["object"]["min"] == "0.0002"
    if code == errors.AMOUNT_ABOVE_MAX:
        assert answer["error"]["object"]["max"] == "2"


def test_amount_above_the_reserve(sandbox_server):
    # TON -> USDT has a reserve of 1000 USDT; 1,000 TON is within its max but worth 5,420 USDT.
    payload = btc_order(routeId="65f0c0ffee0000000000aa07", amount=1000, fromValues=[])
    assert error_code(create(sandbox_server, payload)) == errors.ABOVE_RESERVE


def test_errors_come_in_the_platform_envelope_with_http_200(sandbox_server):
    response = sandbox_server.http.post(
        f"{sandbox_server.url}/service/api/v1/public/exchanger/order/create/",
        json=btc_order(amount="x"),
    )
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["apiError"] is True and error["errorType"] == "api" and error["level"] == 0


@pytest.mark.parametrize("body", [b"[1, 2]", b"{not json", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_refused(sandbox_server, body):
    answer = sandbox_server.api(
        "POST",
        "public/exchanger/order/create",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert error_code(answer) == errors.BAD_REQUEST


def test_unknown_method_and_wrong_http_method(sandbox_server):
    assert (
        error_code(sandbox_server.api("GET", "public/exchanger/nothing")) == errors.UNKNOWN_METHOD
    )
    # update-status is a PUT on the platform.
    answer = sandbox_server.api("POST", "public/exchanger/order/update-status", json={})
    assert error_code(answer) == errors.UNKNOWN_METHOD


def test_order_get_and_its_payment_view_hiding_payout_details(sandbox_server):
    data = sandbox_server.data("POST", "public/exchanger/order/create", json=btc_order())
    params = {"orderUID": data["uid"], "orderSecret": data["secret"]}
    order = sandbox_server.data("GET", "public/exchanger/order/get", params=params)["order"]
    assert order["_id"] == data["_id"] and order["status"] == "waitPayment"
    assert order["toValues"][0]["value"] == "TMerchantPayoutWa11etSandboxDemoXq"
    assert order["route"]["from"]["xml"] == "BTC" and order["expiresAt"] > order["createdAt"]
    payment = sandbox_server.data(
        "GET", "public/exchanger/order/get", params={**params, "type": "payment"}
    )
    assert payment["order"]["toValues"] == []
    by_post = sandbox_server.data("POST", "public/exchanger/order/get", json=params)
    assert by_post["order"]["uid"] == data["uid"]


def test_order_uids_that_are_no_uid_are_not_found(sandbox_server):
    for uid in (10**30, -1, "1e3", "", None):
        answer = sandbox_server.api(
            "GET", "public/exchanger/order/get", params={"orderUID": uid, "orderSecret": "x"}
        )
        assert error_code(answer) == errors.ORDER_NOT_FOUND
        answer = sandbox_server.api(
            "POST", "sandbox/order/set-status", json={"orderUID": uid, "status": "done"}
        )
        assert error_code(answer) == errors.ORDER_NOT_FOUND


@pytest.mark.parametrize("secret", ["wrong", "", None])
def test_order_get_with_a_wrong_secret_gives_no_hint(sandbox_server, secret):
    data = sandbox_server.data("POST", "public/exchanger/order/create", json=btc_order())
    wrong = sandbox_server.api(
        "GET", "public/exchanger/order/get", params={"orderUID": data["uid"], "orderSecret": secret}
    )
    missing = sandbox_server.api(
        "GET",
        "public/exchanger/order/get",
        params={"orderUID": 999999, "orderSecret": data["secret"]},
    )
    assert error_code(wrong) == error_code(missing) == errors.ORDER_NOT_FOUND
    assert wrong["error"]["message"] == missing["error"]["message"]


def test_update_status_allows_only_the_clients_changes(sandbox_server):
    data = sandbox_server.data("POST", "public/exchanger/order/create", json=btc_order())
    body = {"orderUID": data["uid"], "orderSecret": data["secret"]}
    refused = sandbox_server.api(
        "PUT", "public/exchanger/order/update-status", json={**body, "status": "done"}
    )
    assert error_code(refused) == errors.STATUS_CHANGE_NOT_ALLOWED
    paid = sandbox_server.data(
        "PUT", "public/exchanger/order/update-status", json={**body, "status": "inProgress"}
    )
    assert paid == {"ok": 1, "oldStatus": "waitPayment", "newStatus": "inProgress"}
    late_cancel = sandbox_server.api(
        "PUT", "public/exchanger/order/update-status", json={**body, "status": "deleted"}
    )
    assert error_code(late_cancel) == errors.STATUS_CHANGE_NOT_ALLOWED
    wrong = sandbox_server.api(
        "PUT",
        "public/exchanger/order/update-status",
        json={**body, "orderSecret": "x" * 24, "status": "deleted"},
    )
    assert error_code(wrong) == errors.ORDER_NOT_FOUND
    assert sandbox_server.orders()[data["uid"]]["status"] == "inProgress"
