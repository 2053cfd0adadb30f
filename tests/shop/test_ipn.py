"""POST /ipn: verification by checksum alone, the status rules, and no 500 for any input."""

import hashlib
import json
import random
import re
import threading
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from shop import ipn
from tests.conftest import BOTH_ENGINES
from tests.helpers import place_order, query

pytestmark = BOTH_ENGINES

NAMES = ("orderId", "newStatus", "inAmount", "outAmount", "xml_from", "xml_to", "timestamp")


def docs_hash(fields, secret):
    return hashlib.sha256((":".join(fields[n] for n in NAMES) + ":" + secret).encode()).hexdigest()


@pytest.fixture
def order(app, client):
    place_order(client)
    return rows(app, "SELECT * FROM orders")[0]


def rows(app, sql, *args):
    return query(app.config, sql, *args)


def fields_for(order, status="inProgress", ts=1_800_000_000_000, out=None, secret=None, **changes):
    fields = {
        "orderUID": str(order["exchanger_uid"]),
        "orderId": order["exchanger_id"],
        "newStatus": status,
        "inAmount": order["send_amount"],
        "outAmount": out or order["price"],
        "xml_from": "BTC",
        "xml_to": "USDTTRC20",
        "timestamp": str(ts),
    }
    fields.update(changes)
    fields["hash"] = docs_hash(fields, secret or order["ipn_secret"])
    return fields


def post(client, fields, content_type="application/x-www-form-urlencoded"):
    body = fields if isinstance(fields, (bytes, str)) else urlencode(fields)
    return client.post("/ipn", data=body, content_type=content_type)


def status_of(app, order):
    return rows(app, "SELECT status, review_reason FROM orders WHERE id = ?", order["id"])[0]


def test_the_docs_own_checksum_vector():
    fields = dict(
        zip(
            NAMES,
            (
                "5d8e6002b80b7b4cd75a6424",
                "inProgress",
                "2",
                "317.42",
                "ETH",
                "WMZ",
                "1571328406072",
            ),
            strict=True,
        )
    )
    expected = "af3acf947e6f0e0f2c267e300b8582e504dba12d1f2d058652b7414163c09f48"
    assert ipn.checksum(fields, "SECRET123") == expected


def test_a_valid_ipn_is_applied_logged_and_recorded_in_history(app, client, order):
    answer = post(client, fields_for(order, "inProgress"))
    assert answer.status_code == 200
    assert status_of(app, order)["status"] == "inProgress"
    history = rows(app, "SELECT * FROM status_history WHERE order_id = ? ORDER BY id", order["id"])
    assert [(h["new_status"], h["source"]) for h in history][-1] == ("inProgress", "ipn")
    assert history[-1]["provider_ts"] == 1_800_000_000_000
    (log,) = rows(app, "SELECT * FROM ipn_log")
    assert (
        log["outcome"] == "applied" and log["order_id"] == order["id"] and "orderId=" in log["body"]
    )


@pytest.mark.parametrize("hash_field", ["hash", "sign", "signature"])
def test_the_checksum_in_any_field_name_and_hex_case(client, app, order, hash_field):
    fields = fields_for(order, "inProgress")
    given = fields.pop("hash").upper()
    assert post(client, {**fields, hash_field: given}).status_code == 200
    assert status_of(app, order)["status"] == "inProgress"


@pytest.mark.parametrize(
    "forgery",
    [
        "wrong_hash",
        "unknown_order",
        "other_secret",
        "altered_amount",
        "other_uid",
        "other_currency",
    ],
)
def test_forgeries_get_403_change_nothing_and_are_logged(app, client, order, forgery):
    fields = fields_for(order, "done")
    if forgery == "wrong_hash":
        fields["hash"] = "0" * 64
    elif forgery == "unknown_order":
        fields = fields_for(order, "done", orderId="aaaaaaaaaaaaaaaaaaaaaaaa")
    elif forgery == "other_secret":
        fields = fields_for(order, "done", secret="someone-elses-secret")
    elif forgery == "altered_amount":
        fields["outAmount"] = "9999"
    elif forgery == "other_uid":
        fields = fields_for(order, "done", orderUID="1")
    else:
        fields = fields_for(order, "done", xml_from="ETH")
    answer = post(client, fields)
    assert answer.status_code == 403 and answer.get_data(as_text=True) == "Forbidden\n"
    assert status_of(app, order)["status"] == "new"
    (log,) = rows(app, "SELECT * FROM ipn_log")
    assert log["outcome"] == "rejected" and log["reason"]


