"""What goes over the wire matches the platform's own front-end (exchanger-api.md 1, 8).

A live server on 127.0.0.1 records every request the client makes, byte for byte.
"""

import json

import pytest

from shop.exchanger import ExchangerClient, ExchangerUnavailable
from tests.helpers import btc_order
from tests.servers import LiveServer

ORDER = {
    "_id": "6650aa11bb22cc33dd44ee55",
    "uid": 10482,
    "rid": "K7",
    "secret": "Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4",
    "inAmount": 0.0021,
    "outAmount": 133.92,
}


class Recorder(LiveServer):
    """Answers every call with a success envelope (or `answer`) and keeps what it was sent."""

    def __init__(self):
        self.calls = []
        self.answer = None
        super().__init__(self._app)

    def _app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.calls.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "lang": environ.get("HTTP_LANG"),
                "type": environ.get("CONTENT_TYPE"),
                "body": environ["wsgi.input"].read(length),
            }
        )
        if self.answer:
            status, headers, body = self.answer
            start_response(status, headers)
            return [body]
        data = {"order": {"status": "new"}} if "get" in environ["PATH_INFO"] else ORDER
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"success": True, "data": data}).encode()]


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.stop()


def test_create_sends_json_with_trailing_slash_lang_and_no_empty_partner(recorder):
    client = ExchangerClient(recorder.url)
    client.create_order(btc_order(amount=1.0, lang="ru", partner=""))
    (call,) = recorder.calls
    assert call["method"] == "POST" and call["type"] == "application/json"
    assert call["path"] == "/service/api/v1/public/exchanger/order/create/"
    assert call["lang"] == "ru"
    body = call["body"].decode()
    assert '"amount":1,' in body and "partner" not in body and ": " not in body
    client.create_order(btc_order(partner="ref42"))
    assert '"partner":"ref42"' in recorder.calls[-1]["body"].decode()


def test_update_status_sends_the_uid_as_a_string_in_a_put(recorder):
    ExchangerClient(recorder.url).update_status(10482, "Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4", "deleted")
    (call,) = recorder.calls
    assert call["method"] == "PUT"
    assert call["path"] == "/service/api/v1/public/exchanger/order/update-status/"
    assert json.loads(call["body"]) == {
        "orderUID": "10482",
        "orderSecret": "Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4",
        "status": "deleted",
    }


def test_reads_are_gets_with_a_query_and_the_lang_header(recorder):
    ExchangerClient(recorder.url).get_order(10482, "Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4")
    (call,) = recorder.calls
    assert call["method"] == "GET" and call["body"] == b"" and call["lang"] == "en"
    assert call["query"] == "orderUID=10482&orderSecret=Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4&type=order"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            ("301 Moved", [("Location", "https://www.exchanger.example/service/api/v1/x/")], b""),
            "HTTP 301 redirect to https://www.exchanger.example/service/api/v1/x/",
        ),
        (
            ("200 OK", [("Content-Type", "text/html")], b"<html><title>Just a moment</title>"),
            "an HTML page, not JSON (text/html: a bot check",
        ),
        (("200 OK", [("Content-Type", "text/plain")], b"ok"), "not JSON (text/plain)"),
    ],
)
def test_redirects_and_pages_are_named_not_just_failed(recorder, answer, message):
    recorder.answer = answer
    with pytest.raises(ExchangerUnavailable) as failure:
        ExchangerClient(recorder.url, read_retries=0).routes()
    assert message in failure.value.message
    assert len(recorder.calls) == 1, "a redirect is reported, never followed"
