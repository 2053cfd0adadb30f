"""The sandbox's variants where the docs are silent: each switchable, each checked."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import btc_order


def create(sandbox_server, **changes):
    return sandbox_server.data("POST", "public/exchanger/order/create/", json=btc_order(**changes))


def status(sandbox_server, created):
    return sandbox_server.orders()[created["uid"]]["status"]


def test_orders_start_in_new_unless_skip_preview_is_sent_and_honoured(sandbox_server):
    # The default, as a real site most likely does: the payer confirms first.
    assert status(sandbox_server, create(sandbox_server, skipPreview=None)) == "new"
    assert status(sandbox_server, create(sandbox_server, skipPreview=False)) == "new"
    assert status(sandbox_server, create(sandbox_server, skipPreview=True)) == "waitPayment"
    sandbox_server.set_faults(skip_preview="ignored")
    assert status(sandbox_server, create(sandbox_server, skipPreview=True)) == "new"
    sandbox_server.set_faults(start_status="waitPayment")
    assert status(sandbox_server, create(sandbox_server, skipPreview=None)) == "waitPayment"


@pytest.mark.parametrize(
    ("variant", "check"),
    [
        ({}, lambda d: "hash=" in d["payload"] and d["url"].endswith("/ipn")),
        ({"ipn_checksum_field": "sign"}, lambda d: "&sign=" in d["payload"]),
        (
            {"ipn_checksum_in": "query", "ipn_checksum_field": "signature"},
            lambda d: (
                "signature" in parse_qs(urlsplit(d["url"]).query)
                and "signature" not in d["payload"]
            ),
        ),
        (
            {"ipn_encoding": "json"},
            lambda d: isinstance(json.loads(d["payload"])["orderUID"], int),
        ),
        ({"ipn_amounts": "exponent"}, lambda d: "e" in parse_qs(d["payload"])["inAmount"][0]),
        (
            {"ipn_amounts": "zeros"},
            lambda d: parse_qs(d["payload"])["outAmount"][0].endswith("0000"),
        ),
    ],
)
def test_each_ipn_variant_is_sent_as_set(sandbox_server, receiver, variant, check):
    sandbox_server.set_faults(**variant)
    created = create(sandbox_server, ipnUrl=f"{receiver.url}/ipn")
    sandbox_server.set_status(created["uid"], "inProgress")
    sandbox_server.wait_ipns()
    (delivery,) = sandbox_server.deliveries(created["uid"])
    assert check(delivery)


def test_an_unknown_variant_value_is_refused(sandbox_server):
    answer = sandbox_server.api("POST", "sandbox/faults", json={"ipn_checksum_in": "header"})
    assert (
        answer["success"] is False
        and "ipn_checksum_in must be one of" in answer["error"]["message"]
    )
