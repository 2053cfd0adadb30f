"""flask exchanger routes|check against the sandbox, live over HTTP."""

import pytest

from app import create_app
from tests.conftest import SandboxServer

WALLET = {"65f0c0ffee00000000000d10": "TMerchantPayoutWa11etSandboxDemoXq"}


def shop_for(tmp_path, exchanger_url, **settings):
    config = {
        "TESTING": True,
        "DATABASE": str(tmp_path / "shop.sqlite"),
        "EXCHANGER_URL": exchanger_url,
        "PAYOUT_VALUES": WALLET,
        **settings,
    }
    return create_app(config)


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
        assert "signed with EXCHANGER_API_KEY" in run(good, "check").output
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
