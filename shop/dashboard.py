"""The console's dashboard: paid revenue per day and per route, conversion, time to paid, and
the orders that need a look; its charts drawn here as SVG geometry (no chart library).

Every figure is read through an index range over its period (migration 0005), so the page costs
what the period holds, not what the shop has ever sold. Days are UTC days: every stamp the shop
writes is ISO text in UTC, so an order's day is the first ten characters of its stamp and a
period is a range of that text.
"""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import format_decimal
from flask import flash, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from .db import get_db, is_postgresql, money_sum, query, scalar
from .forms import DashboardForm
from .i18n import N_, number_format
from .orders import STATE_OF, STATES, payment_state

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
WAITING_SHOWN = 10
ROUTES_CHARTED = 12

# Written as migration 0005's partial indexes are: SQLite uses one only for a query whose WHERE
# repeats its terms.
PAID = "status = 'done' AND review_reason IS NULL"
IN_REVIEW = "review_reason IS NOT NULL"
OPEN = "status NOT IN ('create_failed', 'deleted', 'done', 'returned')"


@dataclass(frozen=True)
class Period:
    """The last `days` UTC days, today included: stamps from `start` up to (not) `end`."""

    days: int
    first_day: date
    last_day: date

    @classmethod
    def ending(cls, today, days):
        return cls(days, today - timedelta(days=days - 1), today)

    @property
    def start(self):
        # '2026-11-01' sorts before every stamp of that day ('2026-11-01T00:00:00+00:00').
        return self.first_day.isoformat()

    @property
    def end(self):
        return (self.last_day + timedelta(days=1)).isoformat()

    @property
    def params(self):
        return {"start": self.start, "end": self.end}

    def each_day(self):
        return [self.first_day + timedelta(days=n) for n in range(self.days)]


# -- the figures ----------------------------------------------------------------------------


def paid_groups(db, period):
    """The period's paid orders summed per UTC day paid, route and currency: one read of the
    index for both charts (its rows are at most days x routes, whatever the orders)."""
    return query(
        db,
        f"SELECT substr(finished_at, 1, 10) AS day, from_xml, to_xml, currency,"  # noqa: S608 - the aggregate's name, no input
        f" {money_sum(db)}(price) AS revenue, COUNT(*) AS n FROM orders"
        f" WHERE {PAID} AND finished_at >= :start AND finished_at < :end"
        " GROUP BY substr(finished_at, 1, 10), from_xml, to_xml, currency",
        period.params,
    )


def revenue_per_day(groups, period):
    """{currency: [(day, revenue, paid orders)] for every day of the period} (days paid, UTC)."""
    found = {}
    for row in groups:
        revenue, paid = found.get((row["day"], row["currency"]), (Decimal(0), 0))
        found[row["day"], row["currency"]] = (revenue + Decimal(row["revenue"]), paid + row["n"])
    return {
        currency: [
            (day, *found.get((day.isoformat(), currency), (Decimal(0), 0)))
            for day in period.each_day()
        ]
        for currency in sorted({row["currency"] for row in groups})
    }


@dataclass(frozen=True)
class Route:
    from_xml: str
    to_xml: str
    currency: str
    revenue: Decimal
    paid: int

    @property
    def name(self):
        return f"{self.from_xml} → {self.to_xml}"


def revenue_per_route(groups):
    """Paid revenue per route (what the buyer paid with → what the shop received), largest first."""
    found = {}
    for row in groups:
        key = (row["from_xml"], row["to_xml"], row["currency"])
        revenue, paid = found.get(key, (Decimal(0), 0))
        found[key] = (revenue + Decimal(row["revenue"]), paid + row["n"])
    routes = [Route(*key, revenue, paid) for key, (revenue, paid) in found.items()]
    return sorted(routes, key=lambda r: (r.currency, -r.revenue, r.name))


