"""Discount tiers as the platform's own calculator applies them (exchangeForms/v2.vue)."""

from decimal import Decimal

from sandbox.pricing import amount_out

TIERS = [
    {"amountMoreThan": 1000, "discountPercent": 1},
    {"amountMoreThan": 500, "discountPercent": 0.5},
    {"amountMoreThan": 2000, "discountPercent": 3},
]


def route(discounts):
    return {
        "rate": {"rateFullNumber": "1.035", "outFeeAmount": 0},
        "from": {"discounts": discounts},
        "to": {"decimal": 2},
    }


def test_a_tier_applies_at_its_threshold_not_only_above():
    at = amount_out(route(TIERS[:1]), Decimal(1000))
    assert at == Decimal("975.94")  # 1000 / (1.035 * 0.99), floored: the front-end's figure
    assert amount_out(route(TIERS[:1]), Decimal("999.99")) == Decimal("966.17")


def test_the_first_matching_tier_wins_not_the_largest():
    # 2500 reaches all three tiers; the route's first (1 %) applies, as the front-end's find().
    assert amount_out(route(TIERS), Decimal(2500)) == amount_out(route(TIERS[:1]), Decimal(2500))
    assert amount_out(route(TIERS), Decimal(600)) == amount_out(route(TIERS[1:2]), Decimal(600))


def test_no_tier_reached_or_malformed_tiers_mean_no_discount():
    plain = amount_out(route([]), Decimal(100))
    assert amount_out(route(TIERS), Decimal(100)) == plain
    assert amount_out(route(["x", {"amountMoreThan": "abc"}]), Decimal(100)) == plain
