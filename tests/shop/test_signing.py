"""API-key signing matches Node's JSON.stringify byte for byte (exchanger-api.md 1 and 8).

The vectors below were made with Node 20; the commands are in the comments. The last test runs
node itself over random payloads, so a case nobody thought of is compared too.
"""

import json
import random
import shutil
import subprocess
from decimal import Decimal

import pytest

from shop.exchanger import ExchangerClient, api_signature, js_json
from tests.conftest import SandboxServer
from tests.helpers import btc_order

# node -e 'console.log(JSON.stringify([150, 100, 0.00005, 1e21, 1e-7, 123456789012345680000,
#   0.1+0.2, 1.5e-7, 5e-324, 1.7976931348623157e308, -0, -2.5, 0.000001, 1e16,
#   12345678901234567890, 2**53+2, 0.0021, 133.92, 85000.00]))'
NUMBERS = [150.0, 100.0, 0.00005, 1e21, 1e-7, 123456789012345680000, 0.1 + 0.2, 1.5e-7, 5e-324]
NUMBERS += [1.7976931348623157e308, -0.0, -2.5, 0.000001, 1e16, 12345678901234567890, 2**53 + 2]
NUMBERS += [Decimal("0.00210000"), Decimal("133.92"), Decimal("85000.00")]
NODE_NUMBERS = (
    "[150,100,0.00005,1e+21,1e-7,123456789012345680000,0.30000000000000004,1.5e-7,5e-324,"
    "1.7976931348623157e+308,0,-2.5,0.000001,10000000000000000,12345678901234567000,"
    "9007199254740994,0.0021,133.92,85000]"
)

# node -e 'console.log(JSON.stringify({"b":1,"10":2,"a/b":"x/y","2":3,
#   "é":"ü\u2028\u2029\u007f","ctl":"\u0000\u0001\b\f\n\r\t\u001f\"\\",
#   "lone":"\ud800x\udc00","pair":"\ud83d\ude00","4294967295":1,"01":2,
#   "nested":[{"key":"k","value":null},true,false]}))'
TEXTS = {
    "b": 1,
    "10": 2,
    "a/b": "x/y",
    "2": 3,
    "é": "ü\u2028\u2029\x7f",
    "ctl": '\x00\x01\b\f\n\r\t\x1f"\\',
    "lone": "\ud800x\udc00",
    "pair": "\ud83d\ude00",
    "4294967295": 1,
    "01": 2,
    "nested": [{"key": "k", "value": None}, True, False],
}
NODE_TEXTS = (
    '{"2":3,"10":2,"b":1,"a/b":"x/y","é":"ü\u2028\u2029\x7f",'
    '"ctl":"\\u0000\\u0001\\b\\f\\n\\r\\t\\u001f\\"\\\\","lone":"\\ud800x\\udc00",'
    '"pair":"\U0001f600","4294967295":1,"01":2,"nested":[{"key":"k","value":null},true,false]}'
)

# The platform's own example, from its front-end's API page (NRepeat/exchanger-client-web,
# pages/user/api.vue): GET_PARAMS {time:123456789}, POST_PARAMS {param1:'val1'}, and this
# secret give the header hash shown there (sha256, though its text says SHA512).
PLATFORM_EXAMPLE = (
    {"time": 123456789, "param1": "val1"},
    "97aab8410868ba7c1824f490999607c0ce46a3de",
    "ac876c6314ffcca01b0e65571cc136cedfb2c3d8e2194aaaf364ca7123568fc7",
)

# const sha = s => require("crypto").createHash("sha256").update(s).digest("hex");
# const t = JSON.stringify(PARAMS); console.log(sha(sha(t) + "api-secret"));
SIGNED = [
    (
        {
            "routeId": "65f0c0ffee0000000000aa01",
            "amount": 150.0,
            "lang": "en",
            "agreement": True,
            "time": 1800000000000,
        },
        "de645cd6294ddf4623c3b1c9e742866028f121b4f31dec8a45c620ad66156b73",
    ),
    (
        {
            "orderUID": "10482",
            "orderSecret": "Zp3Lq8Rt2Vb6Nw1Yc5Hd0Gs4",
            "type": "order",
            "time": "1800000000001",
            "amount": Decimal("0.000050"),
            "note": "Оплата/заказ é",
        },
        "459049704811be899bb5c831770f9f91e162e36876ed888a56d27738391982a4",
    ),
]


def test_the_platforms_own_example_signature():
    params, secret, expected = PLATFORM_EXAMPLE
    assert api_signature(params, secret) == expected


def test_numbers_are_written_as_javascript_writes_them():
    assert js_json(NUMBERS) == NODE_NUMBERS


def test_key_order_escapes_and_non_ascii_are_javascripts():
    assert js_json(TEXTS) == NODE_TEXTS


@pytest.mark.parametrize(("params", "expected"), SIGNED)
def test_signatures_match_node(params, expected):
    assert api_signature(params, "api-secret") == expected


def random_payload(rng):
    """Amount-like floats, awkward strings, nested lists: what a create body can hold."""

    def number():
        kind = rng.random()
        if kind < 0.3:
            return float(rng.randrange(1, 10**6))
        if kind < 0.6:
            return round(rng.uniform(0, 10), rng.randrange(1, 10))
        return rng.uniform(-1, 1) * 10 ** rng.randrange(-12, 25)

    def text():
        alphabet = 'aZ09/"\\\n\t\x00\x1fé€Ж\u2028\U0001f600 '
        return "".join(rng.choices(alphabet, k=rng.randrange(0, 12)))

    payload = {text(): number() for _ in range(4)}
    payload.update({"amount": number(), str(rng.randrange(100)): text(), "x": [number(), text()]})
    return payload


def test_random_payloads_match_node_byte_for_byte():
    """Python sends each payload to node as JSON; node answers JSON.stringify of what it read."""
    node_path = shutil.which("node")
    assert node_path, "node is needed: apt-get install nodejs"
    rng = random.Random(11)
    payloads = [random_payload(rng) for _ in range(300)]
    script = (
        "const lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');"
        "for (const l of lines) console.log(JSON.stringify(JSON.parse(l)));"
    )
    given = "\n".join(json.dumps(p) for p in payloads) + "\n"
    node = subprocess.run(
        [node_path, "-e", script], input=given, capture_output=True, text=True, check=True
    )
    # split on "\n" only: str.splitlines would also split at U+2028 inside a string.
    assert node.stdout.split("\n")[:-1] == [js_json(p) for p in payloads]


def test_a_whole_number_amount_is_accepted_with_a_merchant_key(tmp_path):
    """The bug this prevents: json.dumps writes 150.0, JavaScript 150, and the key is refused."""
    server = SandboxServer(str(tmp_path / "s.sqlite"), API_KEYS={"shop-key": "shop-secret"})
    try:
        client = ExchangerClient(server.url, api_key="shop-key", api_secret="shop-secret")
        for amount in (1.0, 0.01, Decimal("0.0200"), Decimal("1E+0")):
            created = client.create_order(btc_order(amount=amount))
            assert created.uid > 0
    finally:
        server.stop()
