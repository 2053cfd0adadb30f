"""The exchanger client: timeouts, retries only where safe, errors mapped, signing."""

import hashlib
import socket

import pytest
import requests

from shop.exchanger import (
    ExchangerClient,
    ExchangerRejected,
    ExchangerUnavailable,
    api_signature,
)
from tests.conftest import SandboxServer
from tests.helpers import BTC_ADDRESS_FIELD, BTC_ROUTE, btc_order


class FakeSession(requests.Session):
    """Records every request; answers from a script of responses or exceptions."""

    def __init__(self, script):
        super().__init__()
        self.script, self.calls = list(script), []

    def request(self, method, url, **kwargs):
        self.calls.append({"method": method, "url": url, **kwargs})
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        response = requests.Response()
        response.status_code, response._content = 200, step.encode()
        return response


OK_ROUTES = '{"success": true, "data": {"routes": [{"routeId": "r1"}]}}'
OK_ORDER = '{"success": true, "data": {"_id": "6650aa11bb22cc33dd44ee55", "uid": 10482, "rid": "K7", "secret": "Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4", "inAmount": 0.0021, "outAmount": 133.92}}'


def fake_client(script, **settings):
    session = FakeSession(script)
    return ExchangerClient(
        "https://exchanger.example", session=session, backoff=0, **settings
    ), session


def test_every_call_carries_connect_and_read_timeouts():
    client, session = fake_client([OK_ROUTES], timeout=(1.5, 7))
    client.routes()
    client, session2 = fake_client([OK_ORDER], timeout=(1.5, 7))
    client.create_order({"routeId": "r1"})
    for call in session.calls + session2.calls:
        assert call["timeout"] == (1.5, 7)
        assert call["allow_redirects"] is False
    assert (
        session.calls[0]["url"]
        == "https://exchanger.example/service/api/v1/public/exchanger/route/get/"
    )


def test_reads_are_retried_with_backoff_writes_never():
    timeout = requests.ReadTimeout("slow")
    client, session = fake_client([timeout, timeout, OK_ROUTES])
    assert client.routes() == [{"routeId": "r1"}]
    assert len(session.calls) == 3
    client, session = fake_client([timeout, OK_ORDER])
    with pytest.raises(ExchangerUnavailable) as caught:
        client.create_order({"routeId": "r1"})
    assert len(session.calls) == 1 and caught.value.may_have_acted is True


def test_a_read_that_keeps_failing_gives_up():
    client, session = fake_client([requests.ReadTimeout("slow")], read_retries=2)
    with pytest.raises(ExchangerUnavailable):
        client.routes()
    assert len(session.calls) == 3


@pytest.mark.parametrize(
    "answer",
    [
        "<html>Bad gateway</html>",
        '{"success": true}',
        '{"success": "yes", "data": {}}',
        "[]",
        '{"success": true, "data": {"_id": "x", "uid": "10; DROP", "secret": "s", "inAmount": 1, "outAmount": 1}}',
        '{"success": true, "data": {"_id": "x", "uid": 1, "secret": "../../evil", "inAmount": 1, "outAmount": 1}}',
        '{"success": true, "data": {"_id": "x", "uid": 1, "secret": "Zp3Lq8Rt2Vb6Nw1Y", "inAmount": "NaN", "outAmount": 1}}',
    ],
)
def test_answers_that_make_no_sense_are_unavailable(answer):
    client, _ = fake_client([answer])
    with pytest.raises(ExchangerUnavailable):
        client.create_order({"routeId": "r1"})


@pytest.mark.parametrize(
    "route",
    [
        "null",
        '{"routeId": "r1", "from": {"xml": "BTC"}}',
        '{"routeId": "r1", "from": {"xml": "BTC"}, "to": []}',
        '{"from": {"xml": "BTC"}, "to": {"xml": "USDTTRC20"}}',
        '{"routeId": "r1", "from": {}, "to": {"xml": "USDTTRC20"}}',
    ],
)
def test_a_route_definition_without_its_essentials_is_unavailable(route):
    client, _ = fake_client([f'{{"success": true, "data": {{"route": {route}}}}}'], read_retries=0)
    with pytest.raises(ExchangerUnavailable):
        client.route("r1")


