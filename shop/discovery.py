"""`flask exchanger routes|check`: learn a real site's directions and fields, and test the setup."""

import re
from decimal import ROUND_CEILING, Decimal

import click
from flask import current_app
from flask.cli import AppGroup

from . import checkout, config
from .exchanger import NOT_AUTHORISED, ExchangerError, ExchangerRejected, get_exchanger

exchanger_cli = AppGroup("exchanger", help="Discover the configured exchanger and check the setup.")


def settlement_routes():
    """Full definitions of the shown routes into SETTLEMENT_XML."""
    settlement = current_app.config["SETTLEMENT_XML"]
    routes = []
    for summary in get_exchanger().routes():
        if summary.get("isShowWeb") is False or (summary.get("to") or {}).get("xml") != settlement:
            continue
        routes.append(get_exchanger().route(summary["routeId"]))
    return routes


def payout_problem(field):
    return config.payout_problem(current_app.config, field)


def describe(field, who):
    required = "required" if field.get("required") else "optional"
    options = field.get("options") or []
    choices = f" options {[o.get('value') for o in options]}" if options else ""
    regexp = field.get("regexp") or "(none)"
    return f"    {who:8} {field.get('_id')}  {field.get('name')!r} {required}, regexp {regexp}{choices}"


@exchanger_cli.command("routes")
def routes_command():
    """List the directions into SETTLEMENT_XML with every field, and what PAYOUT_VALUES lacks."""
    try:
        routes = settlement_routes()
    except ExchangerError as exc:
        raise click.ClickException(
            f"the exchanger did not answer usefully: {exc.message}"
        ) from None
    settlement = current_app.config["SETTLEMENT_XML"]
    if not routes:
        click.echo(f"No direction of this exchanger pays out in {settlement}.")
        return
    lacking = {}
    for route in routes:
        source = route["from"]
        click.echo(
            f"{route['routeId']}  {source.get('name')} ({source.get('xml')}) -> {settlement}"
        )
        for field in source.get("fields") or []:
            click.echo(describe(field, "buyer"))
        for field in route.get("fields") or []:
            click.echo(describe(field, "buyer"))
        for field in route["to"].get("fields") or []:
            problem = payout_problem(field)
            click.echo(
                describe(field, "payout") + (f"  <- {problem.upper()}" if problem else "  ok")
            )
            if problem:
                lacking[str(field.get("_id"))] = field.get("name")
    if lacking:
        click.echo("\nPAYOUT_VALUES still needs:")
        for field_id, name in lacking.items():
            click.echo(f'  "{field_id}": "<your {name}>"')
    else:
        click.echo("\nPAYOUT_VALUES fills every payout field.")


@exchanger_cli.command("check")
@click.option(
    "--create-test-order",
    is_flag=True,
    help="Also create the smallest whole-number order on a route and cancel it at once.",
)
@click.option(
    "--value",
    "values",
    multiple=True,
    metavar="FIELD_ID=VALUE",
    help="A buyer requisite for the test order (repeatable); field placeholders are tried too.",
)
def check_command(create_test_order, values):
    """Go-live checks: canonical URL, JSON answers, merchant key, routes, payout values."""
    base = get_exchanger().base_url
    if current_app.config["SANDBOX_MODE"]:
        click.echo(f"NOTE {base} is the embedded sandbox: no real money moves.")
    try:
        routes = settlement_routes()
    except ExchangerRejected as exc:
        if exc.code == NOT_AUTHORISED:
            raise click.ClickException(
                f"{base}: the API key or secret is refused (40301)"
            ) from None
        raise click.ClickException(f"{base}: the exchanger refused: {exc.message}") from None
    except ExchangerError as exc:
        # The client never follows redirects and names an HTML page: the message says which.
        raise click.ClickException(f"{base}: no usable answer ({exc.message})") from None
    click.echo(f"OK   {base} is the API's own address (no redirect) and answers JSON.")
    if get_exchanger().api_key:
        click.echo("OK   the merchant key is accepted (signed reads answered).")
    else:
        click.echo(
            "OK   calls are anonymous (no EXCHANGER_API_KEY): orders stay out of your cabinet."
        )
    settlement = current_app.config["SETTLEMENT_XML"]
    if not routes:
        raise click.ClickException(f"no direction pays out in SETTLEMENT_XML={settlement}")
    usable = [r for r in routes if not any(payout_problem(f) for f in r["to"].get("fields") or [])]
    click.echo(f"OK   {len(routes)} directions pay out in {settlement}.")
    if len(usable) < len(routes):
        raise click.ClickException(
            f"PAYOUT_VALUES cannot fill {len(routes) - len(usable)} of them: run 'flask exchanger routes'"
        )
    click.echo("OK   PAYOUT_VALUES fills every payout field.")
    if create_test_order:
        test_order(usable, dict(v.split("=", 1) for v in values if "=" in v))


