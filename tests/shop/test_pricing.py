"""The amount maths: the merchant receives at least the price, at each currency's decimals."""

from decimal import ROUND_FLOOR, Decimal

import pytest

from shop.pricing import RouteDataError, quote


def route(
    rate="0.0000155641", fee=1, from_decimal=8, to_decimal=2, minimum="0", maximum="0", reserve="0"
):
    return {
        "from": {"decimal": from_decimal, "min": minimum, "max": maximum, "symbol": "BTC"},
        "to": {"decimal": to_decimal},
        "rate": {"rateFullNumber": rate, "outFeeAmount": fee, "amount": reserve},
    }


def platform_out(definition, amount_in):
    rate = Decimal(definition["rate"]["rateFullNumber"])
    fee = Decimal(str(definition["rate"]["outFeeAmount"]))
    step = Decimal(1).scaleb(-definition["to"]["decimal"])
    return (amount_in / rate - fee).quantize(step, rounding=ROUND_FLOOR)


def test_send_is_rounded_up_at_the_from_currencys_decimals():
    result = quote(route(), Decimal("25.00"))
    # (25 + 1 fee) * 0.0000155641 = 0.0004046666 -> up to 8 places
    assert result.send == Decimal("0.00040467")
    assert result.receive >= Decimal("25.00")


@pytest.mark.parametrize("from_decimal", [0, 2, 6, 8, 12])
@pytest.mark.parametrize("rate", ["0.0000155641", "1.035", "0.5821", "91.4", "3"])
def test_the_merchant_always_gets_at_least_the_price(from_decimal, rate):
    definition = route(rate=rate, fee="0.5", from_decimal=from_decimal)
    for cents in range(1, 5000, 37):
        price = Decimal(cents) / 100
        result = quote(definition, price)
        assert platform_out(definition, result.send) >= price, (price, result)
        assert result.send == result.send.quantize(Decimal(1).scaleb(-from_decimal))


def test_a_price_finer_than_the_to_currency_is_rounded_up_first():
    result = quote(route(rate="1", fee=0, from_decimal=2, to_decimal=2), Decimal("12.505"))
    assert result.send == Decimal("12.51") and result.receive == Decimal("12.51")


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ({"minimum": "0.001"}, "below_min"),
        ({"maximum": "0.0001"}, "above_max"),
        ({"reserve": "10"}, "above_reserve"),
        ({"minimum": "0", "maximum": "0", "reserve": "0"}, None),
    ],
)
def test_limits_are_reported(limits, problem):
    result = quote(route(**limits), Decimal("25"))
    assert (result.problem[0] if result.problem else None) == problem


def test_a_rate_given_only_as_in_and_out_is_used():
    definition = route()
    definition["rate"] = {"in": 1, "out": "64250.5", "outFeeAmount": 1}
    assert quote(definition, Decimal("25")).send == Decimal("0.00040467")


@pytest.mark.parametrize("rate", ["0", "-1", "abc", None, "NaN"])
def test_nonsense_rates_are_refused(rate):
    definition = route(rate=rate)
    with pytest.raises(RouteDataError):
        quote(definition, Decimal("25"))


def test_missing_decimals_default_to_two():
    definition = route(rate="1", fee=0)
    del definition["from"]["decimal"], definition["to"]["decimal"]
    assert quote(definition, Decimal("1.234")).send == Decimal("1.24")


def with_tiers(tiers):
    definition = route(rate="1.035", fee=0, from_decimal=2)
    definition["from"]["discounts"] = tiers
    return definition


def test_a_discount_raises_what_is_received_never_what_is_sent():
    plain, discounted = (
        route(rate="1.035", fee=0, from_decimal=2),
        with_tiers([{"amountMoreThan": 1000, "discountPercent": 1}]),
    )
    assert quote(plain, Decimal("966.18")).send == quote(discounted, Decimal("966.18")).send
    assert quote(discounted, Decimal("966.18")).receive == Decimal("975.94")
    assert quote(discounted, Decimal("966.17")).receive == Decimal("966.17")


@pytest.mark.parametrize(
    "tiers",
    [
        "1000",
        ["x", None],
        [{"amountMoreThan": "abc", "discountPercent": 50}],
        [{"discountPercent": 50}],
    ],
)
def test_tiers_the_front_end_could_never_match_give_no_discount(tiers):
    assert quote(with_tiers(tiers), Decimal("100")) == quote(with_tiers([]), Decimal("100"))


@pytest.mark.parametrize("percent", [100, 150, -1, "abc"])
def test_a_discount_that_makes_no_sense_is_refused(percent):
    with pytest.raises(RouteDataError):
        quote(with_tiers([{"amountMoreThan": 0, "discountPercent": percent}]), Decimal("100"))
