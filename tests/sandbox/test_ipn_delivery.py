"""IPN delivery as the merchant docs say: one signed form POST per change, never retried."""

import hashlib
from urllib.parse import parse_qs, parse_qsl

from tests.helpers import btc_order


def docs_checksum(fields, secret):
    """merchant-docs.txt's stringForHash, in the docs' own order."""
    names = ("orderId", "newStatus", "inAmount", "outAmount", "xml_from", "xml_to", "timestamp")
    return hashlib.sha256((":".join(fields[n] for n in names) + ":" + secret).encode()).hexdigest()


def make_order(server, receiver, secret="s3cret-for-this-order"):
    payload = btc_order(ipnUrl=f"{receiver.url}/ipn", ipnSecret=secret)
    return server.data("POST", "public/exchanger/order/create", json=payload)


def test_each_status_change_sends_one_signed_form_post(sandbox_server, receiver):
    order = make_order(sandbox_server, receiver)
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.set_status(order["uid"], "done")
    sandbox_server.wait_ipns()
    assert [r["path"] for r in receiver.received] == ["/ipn", "/ipn"]
    first, second = (dict(parse_qsl(r["body"])) for r in receiver.received)
    assert receiver.received[0]["type"] == "application/x-www-form-urlencoded"
    assert first["newStatus"] == "inProgress" and second["newStatus"] == "done"
    for fields in (first, second):
        assert fields["orderUID"] == str(order["uid"]) and fields["orderId"] == order["_id"]
        assert fields["xml_from"] == "BTC" and fields["xml_to"] == "USDTTRC20"
        assert len(fields["timestamp"]) == 13
        assert fields["inAmount"] == "0.01"
        assert fields["hash"] == docs_checksum(fields, "s3cret-for-this-order")
        assert fields["toValues[0][value]"] == "TMerchantPayoutWa11etSandboxDemoXq"
        assert fields["toValues[0][name]"] == "USDT TRC20 wallet"
    assert int(second["timestamp"]) > int(first["timestamp"])


def test_no_change_no_ipn_and_creation_is_not_a_change(sandbox_server, receiver):
    order = make_order(sandbox_server, receiver)
    sandbox_server.set_status(order["uid"], "waitPayment")
    sandbox_server.wait_ipns()
    assert receiver.received == []
    assert sandbox_server.deliveries(order["uid"]) == []


def test_a_failing_receiver_is_not_retried_and_the_log_says_so(sandbox_server, receiver):
    receiver.status = 500
    order = make_order(sandbox_server, receiver)
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.wait_ipns()
    assert len(receiver.received) == 1
    (delivery,) = sandbox_server.deliveries(order["uid"])
    assert delivery["outcome"] == "sent" and delivery["http_status"] == 500
    assert parse_qs(delivery["payload"])["newStatus"] == ["inProgress"]


def test_an_unreachable_receiver_is_logged_as_an_error_once(sandbox_server, receiver):
    order = make_order(sandbox_server, receiver)
    receiver.stop()
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.wait_ipns()
    (delivery,) = sandbox_server.deliveries(order["uid"])
    assert delivery["outcome"] == "error" and delivery["error"]
    assert delivery["sent_at"] is not None


def test_an_order_without_ipn_url_sends_nothing(sandbox_server, receiver):
    order = sandbox_server.data("POST", "public/exchanger/order/create", json=btc_order(ipnUrl=""))
    sandbox_server.set_status(order["uid"], "inProgress")
    sandbox_server.wait_ipns()
    assert sandbox_server.deliveries(order["uid"]) == []
