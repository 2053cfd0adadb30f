"""The requisite form built from a route: labels, required, regexps, options."""

import json
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

from shop.forms import requisite_form_class

ROUTES = json.loads((Path(__file__).parents[2] / "sandbox" / "routes.json").read_text())


def route_with(fields, route_fields=()):
    return {
        "routeId": "r1",
        "from": {"fields": fields},
        "fields": list(route_fields),
        "to": {"fields": []},
    }


def validate(app, route, data):
    form_class, requisites = requisite_form_class(route)
    base = {"checkout_key": "k" * 24, "agreement": "y"}
    with app.test_request_context(method="POST", data=MultiDict({**base, **data})):
        form = form_class()
        ok = form.validate()
        return (
            ok,
            {name: field.errors for name, field in form._fields.items() if field.errors},
            requisites,
        )


def currency_field(key, index=0):
    return ROUTES["currencies"][key]["fields"][index]


VALID_AND_INVALID = [
    (currency_field("BTC"), "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "bc1q"),
    (currency_field("BTC"), "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "0xabc"),
    (currency_field("ETH"), "0x" + "aB" * 20, "0x" + "g" * 40),
    (currency_field("XRP"), "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "xrp-address"),
    (currency_field("XRP", 1), "123456", "12345678901"),
    (currency_field("CARDUSD"), "4000 0000 0000 0002", "4000-0000"),
    (currency_field("CARDUSD", 1), "JANE DOE", "Джейн"),
    (ROUTES["routeFields"]["email"], "buyer@example.com", "buyer@example"),
    (ROUTES["routeFields"]["phone"], "+1 555 123 4567", "call me"),
    (ROUTES["routeFields"]["telegram"], "@exchange_fan", "@ab"),
]


@pytest.mark.parametrize(("field", "good", "bad"), VALID_AND_INVALID)
def test_each_demo_regexp_accepts_good_and_rejects_bad_values(app, field, good, bad):
    route = route_with([field])
    assert validate(app, route, {"fromValues_0": good})[0] is True
    ok, errors, _ = validate(app, route, {"fromValues_0": bad})
    assert not ok and errors["fromValues_0"] == [field["regexp_error"]]


def test_values_are_trimmed_before_the_check(app):
    ok, _, _ = validate(
        app, route_with([ROUTES["routeFields"]["email"]]), {"fromValues_0": "  a@b.co  "}
    )
    assert ok


def test_required_and_optional_fields(app):
    route = route_with([currency_field("XRP"), currency_field("XRP", 1)])
    ok, errors, _ = validate(app, route, {"fromValues_0": "", "fromValues_1": ""})
    assert not ok and list(errors) == ["fromValues_0"]
    assert "required" in errors["fromValues_0"][0]


def test_a_select_offers_only_the_routes_options(app):
    route = route_with([currency_field("USDTMULTI")])
    form_class, _ = requisite_form_class(route)
    with app.test_request_context():
        choices = [choice.value for choice in form_class().fromValues_0.choices]
    assert choices == ["", "erc20", "bep20", "polygon"]
    assert validate(app, route, {"fromValues_0": "bep20"})[0]
    assert not validate(app, route, {"fromValues_0": "tron"})[0]
    assert not validate(app, route, {"fromValues_0": ""})[0]


def test_the_agreement_and_checkout_key_are_required(app):
    route = route_with([])
    form_class, _ = requisite_form_class(route)
    with app.test_request_context(method="POST", data={}):
        form = form_class()
        assert not form.validate()
        assert set(form.errors) == {"agreement", "checkout_key"}


def test_requisites_map_form_fields_back_to_route_field_ids(app):
    route = route_with([currency_field("BTC")], [ROUTES["routeFields"]["email"]])
    _, _, requisites = validate(app, route, {})
    assert [(r.form_name, r.group, r.field_id) for r in requisites] == [
        ("fromValues_0", "fromValues", "65f0c0ffee00000000000d01"),
        ("routeValues_0", "routeValues", "65f0c0ffee00000000000e01"),
    ]


def test_a_regexp_python_cannot_read_is_left_to_the_exchanger(app):
    field = {"_id": "f1", "name": "Odd", "regexp": "(?<=x", "required": True}
    assert validate(app, route_with([field]), {"fromValues_0": "anything"})[0]


def test_overlong_values_are_refused(app):
    field = {"_id": "f1", "name": "Memo", "regexp": "", "required": False}
    ok, errors, _ = validate(app, route_with([field]), {"fromValues_0": "x" * 300})
    assert not ok and "fromValues_0" in errors