def created_per_state(db, period):
    """{state: orders created in the period that are in it now}, as the orders list counts."""
    created = query(
        db,
        "SELECT status, COUNT(*) AS n FROM orders"
        " WHERE created_at >= :start AND created_at < :end GROUP BY status",
        period.params,
    )
    in_review = query(
        db,
        f"SELECT status, COUNT(*) AS n FROM orders WHERE {IN_REVIEW}"  # noqa: S608 - constants
        " AND created_at >= :start AND created_at < :end GROUP BY status",
        period.params,
    )
    counts = dict.fromkeys(STATES, 0)
    for row in created:
        counts[STATE_OF.get(row["status"], "processing")] += row["n"]
    for row in in_review:
        counts[STATE_OF.get(row["status"], "processing")] -= row["n"]
        counts["review"] += row["n"]
    return counts


def reviews_open(db):
    """Every order waiting for a person's review, however old (they are few: each is settled)."""
    return scalar(db, f"SELECT COUNT(*) FROM orders WHERE {IN_REVIEW}")  # noqa: S608 - constant


def median_seconds_to_paid(db, period, paid):
    """The median time from creation to paid of the period's `paid` orders, or None for none.

    PostgreSQL computes it (percentile_cont). SQLite has no percentile: it sorts the period's
    paid orders by duration and reads the middle one or two (LIMIT/OFFSET), which costs a sort
    of the paid orders in the period (read from the index orders_paid_by_finished), never a
    scan of the table; no index can order by a duration within a range of another column.
    """
    if not paid:
        return None
    if is_postgresql(db):
        value = scalar(
            db,
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM"  # noqa: S608 - constants
            " CAST(finished_at AS timestamptz) - CAST(created_at AS timestamptz)))"
            f" FROM orders WHERE {PAID} AND finished_at >= :start AND finished_at < :end",
            period.params,
        )
        # None when the paid orders counted were refunded meanwhile (two queries, no snapshot).
        return None if value is None else round(float(value))
    middle = query(
        db,
        "SELECT (julianday(finished_at) - julianday(created_at)) * 86400 AS seconds FROM orders"  # noqa: S608 - constants
        f" WHERE {PAID} AND finished_at >= :start AND finished_at < :end"
        " ORDER BY seconds LIMIT :count OFFSET :skip",
        {**period.params, "count": 2 - paid % 2, "skip": (paid - 1) // 2},
    )
    if not middle:
        return None
    return round(sum(row["seconds"] for row in middle) / len(middle))


def waiting_longest(db, limit=WAITING_SHOWN):
    """The open (not final) orders created first: the index's first rows, whatever the period."""
    return query(
        db,
        "SELECT token, created_at, status, review_reason, price, currency, from_xml FROM orders"  # noqa: S608 - constants
        f" WHERE {OPEN} ORDER BY created_at, id LIMIT :limit",
        {"limit": limit},
    )


@dataclass(frozen=True)
class Figures:
    period: Period
    per_day: dict
    per_route: list
    states: dict
    created: int
    paid_created: int
    paid: int
    median_seconds: int | None
    reviews_open: int
    waiting: list

    @property
    def conversion(self):
        """Of the orders created in the period, the share paid by now (None when none)."""
        return None if not self.created else self.paid_created / self.created

    @property
    def totals(self):
        """{currency: paid revenue over the whole period}."""
        return {
            currency: sum((revenue for _, revenue, _ in series), Decimal(0))
            for currency, series in self.per_day.items()
        }

    @property
    def empty(self):
        return not self.created and not self.paid and not self.waiting and not self.reviews_open


def figures(db, period):
    groups = paid_groups(db, period)
    paid = sum(row["n"] for row in groups)
    states = created_per_state(db, period)
    return Figures(
        period=period,
        per_day=revenue_per_day(groups, period),
        per_route=revenue_per_route(groups),
        states=states,
        created=sum(states.values()),
        paid_created=states["paid"],
        paid=paid,
        median_seconds=median_seconds_to_paid(db, period, paid),
        reviews_open=reviews_open(db),
        waiting=waiting_longest(db),
    )


# -- the charts: geometry here, the SVG markup in templates/console/dashboard.html ----------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    """One chart: what the SVG draws, and the rows of the table that says the same in numbers."""

    id: str
    title: str
    description: str
    width: int
    height: int
    bars: list
    labels: list
    grid: list  # (x1, x2, y, text) of each line across the plot, at a value of its axis
    columns: tuple
    rows: list


WIDTH = 720


def nice_ceiling(value):
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above value: a round top for an axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def merchant_locale():
    """The console's language; English outside a request (the charts are drawn in tests too)."""
    return get_locale() or Locale.parse("en")


def money(value):
    """An amount with at least two decimals and all it has, in the merchant's number format."""
    pattern, locale = number_format(max(2, -value.as_tuple().exponent), merchant_locale().language)
    return pattern.apply(value, locale)


def axis_number(value):
    pattern = "#,##0" if value >= 10 else "0.########"
    return format_decimal(value, pattern, locale=merchant_locale())


def paid_words(amount, currency, paid):
    """What a bar says: its revenue and how many orders were paid."""
    return ngettext(
        "%(amount)s %(currency)s, %(num)d paid",
        "%(amount)s %(currency)s, %(num)d paid",
        paid,
        amount=amount,
        currency=currency,
    )


def day_chart(currency, series):
    """Paid revenue per day in one currency: a column per day, the value axis on the left."""
    left, right, top, bottom, height = 70, 10, 12, 34, 240
    plot_width, plot_height = WIDTH - left - right, height - top - bottom
    top_value = nice_ceiling(float(max(revenue for _, revenue, _ in series)))
    slot = plot_width / len(series)
    label_every = math.ceil(len(series) / 8)
    bars, labels = [], []
    for n, (day, revenue, paid) in enumerate(series):
        bar_height = plot_height * float(revenue) / top_value
        x = left + n * slot
        bars.append(
            Bar(
                x=round(x + slot * 0.15, 2),
                y=round(top + plot_height - bar_height, 2),
                width=round(slot * 0.7, 2),
                height=round(bar_height, 2),
                label=day.isoformat(),
                value=paid_words(money(revenue), currency, paid),
            )
        )
        if (len(series) - 1 - n) % label_every == 0:
            short_day = format_skeleton("MMMd", day, locale=merchant_locale())
            labels.append(Text(round(x + slot / 2, 2), height - bottom + 18, short_day))
    grid = [
        (
            left,
            WIDTH - right,
            round(top + plot_height * (1 - share), 2),
            axis_number(top_value * share),
        )
        for share in (0, 0.5, 1)
    ]
    first, last = series[0][0], series[-1][0]
    total = sum((revenue for _, revenue, _ in series), Decimal(0))
    return Chart(
        id=f"revenue-{currency.lower()}",
        title=_("Paid revenue per day, %(currency)s", currency=currency),
        description=_(
            "Columns for each UTC day from %(first)s to %(last)s: %(total)s %(currency)s in all.",
            first=first.isoformat(),
            last=last.isoformat(),
            total=money(total),
            currency=currency,
        ),
        width=WIDTH,
        height=height,
        bars=bars,
        labels=labels,
        grid=grid,
        columns=(_("Day (UTC)"), _("Revenue (%(currency)s)", currency=currency), _("Paid orders")),
        rows=[(day.isoformat(), money(revenue), paid) for day, revenue, paid in series],
    )


def route_chart(currency, routes):
    """Paid revenue per route in one currency: a horizontal bar per route, largest first."""
    left, right, top, row_height = 190, 230, 8, 28
    shown = routes[:ROUTES_CHARTED]
    height = top * 2 + row_height * len(shown)
    top_value = nice_ceiling(float(shown[0].revenue))
    plot_width = WIDTH - left - right
    bars, labels = [], []
    for n, route in enumerate(shown):
        y = top + n * row_height
        width = plot_width * float(route.revenue) / top_value
        value = paid_words(money(route.revenue), currency, route.paid)
        bars.append(Bar(left, y + 4, round(width, 2), row_height - 8, route.name, value))
        labels.append(Text(left - 8, y + row_height / 2 + 5, route.name, "end"))
        labels.append(Text(round(left + width + 6, 2), y + row_height / 2 + 5, value, "start"))
    left_out = len(routes) - len(shown)
    return Chart(
        id=f"routes-{currency.lower()}",
        title=_("Paid revenue per route, %(currency)s", currency=currency),
        description=ngettext(
            "A bar for the %(num)d route that brought revenue.",
            "A bar for each of the %(num)d routes that brought the most.",
            len(shown),
        )
        + (
            " "
            + ngettext(
                "%(num)d smaller one is in the table only.",
                "%(num)d smaller ones are in the table only.",
                left_out,
            )
            if left_out
            else ""
        ),
        width=WIDTH,
        height=height,
        bars=bars,
        labels=labels,
        grid=[],
        columns=(_("Route"), _("Revenue (%(currency)s)", currency=currency), _("Paid orders")),
        rows=[(route.name, money(route.revenue), route.paid) for route in routes],
    )


def charts(figures):
    """(revenue per day charts, revenue per route charts), one of each per currency paid in."""
    days = [day_chart(currency, series) for currency, series in figures.per_day.items()]
    per_currency = {}
    for route in figures.per_route:
        per_currency.setdefault(route.currency, []).append(route)
    routes = [route_chart(currency, routes) for currency, routes in per_currency.items()]
    return days, routes


# -- the page -------------------------------------------------------------------------------


# Abbreviations, as a count needs no plural after them (translated where shown).
DURATION_UNITS = ((N_("d"), 86400), (N_("h"), 3600), (N_("min"), 60), (N_("s"), 1))


def duration_words(seconds):
    """40 s, 3 min 20 s, 2 h 5 min, 1 d 4 h: the largest unit and the next one (when not 0)."""
    if seconds is None:
        return "—"
    units = DURATION_UNITS
    first = next((n for n, (_u, size) in enumerate(units) if seconds >= size), len(units) - 1)
    parts = [f"{seconds // units[first][1]} {_(units[first][0])}"]
    if first + 1 < len(units):
        name, size = units[first + 1]
        rest = seconds % units[first][1] // size
        if rest:
            parts.append(f"{rest} {_(name)}")
    return " ".join(parts)


def read_period():
    """?days= among PERIODS; anything else is the default, with a word saying so."""
    form = DashboardForm(request.args)
    if "days" in request.args and not form.validate():
        flash(
            _(
                "Choose a period of %(periods)s days; showing %(default)s.",
                periods=", ".join(map(str, PERIODS)),
                default=DEFAULT_PERIOD,
            ),
            "error",
        )
        return form, DEFAULT_PERIOD
    return form, form.days.data if "days" in request.args else DEFAULT_PERIOD


def page():
    form, days = read_period()
    form.days.data = days
    period = Period.ending(datetime.now(UTC).date(), days)
    found = figures(get_db(), period)
    day_charts, route_charts = charts(found)
    dates = {"date_from": period.start, "date_to": period.last_day.isoformat()}
    return render_template(
        "console/dashboard.html",
        form=form,
        figures=found,
        day_charts=day_charts,
        route_charts=route_charts,
        median=duration_words(found.median_seconds),
        money=money,
        links={
            "created": url_for("console.orders_page", **dates),
            "paid": url_for("console.orders_page", state="paid", **dates),
            "failed": url_for("console.orders_page", state="failed", **dates),
            "review": url_for("console.orders_page", state="review", **dates),
            "all_reviews": url_for("console.orders_page", state="review"),
        },
        state_of=payment_state,
    )