def whole_amount(source):
    """The smallest whole number within the route's limits, or None: a whole number is what
    a Python client once signed wrongly (150.0), so the test order proves the signature."""
    low, high = number(source.get("min")), number(source.get("max"))
    amount = max(Decimal(1), low.to_integral_value(rounding=ROUND_CEILING))
    return None if high > 0 and amount > high else amount


def number(value):
    try:
        result = Decimal(str(value if value not in (None, "") else 0))
    except ArithmeticError:
        return Decimal(0)
    return result if result.is_finite() else Decimal(0)


def buyer_values(fields, given):
    """[{key, value}] for the buyer's fields from --value or a placeholder that passes; None if
    a required field has neither."""
    filled = []
    for field in fields:
        field_id = str(field.get("_id"))
        # What the merchant gave wins; a placeholder only when the field's own regexp takes it.
        value = given.get(field_id) or field.get("placeholder") or ""
        if field_id not in given and not matches(field.get("regexp"), value):
            value = ""
        if not value and field.get("required"):
            return None
        filled.append({"key": field_id, "value": value})
    return filled


def matches(pattern, value):
    try:
        return not pattern or re.search(pattern, value) is not None
    except re.error:
        return True  # the exchanger will judge a pattern Python cannot read


def test_order(routes, given):
    """Create the smallest whole-number order on the first route it can fill; cancel it at once."""
    exchanger = get_exchanger()
    for route in routes:
        amount = whole_amount(route["from"])
        from_values = buyer_values(route["from"].get("fields") or [], given)
        route_values = buyer_values(route.get("fields") or [], given)
        if amount is None or from_values is None or route_values is None:
            continue
        payload = {
            "routeId": route["routeId"],
            "amount": amount,
            "fromValues": from_values,
            "toValues": checkout.payout_values(route),
            "routeValues": route_values,
            "lang": "en",
            "agreement": True,
            "hideOutData": True,
            # As checkout sends it: whether the site honours it shows in the status below.
            "skipPreview": True,
            "clientCallbackUrl": current_app.config["PUBLIC_URL"] + "/",
        }
        try:
            created = exchanger.create_order(payload)
        except ExchangerRejected as exc:
            if exc.code == NOT_AUTHORISED:
                raise click.ClickException(
                    "order/create refused the merchant key (40301): the signature of a"
                    " whole-number amount does not match"
                ) from None
            if exc.captcha_required:
                raise click.ClickException(
                    "order/create asks for a captcha (1601588666628861): this site takes orders"
                    " from a server only with a merchant key, or after its operator allows them"
                ) from None
            click.echo(f"--   {route['routeId']}: order/create refused ({exc.code}): {exc.message}")
            continue
        except ExchangerError as exc:
            raise click.ClickException(
                f"order/create gave no usable answer ({exc.message})"
            ) from None
        status = starting_status(exchanger, created)
        cancel(exchanger, created, amount, route)
        click.echo(status)
        return
    raise click.ClickException(
        "no route could take a test order: give the buyer requisites with --value FIELD_ID=VALUE"
        " (see 'flask exchanger routes')"
    )


def starting_status(exchanger, created):
    """A line saying which status the test order started in, and what that means for buyers."""
    try:
        status = exchanger.get_order(created.uid, created.secret)["status"]
    except ExchangerError as exc:
        return f"--   the test order's status could not be read ({exc.message})"
    if status == "new":
        return (
            "OK   the order started in 'new' despite skipPreview: buyers confirm it on the"
            " exchanger's payment page before paying (the shop's order page tells them)."
        )
    return f"OK   the order started in '{status}': buyers pay at once."


def cancel(exchanger, created, amount, route):
    try:
        exchanger.update_status(created.uid, created.secret, "deleted")
    except ExchangerError as exc:
        page = exchanger.order_url("en", created.uid, created.secret)
        raise click.ClickException(
            f"test order {created.uid} was created but not cancelled ({exc.message}):"
            f" cancel it at {page}"
        ) from None
    how = "signed, whole-number amount accepted" if exchanger.api_key else "anonymous"
    click.echo(
        f"OK   test order {created.uid} for {amount} {route['from'].get('xml')} created"
        f" ({how}) and cancelled."
    )
