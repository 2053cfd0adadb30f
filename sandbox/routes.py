"""The sandbox's exchange directions, loaded from routes.json into the platform's API shapes."""

import json
from decimal import Decimal
from pathlib import Path

DEFAULT_ROUTES_FILE = Path(__file__).with_name("routes.json")

# Twelve significant digits is what the platform's rateFullNumber strings carry at most.
RATE_DIGITS = 12
# The currency pictures the sandbox ships, served under /service/fs/ as the platform's files are.
IMAGES = Path(__file__).with_name("static") / "currency"
# The sizes the front-end asks for ($rest.urlImg(image).small, .medium; .big and .original on
# other pages). One SVG serves them all.
IMAGE_SIZES = ("small", "medium", "big", "original")
# Step names the front-end filters route.instructions by: createOrder (the form), confirmation
# (an order in `new`), payment (waitPayment), resultOrder (inProgress and after), successOrder
# and doneOrder (done), deleteOrder (deleted, returned).
GENERIC_INSTRUCTIONS = {
    "confirmation": "##en##Check the details, then confirm the order.##ru##Проверьте данные и подтвердите заявку.##",
    "resultOrder": "##en##Your payment is being checked; this page updates by itself.##ru##Платёж проверяется; страница обновится сама.##",
    "doneOrder": "##en##The exchange is complete.##ru##Обмен завершён.##",
    "deleteOrder": "##en##This order is closed.##ru##Заявка закрыта.##",
}


def rate_full_number(rate):
    """How many units of the from currency buy one unit of the to currency, as a string."""
    value = Decimal(str(rate["in"])) / Decimal(str(rate["out"]))
    return format(round_significant(value), "f")


def round_significant(value):
    exponent = value.adjusted() - RATE_DIGITS + 1
    return value.quantize(Decimal(1).scaleb(exponent)).normalize()


class RouteBook:
    """All directions of the demo exchanger, read once from a JSON file."""

    def __init__(self, path=DEFAULT_ROUTES_FILE):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        self.currencies = data["currencies"]
        for position, (key, currency) in enumerate(self.currencies.items()):
            currency.setdefault("_key", key)
            currency.setdefault("_position", position)
        self.route_fields = data["routeFields"]
        self.routes = {route["routeId"]: route for route in data["routes"]}

    def get(self, route_id, include_hidden=False):
        """The raw route, or None when it does not exist or is hidden."""
        route = self.routes.get(route_id) if isinstance(route_id, str) else None
        if route is None or not (route["isShowWeb"] or include_hidden):
            return None
        return route

    def summaries(self):
        """What route/get answers: one short entry per shown direction."""
        return [self._summary(route) for route in self.routes.values() if route["isShowWeb"]]

    def _summary(self, route):
        source, target = self.currencies[route["from"]], self.currencies[route["to"]]
        return {
            "routeId": route["routeId"],
            "isShowWeb": route["isShowWeb"],
            "from": {**_currency_head(source), "positionIn": source["_position"]},
            "to": {**_currency_head(target), "positionOut": target["_position"]},
            "rate": {"amount": route["reserve"]},
            "seo": {"friendlyURL": f"{source['xml']}-to-{target['xml']}".lower()},
        }

    def definition(self, route):
        """What route/get/one answers: the full direction with fields, limits and rate."""
        source, target = self.currencies[route["from"]], self.currencies[route["to"]]
        return {
            "routeId": route["routeId"],
            "from": {
                **_currency_head(source),
                "_id": source["_id"],
                "decimal": source["decimal"],
                "min": route["min"],
                "max": route["max"],
                "fields": source["fields"],
                "discounts": route["discounts"],
            },
            "to": {
                **_currency_head(target),
                "_id": target["_id"],
                "decimal": target["decimal"],
                "fields": target["fields"],
            },
            "fields": [self.route_fields[name] for name in route["fields"]],
            "rate": {
                "in": route["rate"]["in"],
                "out": route["rate"]["out"],
                "rateFullNumber": rate_full_number(route["rate"]),
                "amount": route["reserve"],
                "outFeeAmount": route["outFeeAmount"],
                "typeCalculate": "float",
            },
            "instructions": instructions(route),
            "orderTTL": route["orderTTL"],
            "isAutoPayout": True,
        }


def instructions(route):
    """The route's texts for each step of an order, as the front-end looks them up.

    routes.json gives one text per route: it is shown on the form and while the payer pays.
    The other steps' texts are the sandbox's own (a real site's operator writes them).
    """
    own = route["instructions"]
    steps = {"createOrder": own, "payment": own, **GENERIC_INSTRUCTIONS}
    return [{"step": step, "content": content} for step, content in steps.items()]


def image(currency):
    """The currency's picture as the platform describes files: {"files": [{type, url}]}.

    url is relative to the site's file path (/service/fs), where the front-end looks.
    """
    name = f"{currency['_key'].lower()}.svg"
    if not (IMAGES / name).is_file():
        name = "unknown.svg"
    return {"files": [{"type": size, "url": f"/currency/{name}"} for size in IMAGE_SIZES]}


def _currency_head(currency):
    return {
        "name": currency["name"],
        "symbol": currency["symbol"],
        "xml": currency["xml"],
        "image": image(currency),
    }