def test_the_same_ipn_twice_changes_once(app, client, order):
    fields = fields_for(order, "inProgress")
    assert post(client, fields).status_code == 200
    assert post(client, fields).status_code == 200
    history = rows(app, "SELECT * FROM status_history WHERE source = 'ipn'")
    assert len(history) == 1
    assert [r["outcome"] for r in rows(app, "SELECT outcome FROM ipn_log ORDER BY id")] == [
        "applied",
        "duplicate",
    ]


def test_an_older_ipn_after_a_newer_one_is_stale(app, client, order):
    post(client, fields_for(order, "inProgressPayout", ts=2_000))
    assert post(client, fields_for(order, "inProgress", ts=1_000)).status_code == 200
    assert status_of(app, order)["status"] == "inProgressPayout"
    assert rows(app, "SELECT outcome FROM ipn_log ORDER BY id")[-1]["outcome"] == "stale"


def test_a_refund_after_done_follows_the_exchanger_and_goes_to_review(app, client, order):
    post(client, fields_for(order, "done", ts=2_000))
    assert status_of(app, order) == {"status": "done", "review_reason": None}
    assert post(client, fields_for(order, "returned", ts=3_000)).status_code == 200
    # Nothing may count the order as paid any more, and a person must look: goods may be gone.
    assert status_of(app, order) == {
        "status": "returned",
        "review_reason": "the exchanger reported returned after done",
    }
    assert client.get(f"/orders/{order['token']}/status").get_json()["state"] == "review"
    assert (
        rows(app, "SELECT outcome FROM ipn_log ORDER BY id DESC LIMIT 1")[0]["outcome"] == "review"
    )


def test_a_late_earlier_step_after_a_final_state_changes_and_flags_nothing(app, client, order):
    post(client, fields_for(order, "deleted", ts=2_000))
    # Newer by its timestamp, but the exchanger's finals are terminal: an earlier step, late.
    assert post(client, fields_for(order, "waitPayment", ts=3_000)).status_code == 200
    assert status_of(app, order) == {"status": "deleted", "review_reason": None}
    assert (
        rows(app, "SELECT outcome FROM ipn_log ORDER BY id DESC LIMIT 1")[0]["outcome"] == "stale"
    )


def test_done_with_less_than_the_price_goes_to_review_not_paid(app, client, order):
    post(client, fields_for(order, "done", out="1.00"))
    state = status_of(app, order)
    assert state["status"] == "done" and "1.00 of 12.50" in state["review_reason"]
    status = client.get(f"/orders/{order['token']}/status").get_json()
    assert status["state"] == "review"


def test_concurrent_conflicting_ipns_end_consistent(app, client, order):
    bodies = [
        urlencode(fields_for(order, s, ts=t)) for s, t in (("inProgress", 1_000), ("hold", 2_000))
    ]
    barrier = threading.Barrier(2)

    def send(body):
        local = app.test_client()
        barrier.wait()
        assert (
            local.post(
                "/ipn", data=body, content_type="application/x-www-form-urlencoded"
            ).status_code
            == 200
        )

    threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Whatever order they ran in, the newer notification (hold) wins and history agrees.
    assert status_of(app, order)["status"] == "hold"
    last = rows(app, "SELECT new_status FROM status_history ORDER BY id DESC LIMIT 1")[0]
    assert last["new_status"] == "hold"


MALFORMED = [
    ("missing fields", b"orderId=abc&newStatus=done", None),
    ("json", b'{"orderId": "abc"}', "application/json"),
    ("json list", b'[{"orderId": "abc"}]', "application/json"),
    ("json nan", b'{"orderUID": NaN}', "application/json"),
    ("deep json", b'{"a":' * 3000, "application/json"),
    ("no content type", b"orderId=abc", ""),
    ("bad utf-8", b"orderId=\xff\xfe&newStatus=done", None),
    ("non-ascii hash", "hash=" + "é" * 64, None),
    ("huge", b"orderId=" + b"a" * 40_000, None),
    ("not a form", b"&&&===", None),
]


@pytest.mark.parametrize(("name", "body", "content_type"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_bodies_get_400_and_are_logged(app, client, order, name, body, content_type):
    answer = post(
        client,
        body,
        content_type if content_type is not None else "application/x-www-form-urlencoded",
    )
    assert answer.status_code == 400
    assert rows(app, "SELECT outcome FROM ipn_log")[0]["outcome"] == "rejected"
    assert len(rows(app, "SELECT body FROM ipn_log")[0]["body"]) <= app.config["IPN_MAX_BYTES"]


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": "soon"},
        {"orderUID": "-1"},
        {"orderUID": "9" * 30},
        {"timestamp": "9" * 30},
        {"inAmount": "1e999"},
        {"inAmount": "-2"},
        {"outAmount": "0x10"},
        {"outAmount": "NaN"},
        {"timestamp": "1.5"},
        {"newStatus": "paid"},
        {"hash": "xyz"},
    ],
)
def test_malformed_values_get_400_even_when_signed(app, client, order, changes):
    fields = (
        fields_for(order, "done", **changes) if "hash" not in changes else fields_for(order, "done")
    )
    fields.update(changes if "hash" in changes else {})
    assert post(client, fields).status_code == 400
    assert status_of(app, order)["status"] == "new"


