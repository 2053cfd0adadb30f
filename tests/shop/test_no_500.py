"""No 500 for any input: every route of the shop, with odd path values, queries and bodies."""

import random

import pytest

from tests.helpers import ODD_VALUES, place_order


def odd_values(rng, count):
    return [rng.choice(ODD_VALUES) for _ in range(count)]


@pytest.fixture
def merchant(app):
    """The test client, logged in to the console (CSRF is off in this app)."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["console"] = True
    return client


def test_every_route_survives_odd_input(app, merchant):
    place_order(merchant)
    rng = random.Random(3)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    tried = 0
    for rule in rules:
        for _ in range(6):
            values = dict(zip(rule.arguments, odd_values(rng, len(rule.arguments)), strict=True))
            try:
                path = rule.build(values, append_unknown=False)[1]
            except ValueError:
                continue  # a value the rule's converter refuses is no URL to try
            query = {
                name: rng.choice(ODD_VALUES)
                for name in ("page", "state", "q", "date_from", "status", "next", "days")
            }
            form = {
                name: rng.choice(ODD_VALUES)
                for name in ("product_id", "quantity", "checkout_key", "lang", "note", "password")
            }
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                answer = merchant.open(path, method=method, query_string=query, data=form)
                tried += 1
                assert answer.status_code < 500, (method, path, query, form, answer.status_code)
    assert tried > 6 * len(rules)


JSON_BODIES = ["xx", "[1, 2]", '"text"', "null", '{"\\ud800x": "1"}', '{"a": {"b": [1]}}']


def test_every_route_survives_json_bodies_that_are_not_what_it_expects(app, merchant):
    place_order(merchant)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    paths = {"/no-such-page", "/ipn"}
    for rule in rules:
        values = dict.fromkeys(rule.arguments, "x")
        try:
            paths.add(rule.build(values, append_unknown=False)[1])
        except ValueError:
            continue
    for path in sorted(paths):
        for method in ("GET", "POST", "PUT"):
            for body in JSON_BODIES:
                answer = merchant.open(
                    path, method=method, data=body, content_type="application/json"
                )
                assert answer.status_code < 500, (method, path, body, answer.status_code)
