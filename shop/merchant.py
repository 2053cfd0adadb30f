"""Merchant tools for the IPN: send this shop a signed test IPN, inspect and prune the log.

Beside discovery.py (the exchanger's side of setup): these are the shop's own side. The test
IPN goes out over HTTP to PUBLIC_URL/ipn, through the proxy and all, as the exchanger's would.
"""

import time
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from . import orders
from .db import get_db
from .exchanger import ExchangerUnavailable, post_form
from .ipn import AMOUNT, checksum

ipn_cli = AppGroup("ipn", help="Send test IPNs to this shop; inspect and prune the IPN log.")


def test_fields(order, status, stale, amount, bad_hash):
    """An IPN for order as the exchanger would sign it (or deliberately not)."""
    last = order["last_event_ms"] or 0
    timestamp = max(last - 1, 0) if stale else max(int(time.time() * 1000), last + 1)
    fields = {
        "orderUID": str(order["exchanger_uid"]),
        "orderId": order["exchanger_id"],
        "newStatus": status,
        "inAmount": order["reported_in"] or order["send_amount"],
        "outAmount": amount or order["price"],
        "xml_from": order["from_xml"],
        "xml_to": order["to_xml"],
        "timestamp": str(timestamp),
    }
    secret = "not-the-secret" if bad_hash else order["ipn_secret"]
    fields["hash"] = checksum(fields, secret)
    return fields


@ipn_cli.command("send")
@click.argument("token")
@click.argument("status", type=click.Choice(orders.EXCHANGER_STATUSES))
@click.option("--stale", is_flag=True, help="Date it before the last IPN the order applied.")
@click.option("--duplicate", is_flag=True, help="Send the same IPN twice.")
@click.option("--bad-hash", is_flag=True, help="Sign it with the wrong secret.")
@click.option("--amount", help="The outAmount to report (default: the order's price).")
def send_command(token, status, stale, duplicate, bad_hash, amount):
    """Post a signed IPN for the order TOKEN to this shop's own /ipn and print the answers."""
    if amount is not None and not AMOUNT.match(amount):
        raise click.BadParameter("a plain decimal number, like 12.50", param_hint="--amount")
    order = orders.find_by_token(token)
    if order is None:
        raise click.ClickException(f"no order with token {token}")
    if not order["exchanger_id"]:
        raise click.ClickException("the exchanger has not confirmed this order: it has no ids yet")
    fields = test_fields(order, status, stale, amount, bad_hash)
    url = current_app.config["PUBLIC_URL"] + "/ipn"
    # The shop talking to itself over HTTP, as the exchanger would: not an exchanger call.
    for _ in range(2 if duplicate else 1):
        try:
            status, text = post_form(url, fields)
        except ExchangerUnavailable as exc:
            raise click.ClickException(f"{url} did not answer: {exc.message}") from None
        click.echo(f"{status} {text.strip()}")
    after = orders.get_order(get_db(), order["id"])
    click.echo(f"Order {token} is now {after['status']}.")


@ipn_cli.command("inspect")
@click.option("--last", type=click.IntRange(1, 500), default=10, show_default=True)
def inspect_command(last):
    """Show the last IPNs received: outcome, which field held the checksum, whether it verified.

    The docs never say where the platform puts the checksum; the first real IPN does.
    """
    entries = orders.ipn_log_entries(limit=last)
    if not entries:
        click.echo("No IPN has been received yet.")
        return
    for entry in entries:
        verified = (
            f"verified ({entry['checksum_field']})" if entry["checksum_field"] else "NOT verified"
        )
        click.echo(f"#{entry['id']} {entry['received_at']} {entry['outcome']:9} {verified}")
        click.echo(f"    content type: {entry['content_type'] or '(none)'}")
        if entry["reason"]:
            click.echo(f"    reason: {entry['reason']}")


@ipn_cli.command("prune")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
def prune_command(days):
    """Delete IPN log entries older than DAYS: the log is evidence, not an archive."""
    cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    removed = orders.prune_ipn_log(cutoff)
    click.echo(f"Removed {removed} IPN log entries older than {days} days.")
