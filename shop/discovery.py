"""`flask exchanger routes|check`: learn a real site's directions and fields, and test the setup."""

import click
from flask import current_app
from flask.cli import AppGroup

from . import config
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
def check_command():
    """Call the configured exchanger once and report whether URL, keys and payout values work."""
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
        raise click.ClickException(f"{base}: no usable answer ({exc.message})") from None
    keys = "signed with EXCHANGER_API_KEY" if get_exchanger().api_key else "anonymous (no API key)"
    click.echo(f"OK   {base} answers; calls are {keys}.")
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
