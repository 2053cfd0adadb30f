"""Fault injection: each kind, switched at run time and at start, seeded."""

import hashlib
from urllib.parse import parse_qsl

import pytest
import requests

from sandbox import errors
from tests.conftest import SandboxServer
from tests.helpers import btc_order

SECRET = "the-orders-own-secret"


def docs_checksum(fields, secret):
    names = ("orderId", "newStatus", "inAmount", "outAmount", "xml_from", "xml_to", "timestamp")
    return hashlib.sha256((":".join(fields[n] for n in names) + ":" + secret).encode()).hexdigest()


def create(server, receiver, secret=SECRET):
    payload = btc_order(ipnUrl=f"{receiver.url}/ipn", ipnSecret=secret)
    return server.data("POST", "public/exchanger/order/create", json=payload)


def received(receiver):
    return [dict(parse_qsl(r["body"])) for r in receiver.received]


def test_faults_are_off_by_default_and_shown_by_get(sandbox_server):
    faults = sandbox_server.data("GET", "sandbox/faults")["faults"]
    assert faults["ipn_drop"] == faults["api_error"] == 0
    assert faults["ipn_delay"] == [0, 0]


@pytest.mark.parametrize(
    "bad",
    [
        {"ipn_drop": 1.5},
        {"ipn_drop": "half"},
        {"ipn_delay": [3, 1]},
        {"ipn_delay": [0, 600]},
        {"api_error_kinds": ["teapot"]},
        {"seed": 1.5},
        {"no_such_fault": 1},
    ],
)
def test_nonsense_settings_are_refused_and_change_nothing(sandbox_server, bad):
    before = sandbox_server.data("GET", "sandbox/faults")
    answer = sandbox_server.api("POST", "sandbox/faults", json=bad)
    assert answer["success"] is False and answer["error"]["errorCode"] == errors.BAD_REQUEST
    assert next(iter(bad)) in answer["error"]["message"]
    assert sandbox_server.data("GET", "sandbox/faults") == before


def test_dropped_ipns_are_logged_but_never_sent(sandbox_server, receiver):
    sandbox_server.set_faults(ipn_drop=1)
    order = create(sandbox_server, receiver)
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.wait_ipns()
    assert receiver.received == []
    assert [d["outcome"] for d in sandbox_server.deliveries(order["uid"])] == ["dropped"]


def test_duplicated_ipns_arrive_twice_identical(sandbox_server, receiver):
    sandbox_server.set_faults(ipn_duplicate=1)
    order = create(sandbox_server, receiver)
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.wait_ipns()
    first, second = received(receiver)
    assert first == second and first["hash"] == docs_checksum(first, SECRET)


def test_delays_make_ipns_arrive_out_of_order(sandbox_server, receiver):
    order = create(sandbox_server, receiver)
    sandbox_server.set_faults(ipn_delay=[0.4, 0.4])
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.set_faults(ipn_delay=[0, 0])
    sandbox_server.set_status(order["uid"], "done")
    sandbox_server.wait_ipns()
    statuses = [f["newStatus"] for f in received(receiver)]
    assert statuses == ["done", "inProgress"]
    newest, older = received(receiver)
    assert int(newest["timestamp"]) > int(older["timestamp"])


def test_forged_ipns_fail_the_checksum_or_name_another_order(sandbox_server, receiver):
    other = create(sandbox_server, receiver, secret="another-orders-secret")
    sandbox_server.set_faults(ipn_forge=1, seed=2)
    order = create(sandbox_server, receiver)
    kinds = set()
    for status in ("inProgress", "hold") * 3:
        sandbox_server.set_status(order["uid"], status)
    sandbox_server.wait_ipns()
    for delivery in sandbox_server.deliveries(order["uid"]):
        fields = dict(parse_qsl(delivery["payload"]))
        if delivery["kind"] == "normal":
            assert fields["hash"] == docs_checksum(fields, SECRET)
            continue
        kinds.add(delivery["kind"])
        assert fields["newStatus"] == "done"
        if delivery["kind"] == "forged:other_order":
            # Signed with this order's secret, but naming the other order: the other
            # order's secret (which the shop would use) does not verify it.
            assert fields["orderId"] == other["_id"]
            assert fields["hash"] != docs_checksum(fields, "another-orders-secret")
        else:
            assert fields["hash"] != docs_checksum(fields, SECRET)
    assert kinds == {"forged:wrong_hash", "forged:other_order", "forged:altered_amount"}


def test_faults_set_at_start_through_configuration(tmp_path):
    server = SandboxServer(str(tmp_path / "s.sqlite"), FAULTS={"ipn_drop": 0.5, "seed": 3})
    try:
        faults = server.data("GET", "sandbox/faults")["faults"]
        assert faults["ipn_drop"] == 0.5 and faults["seed"] == 3
    finally:
        server.stop()


def test_the_same_seed_gives_the_same_faults(sandbox_server, receiver):
    outcomes = []
    for _ in range(2):
        sandbox_server.set_faults(ipn_drop=0.5, seed=42)
        order = create(sandbox_server, receiver)
        for status in ("inProgress", "hold") * 4:
            sandbox_server.set_status(order["uid"], status)
        dropped = [d["outcome"] == "dropped" for d in sandbox_server.deliveries(order["uid"])]
        outcomes.append(dropped)
    assert outcomes[0] == outcomes[1] and any(outcomes[0]) and not all(outcomes[0])
    sandbox_server.wait_ipns()


def raw_call(server, timeout=10):
    return requests.get(f"{server.url}/service/api/v1/public/exchanger/route/get", timeout=timeout)


@pytest.mark.parametrize("kind", ["envelope", "antiflood", "http500", "html", "badjson"])
def test_api_errors_of_each_kind(sandbox_server, kind):
    sandbox_server.set_faults(api_error=1, api_error_kinds=[kind])
    response = raw_call(sandbox_server)
    if kind == "envelope":
        assert response.json()["error"]["errorCode"] == errors.MAINTENANCE
    elif kind == "antiflood":
        error = response.json()["error"]
        assert error["errorCode"] == errors.ANTI_FLOOD and error["object"]["time"] == 1
    elif kind == "http500":
        assert response.status_code == 500
    elif kind == "html":
        assert response.status_code == 200 and response.text.startswith("<!doctype html>")
    else:
        with pytest.raises(ValueError):
            response.json()
    # The control methods themselves are never broken.
    assert sandbox_server.data("GET", "sandbox/faults")["faults"]["api_error"] == 1


def test_api_latency_pushes_an_impatient_client_past_its_timeout(sandbox_server):
    sandbox_server.set_faults(api_latency=[0.5, 0.5])
    with pytest.raises(requests.ReadTimeout):
        raw_call(sandbox_server, timeout=(2, 0.1))
    sandbox_server.set_faults()
    assert raw_call(sandbox_server, timeout=(2, 2)).status_code == 200


def test_a_hang_answers_after_the_client_gave_up_but_the_order_exists(sandbox_server):
    sandbox_server.set_faults(api_hang=1, api_hang_seconds=0.5)
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sandbox_server.url}/service/api/v1/public/exchanger/order/create",
            json=btc_order(),
            timeout=(2, 0.1),
        )
    sandbox_server.set_faults()
    # The ambiguous case a shop must handle: no answer, yet the exchanger made the order.
    assert len(sandbox_server.orders()) == 1
