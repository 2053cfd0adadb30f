"""How much the buyer sends so that the merchant receives at least the price.

The platform's calculator (exchanger-api.md section 2): out = floor(in / k - fee) with
k = rateFullNumber * (1 - discount/100), and in = ceil((out + fee) * rateFullNumber).
What to send is computed without any discount: a discount only raises what the merchant
receives, so a site that applies its tiers otherwise than its front-end does can never leave
the merchant short. What the merchant receives is computed with the discount, as the site
computes it, so the shop's figure (and its reserve check) agrees with the site's to the last
decimal.
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
    receive = receive_for(route, send)
    return Quote(send, receive, limit_problem(route, send, receive))


def receive_for(route, send):
    """What the site pays out for send, its discount included: floor(send / k - fee)."""
    rate = rate_of(route)
    fee = number((route.get("rate") or {}).get("outFeeAmount"), Decimal(0))
    discounted = rate * (1 - discount_percent(route, send) / 100)
    return round_to(send / discounted - fee, decimals(route["to"]), ROUND_FLOOR)


def discount_percent(route, send):
    """The percent of the first tier whose threshold the amount sent reaches, else 0.

    As the platform's calculator picks it (exchangeForms/v2.vue: discounts.find(el =>
    Number(el.amountMoreThan) <= amount)): at or above the threshold despite the name, and the
    first tier in the route's order, not the largest. A tier whose threshold is not a number
    never matches (NaN <= amount is false in JavaScript).
    """
    tiers = route["from"].get("discounts")
    for tier in tiers if isinstance(tiers, list) else []:
        if not isinstance(tier, dict):
            continue
        try:
            threshold = number(tier.get("amountMoreThan"))
        except RouteDataError:
            continue
        if threshold is None or threshold > send:
            continue
        percent = number(tier.get("discountPercent"), Decimal(0))
        if not 0 <= percent < 100:
            raise RouteDataError(f"a discount of {percent} %")
        return percent
    return Decimal(0)


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