def test_a_repeated_field_is_malformed(client, order):
    body = urlencode(fields_for(order, "done")) + "&newStatus=inProgress"
    assert post(client, body).status_code == 400


def test_no_input_gives_a_500(app, client, order):
    """Fuzz: random bytes, random field soups and mutated valid IPNs."""
    rng = random.Random(1)
    valid = fields_for(order, "inProgress")
    alphabet = "abc=&%+:;é\x00\\'\"<>0123456789"
    for _ in range(300):
        choice = rng.random()
        if choice < 0.3:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        elif choice < 0.6:
            body = "&".join(
                f"{rng.choice(list(valid) + ['x'])}={''.join(rng.choices(alphabet, k=rng.randrange(0, 30)))}"
                for _ in range(rng.randrange(0, 12))
            )
        else:
            mutated = dict(valid)
            key = rng.choice(list(mutated))
            mutated[key] = "".join(rng.choices(alphabet, k=rng.randrange(0, 80)))
            body = urlencode(mutated)
        assert post(client, body).status_code in (200, 400, 403)
    assert status_of(app, order)["status"] in ("new", "inProgress")


def test_nothing_happens_on_get(client):
    assert client.get("/ipn").status_code == 405


def claim_lost_draft(app, client):
    """A draft whose order/create answer was lost, then the exchanger's first IPN naming it."""
    place_order_lost(app, client)
    draft = rows(app, "SELECT * FROM orders")[0]
    assert draft["status"] == "draft" and draft["exchanger_id"] is None
    fields = {
        "orderUID": "10999",
        "orderId": "bbbbbbbbbbbbbbbbbbbbbbbb",
        "newStatus": "waitPayment",
        "inAmount": draft["send_amount"],
        "outAmount": draft["price"],
        "xml_from": "BTC",
        "xml_to": "USDTTRC20",
        "timestamp": "1800000000000",
    }
    fields["hash"] = docs_hash(fields, draft["ipn_secret"])
    assert post(client, fields).status_code == 200


def test_an_ipn_for_an_order_whose_create_answer_was_lost_finds_it(app, client):
    claim_lost_draft(app, client)
    found = rows(app, "SELECT * FROM orders")[0]
    assert found["exchanger_id"] == "bbbbbbbbbbbbbbbbbbbbbbbb" and found["exchanger_uid"] == 10999
    assert found["status"] == "waitPayment"


def place_order_lost(app, client):
    """Check out while order/create times out after the exchanger acted."""
    from tests.helpers import BTC_ROUTE, submit_requisites

    client.post("/cart/add", data={"product_id": "mug", "quantity": "1"})
    page = client.get(f"/checkout/{BTC_ROUTE}").get_data(as_text=True)
    exchanger = app.extensions["exchanger"]
    original = exchanger.create_order

    def times_out(payload):
        from shop.exchanger import ExchangerUnavailable

        raise ExchangerUnavailable("order/create: ReadTimeout", may_have_acted=True)

    exchanger.create_order = times_out
    try:
        answer = submit_requisites(client, page)
    finally:
        exchanger.create_order = original
    assert answer.status_code == 503


# -- every way the platform might send an IPN: the docs are silent on these -----------------
# Each variant is built here from the docs' formula alone, not by the shop's or the sandbox's
# code, so no guess is tested only against itself.


def spelled(value, spelling):
    """The same number as the platform might write it."""
    number = Decimal(value)
    if spelling == "zeros":
        return f"{number:f}" + ("000" if "." in f"{number:f}" else ".000")
    if spelling == "exponent":
        return f"{number:e}".replace("e", "E") if number >= 1 else f"{number:e}"
    return value


