"""Merchant authorisation: apikey, hash and a strictly increasing time, or 40301."""

import hashlib
import json
import time

import pytest

from sandbox import errors
from tests.conftest import SandboxServer
from tests.helpers import BTC_ROUTE, btc_order

KEY, SECRET = "merchant-key", "merchant-secret"


@pytest.fixture
def signed_sandbox(tmp_path):
    server = SandboxServer(str(tmp_path / "sandbox.sqlite"), API_KEYS={KEY: SECRET})
    yield server
    server.stop()


def sign(params, secret=SECRET):
    """exchanger-api.md section 1, written out here independently of the sandbox's code."""
    compact = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(
        (hashlib.sha256(compact.encode()).hexdigest() + secret).encode()
    ).hexdigest()


def post_signed(server, path, body, key=KEY, secret=SECRET):
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    headers = {"apikey": key, "hash": sign(body, secret), "Content-Type": "application/json"}
    return server.api("POST", path, data=text.encode(), headers=headers)


def get_signed(server, path, query):
    query = {k: str(v) for k, v in query.items()}
    return server.api("GET", path, params=query, headers={"apikey": KEY, "hash": sign(query)})


def code(answer):
    return None if answer["success"] else answer["error"]["errorCode"]


def test_anonymous_calls_are_refused_when_keys_are_configured(signed_sandbox):
    assert code(signed_sandbox.api("GET", "public/exchanger/route/get")) == errors.NOT_AUTHORISED
    answer = signed_sandbox.api("POST", "public/exchanger/order/create", json=btc_order())
    assert code(answer) == errors.NOT_AUTHORISED


def test_a_correctly_signed_write_and_read_are_accepted(signed_sandbox):
    now = int(time.time() * 1000)
    created = post_signed(
        signed_sandbox, "public/exchanger/order/create", {**btc_order(), "time": now}
    )
    assert created["success"], created
    read = get_signed(
        signed_sandbox, "public/exchanger/route/get/one", {"id": BTC_ROUTE, "time": now + 1}
    )
    assert read["success"], read


def test_time_must_increase_on_every_call(signed_sandbox):
    now = int(time.time() * 1000)
    assert code(get_signed(signed_sandbox, "public/exchanger/route/get", {"time": now})) is None
    replay = get_signed(signed_sandbox, "public/exchanger/route/get", {"time": now})
    older = get_signed(signed_sandbox, "public/exchanger/route/get", {"time": now - 5})
    assert code(replay) == code(older) == errors.NOT_AUTHORISED
    assert code(get_signed(signed_sandbox, "public/exchanger/route/get", {"time": now + 1})) is None


@pytest.mark.parametrize(
    "tamper",
    ["wrong_secret", "unknown_key", "no_time", "non_numeric_time", "non_ascii_hash"],
)
def test_bad_signatures_get_40301(signed_sandbox, tamper):
    body = {"id": BTC_ROUTE, "time": int(time.time() * 1000)}
    key, secret = KEY, SECRET
    if tamper == "wrong_secret":
        secret = "guess"
    elif tamper == "unknown_key":
        key = "someone-else"
    elif tamper == "no_time":
        body.pop("time")
    elif tamper == "non_numeric_time":
        body["time"] = "soon"
    if tamper == "non_ascii_hash":
        answer = signed_sandbox.api(
            "POST",
            "public/exchanger/route/get/one",
            json=body,
            headers={"apikey": KEY, "hash": "é" * 64},
        )
    else:
        answer = post_signed(signed_sandbox, "public/exchanger/route/get/one", body, key, secret)
    assert code(answer) == errors.NOT_AUTHORISED


def test_a_forged_request_does_not_burn_the_merchants_nonce(signed_sandbox):
    future = int(time.time() * 1000) + 10_000
    forged = post_signed(
        signed_sandbox, "public/exchanger/route/get", {"time": future}, secret="guess"
    )
    assert code(forged) == errors.NOT_AUTHORISED
    honest = get_signed(
        signed_sandbox, "public/exchanger/route/get", {"time": int(time.time() * 1000)}
    )
    assert code(honest) is None