def test_create_parses_amounts_as_decimals():
    client, _ = fake_client([OK_ORDER])
    created = client.create_order({})
    assert str(created.in_amount) == "0.0021" and str(created.out_amount) == "133.92"
    assert created.uid == 10482 and created.id == "6650aa11bb22cc33dd44ee55"


def test_a_refused_connection_is_known_to_have_done_nothing():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ExchangerClient(f"http://127.0.0.1:{port}", timeout=(1, 1), backoff=0)
    with pytest.raises(ExchangerUnavailable) as caught:
        client.create_order(btc_order())
    assert caught.value.may_have_acted is False


def test_the_platforms_errors_are_mapped_with_code_and_field(sandbox_server):
    client = ExchangerClient(sandbox_server.url)
    bad = btc_order(fromValues=[{"key": BTC_ADDRESS_FIELD, "value": "nope"}])
    with pytest.raises(ExchangerRejected) as caught:
        client.create_order(bad)
    assert caught.value.code == 6231546409213868
    assert caught.value.field == ("fromValues", BTC_ADDRESS_FIELD)
    with pytest.raises(ExchangerRejected) as caught:
        client.route("65f0c0ffee0000000000ffff")
    assert caught.value.code == 6801545277215051 and caught.value.field is None


@pytest.mark.parametrize("kind", ["envelope", "antiflood", "http500", "html", "badjson"])
def test_every_injected_api_fault_becomes_an_exchanger_error(sandbox_server, kind):
    sandbox_server.set_faults(api_error=1, api_error_kinds=[kind])
    client = ExchangerClient(sandbox_server.url, read_retries=0)
    expected = ExchangerRejected if kind in ("envelope", "antiflood") else ExchangerUnavailable
    with pytest.raises(expected) as caught:
        client.routes()
    if kind == "antiflood":
        assert caught.value.retry_after == 1
    if kind == "envelope":
        # Maintenance passes: reconciliation waits and asks again instead of giving up.
        assert caught.value.code == 5555555555555555 and caught.value.retry_after == 2


def test_a_write_that_times_out_may_have_acted_and_is_not_repeated(sandbox_server):
    sandbox_server.set_faults(api_hang=1, api_hang_seconds=0.5)
    client = ExchangerClient(sandbox_server.url, timeout=(2, 0.1))
    with pytest.raises(ExchangerUnavailable) as caught:
        client.create_order(btc_order())
    assert caught.value.may_have_acted is True
    sandbox_server.set_faults()
    assert len(sandbox_server.orders()) == 1


def test_order_get_and_update_status_against_the_sandbox(sandbox_server):
    client = ExchangerClient(sandbox_server.url)
    created = client.create_order(btc_order())
    assert client.get_order(created.uid, created.secret)["status"] == "waitPayment"
    assert (
        client.update_status(created.uid, created.secret, "inProgress")["newStatus"] == "inProgress"
    )
    assert client.get_order(created.uid, created.secret)["status"] == "inProgress"
    assert client.payment_url("en", created.uid, created.secret) == (
        f"{sandbox_server.url}/en/payment/{created.uid}/{created.secret}"
    )


def test_signature_matches_the_documented_formula():
    params = {"id": "r1", "lang": "en", "time": 1718000000000}
    inner = hashlib.sha256(b'{"id":"r1","lang":"en","time":1718000000000}').hexdigest()
    assert (
        api_signature(params, "api-secret")
        == hashlib.sha256((inner + "api-secret").encode()).hexdigest()
    )


def test_signed_calls_are_accepted_by_a_sandbox_that_requires_keys(tmp_path):
    server = SandboxServer(str(tmp_path / "s.sqlite"), API_KEYS={"shop-key": "shop-secret"})
    try:
        client = ExchangerClient(server.url, api_key="shop-key", api_secret="shop-secret")
        assert client.route(BTC_ROUTE)["routeId"] == BTC_ROUTE
        created = client.create_order(btc_order())
        assert client.get_order(created.uid, created.secret)["uid"] == created.uid
        anonymous = ExchangerClient(server.url, read_retries=0)
        with pytest.raises(ExchangerRejected) as caught:
            anonymous.routes()
        assert caught.value.code == 40301
    finally:
        server.stop()


def test_nonces_increase_even_within_one_millisecond():
    client, _ = fake_client([OK_ROUTES])
    nonces = [client._nonce() for _ in range(1000)]
    assert nonces == sorted(set(nonces))