def variant_ipn(
    order, status, *, name="hash", where="body", encoding="form", spelling="plain", secret=None
):
    """(path, body, content type) of an IPN sent in one variant."""
    raw = {
        "orderUID": str(order["exchanger_uid"]),
        "orderId": order["exchanger_id"],
        "newStatus": status,
        "inAmount": spelled(order["send_amount"], spelling),
        "outAmount": spelled(order["price"], spelling),
        "xml_from": "BTC",
        "xml_to": "USDTTRC20",
        "timestamp": spelled("1800000000000", spelling),
    }
    digest = docs_hash(raw, secret or order["ipn_secret"])
    path = f"/ipn?{urlencode({name: digest})}" if where == "query" else "/ipn"
    signed = {**raw, name: digest} if where == "body" else raw
    if encoding == "json":
        numbers = ("orderUID", "inAmount", "outAmount", "timestamp")
        # Numbers as bare JSON numbers in their own spelling, as a Node sender would write them.
        body = "{" + ",".join(
            f'"{k}":{v if k in numbers else json.dumps(v)}' for k, v in signed.items()
        )
        body += ',"toValues":[{"key":"k","name":"Wallet","value":"T..."}]}'
        return path, body, "application/json"
    return (
        path,
        urlencode({**signed, "toValues[0][key]": "k", "toValues[0][value]": "T..."}),
        ("application/x-www-form-urlencoded"),
    )


VARIANTS = [
    {"name": name, "where": where} for name in ipn.CHECKSUM_NAMES for where in ("body", "query")
] + [
    {"encoding": encoding, "spelling": spelling, "where": where}
    for encoding in ("form", "json")
    for spelling in ("plain", "zeros", "exponent")
    for where in ("body", "query")
]


def variant_id(variant):
    return "-".join(str(v) for v in variant.values())


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_variant_is_verified_applied_and_logged(app, client, order, variant):
    path, body, content_type = variant_ipn(order, "done", **variant)
    answer = client.post(path, data=body, content_type=content_type)
    assert answer.status_code == 200, rows(app, "SELECT reason FROM ipn_log")
    assert status_of(app, order) == {"status": "done", "review_reason": None}
    (log,) = rows(app, "SELECT * FROM ipn_log")
    assert log["outcome"] == "applied"
    assert log["checksum_field"] == f"{variant.get('where')}:{variant.get('name', 'hash')}"


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_variant_forged_is_rejected_and_says_what_arrived(app, client, order, variant):
    path, body, content_type = variant_ipn(order, "done", secret="not-the-secret", **variant)
    answer = client.post(path, data=body, content_type=content_type)
    assert answer.status_code == 403 and answer.get_data(as_text=True) == "Forbidden\n"
    assert status_of(app, order)["status"] == "new"
    (log,) = rows(app, "SELECT * FROM ipn_log")
    name = variant.get("name", "hash")
    assert log["outcome"] == "rejected" and log["checksum_field"] is None
    assert f"{variant['where']}:{name}" in log["reason"] and "body:orderId" in log["reason"]
    # Names only: neither the checksum sent nor the order's secret is in the reason.
    assert order["ipn_secret"] not in log["reason"]
    assert not re.search(r"[0-9a-f]{64}", log["reason"])


def test_a_checksum_under_an_unknown_name_is_refused_and_the_log_names_the_fields(
    app, client, order
):
    path, body, content_type = variant_ipn(order, "done", name="digest")
    assert client.post(path, data=body, content_type=content_type).status_code == 400
    (log,) = rows(app, "SELECT reason FROM ipn_log")
    assert "no checksum" in log["reason"] and "body:digest" in log["reason"]
    assert status_of(app, order)["status"] == "new"


def test_the_same_amount_spelled_differently_is_not_the_signed_one(app, client, order):
    """The checksum covers the raw strings: re-spelling a signed amount breaks it."""
    path, body, content_type = variant_ipn(order, "done")
    respelled = body.replace(
        urlencode({"outAmount": order["price"]}), urlencode({"outAmount": order["price"] + "0"})
    )
    assert respelled != body
    assert client.post(path, data=respelled, content_type=content_type).status_code == 403


def test_ipn_inspect_shows_which_field_held_the_checksum_and_whether_it_verified(
    app, client, order
):
    runner = app.test_cli_runner()
    assert "No IPN has been received yet." in runner.invoke(args=["ipn", "inspect"]).output
    path, body, content_type = variant_ipn(order, "inProgress", name="sign", where="query")
    client.post(path, data=body, content_type=content_type)
    path, body, content_type = variant_ipn(order, "done", secret="forged", encoding="json")
    client.post(path, data=body, content_type=content_type)
    output = runner.invoke(args=["ipn", "inspect"]).output
    newest, older = output.split("\n#")
    assert "rejected  NOT verified" in newest and "content type: application/json" in newest
    assert "checksum tried: body:hash" in newest and "arrived: body:orderUID" in newest
    assert "applied   verified (query:sign)" in older
    assert order["ipn_secret"] not in output


def test_a_repeated_field_in_a_signed_json_ipn_is_malformed(app, client, order):
    path, body, content_type = variant_ipn(order, "done", encoding="json")
    repeated = body[:-1] + ',"newStatus":"inProgress"}'
    assert client.post(path, data=repeated, content_type=content_type).status_code == 400
    assert client.post(path, data=body, content_type=content_type).status_code == 200
