"""flask exchanger routes|check against the sandbox, live over HTTP."""

from decimal import Decimal

import pytest

from tests.conftest import SandboxServer
from tests.helpers import BTC_ADDRESS, BTC_ADDRESS_FIELD, create_shop
from tests.servers import LiveServer

WALLET = {"65f0c0ffee00000000000d10": "TMerchantPayoutWa11etSandboxDemoXq"}


def shop_for(tmp_path, exchanger_url, **settings):
    config = {
        "TESTING": True,
        "DATABASE": str(tmp_path / "shop.sqlite"),
        "EXCHANGER_URL": exchanger_url,
        "PAYOUT_VALUES": WALLET,
        **settings,
    }
    return create_shop(config)


def run(app, *args):
    return app.test_cli_runner().invoke(args=["exchanger", *args])


def test_routes_lists_fields_and_what_payout_values_lacks(tmp_path, sandbox_server):
    complete = run(shop_for(tmp_path, sandbox_server.url), "routes")
    assert complete.exit_code == 0
    assert "65f0c0ffee0000000000aa01  Bitcoin (BTC) -> USDTTRC20" in complete.output
    assert (
        "buyer    65f0c0ffee00000000000d01  'Your BTC address (for refunds)' required"
        in complete.output
    )
    assert "options ['erc20', 'bep20', 'polygon']" in complete.output
    assert "PAYOUT_VALUES fills every payout field." in complete.output
    assert "CARDRUB" not in complete.output
    lacking = run(shop_for(tmp_path, sandbox_server.url, PAYOUT_VALUES={"x": "y"}), "routes")
    assert "<- MISSING" in lacking.output
    assert '"65f0c0ffee00000000000d10": "<your USDT TRC20 wallet>"' in lacking.output


def test_routes_for_another_settlement_currency(tmp_path, sandbox_server):
    app = shop_for(tmp_path, sandbox_server.url, SETTLEMENT_XML="CARDRUB")
    output = run(app, "routes").output
    assert "-> CARDRUB" in output and "Cardholder" in output and "<- MISSING" in output


def test_check_passes_with_a_working_setup(tmp_path, sandbox_server):
    result = run(shop_for(tmp_path, sandbox_server.url), "check")
    assert result.exit_code == 0
    assert "anonymous" in result.output and "7 directions" in result.output
    assert "no redirect" in result.output and "test order" not in result.output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"PAYOUT_VALUES": {"65f0c0ffee00000000000d10": "0xnot-a-tron-wallet"}}, "cannot fill 7"),
        ({"SETTLEMENT_XML": "DOGE"}, "no direction pays out"),
    ],
)
def test_check_reports_what_is_wrong(tmp_path, sandbox_server, settings, message):
    result = run(shop_for(tmp_path, sandbox_server.url, **settings), "check")
    assert result.exit_code == 1 and message in result.output


def test_check_reports_refused_keys_and_an_unreachable_site(tmp_path):
    server = SandboxServer(str(tmp_path / "s.sqlite"), API_KEYS={"right": "secret"})
    try:
        good = shop_for(
            tmp_path, server.url, EXCHANGER_API_KEY="right", EXCHANGER_API_SECRET="secret"
        )
        assert "the merchant key is accepted" in run(good, "check").output
        bad = shop_for(
            tmp_path, server.url, EXCHANGER_API_KEY="right", EXCHANGER_API_SECRET="wrong"
        )
        assert "refused (40301)" in run(bad, "check").output
    finally:
        server.stop()
    gone = shop_for(tmp_path, server.url, EXCHANGER_TIMEOUT=(0.5, 0.5))
    gone.extensions["exchanger"].backoff = 0
    result = run(gone, "check")
    assert result.exit_code == 1 and "no usable answer" in result.output


class Redirector(LiveServer):
    """A site whose API moved: every request is answered 301 to the same path elsewhere."""

    def __init__(self, target):
        self.target = target
        super().__init__(self._app)

    def _app(self, environ, start_response):
        start_response("301 Moved Permanently", [("Location", self.target + environ["PATH_INFO"])])
        return [b""]


def test_check_names_a_redirect_and_where_it_points(tmp_path, sandbox_server):
    redirector = Redirector(sandbox_server.url)
    try:
        result = run(shop_for(tmp_path, redirector.url), "check")
    finally:
        redirector.stop()
    assert result.exit_code == 1
    assert f"HTTP 301 redirect to {sandbox_server.url}/service/api/v1/" in result.output
    assert "set EXCHANGER_URL to the final address" in result.output


def test_check_names_an_html_answer(tmp_path):
    server = SandboxServer(
        str(tmp_path / "s.sqlite"), FAULTS={"api_error": 1, "api_error_kinds": ["html"]}
    )
    try:
        app = shop_for(tmp_path, server.url)
        app.extensions["exchanger"].backoff = 0
        result = run(app, "check")
    finally:
        server.stop()
    assert result.exit_code == 1 and "an HTML page, not JSON" in result.output


def test_create_test_order_creates_a_whole_number_order_and_cancels_it(tmp_path):
    # Signed, so even a site that wants a captcha from anonymous servers takes it.
    server = SandboxServer(
        str(tmp_path / "s.sqlite"), API_KEYS={"right": "secret"}, FAULTS={"captcha": "unsigned"}
    )
    try:
        app = shop_for(
            tmp_path, server.url, EXCHANGER_API_KEY="right", EXCHANGER_API_SECRET="secret"
        )
        result = run(
            app, "check", "--create-test-order", f"--value={BTC_ADDRESS_FIELD}={BTC_ADDRESS}"
        )
        (order,) = server.orders().values()
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert f"OK   test order {order['uid']} for 1 BTC created (signed" in result.output
    assert "and cancelled" in result.output
    assert order["status"] == "deleted" and Decimal(order["inAmount"]) == 1


def test_create_test_order_anonymously_fills_what_placeholders_allow(tmp_path, sandbox_server):
    result = run(shop_for(tmp_path, sandbox_server.url), "check", "--create-test-order")
    assert result.exit_code == 0, result.output
    (order,) = sandbox_server.orders().values()
    assert order["status"] == "deleted" and Decimal(order["inAmount"]) == 1
    assert "(anonymous) and cancelled" in result.output
