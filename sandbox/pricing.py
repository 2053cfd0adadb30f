"""The platform's amount maths (exchanger-api.md section 2), in Decimal."""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from .errors import (
    ABOVE_RESERVE,
    AMOUNT_ABOVE_MAX,
    AMOUNT_BELOW_MIN,
    AMOUNT_NOT_NUMBER,
    AMOUNT_NOT_POSITIVE,
    ApiError,
)


def to_decimal(value):
    """A JSON number or numeric string as a finite Decimal, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def round_to(value, decimals, rounding):
    return value.quantize(Decimal(1).scaleb(-int(decimals)), rounding=rounding)


def best_discount(discounts, amount_in):
    """The percent of the first tier whose threshold the sent amount reaches.

    As the platform's own calculator does it (exchangeForms/v2.vue: discounts.find(el =>
    Number(el.amountMoreThan) <= amount)): at or above the threshold, despite the name, and the
    first tier in the route's order, not the largest. A threshold that is not a number never
    matches (NaN <= amount is false in JavaScript); a percent that is not one counts as 0.
    """
    for tier in discounts if isinstance(discounts, list) else []:
        if not isinstance(tier, dict):
            continue
        threshold = to_decimal(tier.get("amountMoreThan"))
        if threshold is not None and threshold <= amount_in:
            percent = to_decimal(tier.get("discountPercent")) or Decimal(0)
            # 100 % or more would divide by zero or pay out a negative amount: no discount.
            return percent if 0 <= percent < 100 else Decimal(0)
    return Decimal(0)


def amount_out(definition, amount_in):
    """What the payer receives for amount_in, as the site's calculator computes it."""
    rate = Decimal(definition["rate"]["rateFullNumber"])
    fee = to_decimal(definition["rate"]["outFeeAmount"]) or Decimal(0)
    discount = best_discount(definition["from"].get("discounts"), amount_in)
    k = rate * (1 - discount / 100)
    return round_to(amount_in / k - fee, definition["to"]["decimal"], ROUND_FLOOR)


def amount_in(definition, out):
    """What the payer must send to receive out."""
    rate = Decimal(definition["rate"]["rateFullNumber"])
    fee = to_decimal(definition["rate"]["outFeeAmount"]) or Decimal(0)
    return round_to((out + fee) * rate, definition["from"]["decimal"], ROUND_CEILING)


def quote(definition, raw_amount):
    """(in, out) for order/create's amount: positive = sent, negative = to receive."""
    amount = to_decimal(raw_amount)
    if amount is None:
        raise ApiError(AMOUNT_NOT_NUMBER, "Param amount isn't a valid number")
    if amount > 0:
        sent = round_to(amount, definition["from"]["decimal"], ROUND_FLOOR)
    else:
        wanted = round_to(-amount, definition["to"]["decimal"], ROUND_CEILING)
        sent = amount_in(definition, wanted) if wanted > 0 else Decimal(0)
    received = amount_out(definition, sent) if sent > 0 else Decimal(0)
    if sent <= 0 or received <= 0:
        raise ApiError(AMOUNT_NOT_POSITIVE, "Amount must be above zero")
    check_limits(definition, sent, received)
    return sent, received


def check_limits(definition, sent, received):
    minimum = to_decimal(definition["from"].get("min")) or Decimal(0)
    maximum = to_decimal(definition["from"].get("max")) or Decimal(0)
    reserve = to_decimal(definition["rate"].get("amount")) or Decimal(0)
    if minimum and sent < minimum:
        raise ApiError(
            AMOUNT_BELOW_MIN, f"Amount is below the minimum {minimum}", {"min": str(minimum)}
        )
    if maximum and sent > maximum:
        raise ApiError(
            AMOUNT_ABOVE_MAX, f"Amount is above the maximum {maximum}", {"max": str(maximum)}
        )
    if reserve and received > reserve:
        raise ApiError(
            ABOVE_RESERVE, "Not enough reserve for this amount", {"reserve": str(reserve)}
        )


def plain(amount):
    """A Decimal as the platform's number strings show it: no exponent, no trailing zeros."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
