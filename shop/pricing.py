"""How much the buyer sends so that the merchant receives at least the price.

The platform's calculator (exchanger-api.md section 2): out = floor(in / k - fee) with
k = rateFullNumber * (1 - discount/100), and in = ceil((out + fee) * rateFullNumber).
The shop ignores discounts: a discount only raises what the merchant receives.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation


class RouteDataError(ValueError):
    """A route definition whose numbers the shop cannot compute with."""


@dataclass(frozen=True)
class Quote:
    send: Decimal
    receive: Decimal
    # None, or ("below_min" | "above_max" | "above_reserve", the limit)
    problem: tuple | None


def number(value, default=None):
    """A route's number (JSON number or numeric string) as a Decimal; default when absent."""
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        raise RouteDataError(f"not a number: {value!r}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise RouteDataError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise RouteDataError(f"not a finite number: {value!r}")
    return result


def round_to(value, decimals, rounding):
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)


def decimals(side):
    places = number(side.get("decimal"), Decimal(2))
    if places != places.to_integral_value() or not 0 <= places <= 18:
        raise RouteDataError(f"bad decimal places: {places}")
    return int(places)


def rate_of(route):
    """Units of the from currency per unit of the to currency."""
    rate = route.get("rate") or {}
    full = number(rate.get("rateFullNumber"))
    if full is None:
        rate_in, rate_out = number(rate.get("in")), number(rate.get("out"))
        full = rate_in / rate_out if rate_in and rate_out else None
    if full is None or full <= 0:
        raise RouteDataError("the route has no usable rate")
    return full


def quote(route, price):
    """The amount to send for price (in the to currency), and whether the route's limits allow it."""
    rate = rate_of(route)
    fee = number((route.get("rate") or {}).get("outFeeAmount"), Decimal(0))
    from_places, to_places = decimals(route["from"]), decimals(route["to"])
    wanted = round_to(price, to_places, ROUND_CEILING)
    send = round_to((wanted + fee) * rate, from_places, ROUND_CEILING)
    receive = round_to(send / rate - fee, to_places, ROUND_FLOOR)
    return Quote(send, receive, limit_problem(route, send, receive))


def limit_problem(route, send, receive):
    minimum = number(route["from"].get("min"), Decimal(0))
    maximum = number(route["from"].get("max"), Decimal(0))
    reserve = number((route.get("rate") or {}).get("amount"), Decimal(0))
    # "0" means no limit on the platform.
    if minimum and send < minimum:
        return ("below_min", minimum)
    if maximum and send > maximum:
        return ("above_max", maximum)
    if reserve and receive > reserve:
        return ("above_reserve", reserve)
    return None
