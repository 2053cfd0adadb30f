"""Orders that start in `new` (the payer confirms first) unless skipPreview is sent and honoured.

The shop sends skipPreview; `flask exchanger check --create-test-order` says whether the site
honoured it, so a merchant knows before going live whether buyers meet a confirm step.
"""

import pytest

from tests.shop.test_discovery import run, shop_for


@pytest.mark.parametrize(
    ("faults", "line"),
    [
        ({}, "OK   the order started in 'waitPayment': buyers pay at once."),
        (
            {"skip_preview": "ignored"},
            "OK   the order started in 'new' despite skipPreview: buyers confirm it",
        ),
    ],
)
def test_the_test_order_says_whether_buyers_meet_a_confirm_step(
    tmp_path, sandbox_server, faults, line
):
    sandbox_server.set_faults(**faults)
    result = run(shop_for(tmp_path, sandbox_server.url), "check", "--create-test-order")
    assert result.exit_code == 0, result.output
    assert line in result.output
    (order,) = sandbox_server.orders().values()
    assert order["status"] == "deleted"
