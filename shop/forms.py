"""Flask-WTF forms, including the requisite form built from an exchanger route's own fields."""

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from . import payments
from .orders import IPN_OUTCOMES, STATES

MAX_REQUISITE_LENGTH = 256


class AddToCartForm(FlaskForm):
    product_id = HiddenField(validators=[DataRequired()])
    quantity = IntegerField(
        _l("Quantity"), default=1, validators=[InputRequired(), NumberRange(1, 99)]
    )


class CartLineForm(FlaskForm):
    product_id = HiddenField(validators=[DataRequired()])
    quantity = IntegerField(_l("Quantity"), validators=[InputRequired(), NumberRange(0, 99)])
    remove = SubmitField(_l("Remove"))


class ButtonForm(FlaskForm):
    """A POST that is only a button still carries a CSRF token."""


def strip(value):
    return value.strip() if isinstance(value, str) else value


class RouteRegexp:
    """The route's own check: JavaScript's value.match(regexp), an unanchored search."""

    def __init__(self, pattern, message):
        try:
            self.regex = re.compile(pattern) if pattern else None
        except re.error:
            # A pattern Python cannot read is left to the exchanger, which checks every value.
            self.regex = None
        self.message = message or _l("This value is not valid.")

    def __call__(self, form, field):
        if self.regex is not None and field.data and not self.regex.search(field.data):
            raise ValidationError(self.message)


@dataclass(frozen=True)
class Requisite:
    """One form field and the route field it fills: group is fromValues or routeValues."""

    form_name: str
    group: str
    field_id: str
    label: str


class RequisiteForm(FlaskForm):
    # Random per rendered form: a second submit of the same form finds the first's order.
    checkout_key = HiddenField(validators=[DataRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")])
    agreement = BooleanField(
        _l("I agree to the exchanger's terms of service and to the shop's terms of sale"),
        validators=[DataRequired(_l("Please accept the terms to continue."))],
    )


def route_field(definition):
    """A WTForms field for one route field: a select when it has options, text otherwise."""
    label = str(definition.get("name") or "Value")
    required = bool(definition.get("required"))
    checks = [InputRequired(_l("%(label)s is required.", label=label)) if required else Optional()]
    checks.append(Length(max=MAX_REQUISITE_LENGTH))
    render = {"placeholder": str(definition.get("placeholder") or ""), "autocomplete": "off"}
    options = definition.get("options")
    if isinstance(options, list) and options:
        choices = [SelectChoice("", _l("Choose…"))] + [
            SelectChoice(str(o.get("value")), str(o.get("name") or o.get("value")))
            for o in options
            if isinstance(o, dict)
        ]
        return SelectField(label, choices=choices, validators=checks, render_kw=render)
    message = definition.get("regexp_error")
    checks.append(
        RouteRegexp(definition.get("regexp") or "", message if isinstance(message, str) else None)
    )
    render["maxlength"] = MAX_REQUISITE_LENGTH
    return StringField(label, validators=checks, filters=[strip], render_kw=render)


def requisite_form_class(route):
    """A RequisiteForm subclass for this route, and the Requisites that map it to route fields.

    from.fields become fromValues and the route's own fields routeValues; to.fields are the
    merchant's payout requisites, filled from configuration, never asked of the buyer.
    """
    attributes, requisites = {}, []
    groups = (("fromValues", route["from"].get("fields")), ("routeValues", route.get("fields")))
    for group, definitions in groups:
        for index, definition in enumerate(definitions or []):
            if not isinstance(definition, dict) or not definition.get("_id"):
                continue
            name = f"{group}_{index}"
            attributes[name] = route_field(definition)
            requisites.append(
                Requisite(name, group, str(definition["_id"]), str(definition.get("name") or ""))
            )
    return type("RouteRequisiteForm", (RequisiteForm,), attributes), requisites


class LoginForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=200)])
    # Only past the guessing limit: printed by `flask console unlock` on the server.
    unlock_code = StringField(_l("One-time unlock code"), validators=[Length(max=100)])


class ReviewForm(FlaskForm):
    note = TextAreaField(
        _l("Note"),
        filters=[strip],
        validators=[DataRequired(_l("Say how it was settled.")), Length(max=500)],
    )


class QueryForm(FlaskForm):
    """Filters read from GET parameters: no CSRF token, since they change nothing."""

    class Meta:
        csrf = False


class OrderFilterForm(QueryForm):
    # The values stay the codes (they are in the URL); the words are translated (STATES: N_).
    state = SelectField(
        _l("State"),
        choices=[SelectChoice("", _l("Any state"))] + [SelectChoice(s, _l(s)) for s in STATES],
        validators=[Optional()],
    )
    date_from = DateField(_l("From"), validators=[Optional()])
    date_to = DateField(_l("To"), validators=[Optional()])
    q = StringField(
        _l("Token, exchanger uid or e-mail"),
        filters=[strip],
        validators=[Optional(), Length(max=200)],
    )


class IpnFilterForm(QueryForm):
    outcome = SelectField(
        _l("Outcome"),
        choices=[SelectChoice("", _l("Any outcome"))]
        + [SelectChoice(o, _l(o)) for o in IPN_OUTCOMES],
        validators=[Optional()],
    )


class DashboardForm(QueryForm):
    # The choices are dashboard.PERIODS (not imported: the dashboard imports this module).
    days = SelectField(
        _l("Period"),
        choices=[
            SelectChoice(days, lazy_ngettext("Last %(num)d day", "Last %(num)d days", days))
            for days in (7, 30, 90)
        ],
        coerce=int,
    )


class PaymentCheck:
    """One of shop/payments.py's checks as a validator: the API and the console say the same."""

    def __init__(self, check):
        self.check = check

    def __call__(self, form, field):
        try:
            field.data = self.check(field.data)
        except payments.Invalid as exc:
            problem = _(exc.template, **exc.values)
            raise ValidationError(
                _("%(field)s %(problem)s.", field=field.label.text, problem=problem)
            ) from None


def in_the_future(form, field):
    if (
        field.data is not None
        and payments.stamp(payments.expiry_from_form(field.data)) <= payments.now()
    ):
        raise ValidationError(_("The expiry must be in the future (UTC)."))


class PaymentLinkForm(FlaskForm):
    amount = StringField(
        _l("Amount"), filters=[strip], validators=[PaymentCheck(payments.parse_amount)]
    )
    description = StringField(
        _l("Description"),
        validators=[
            PaymentCheck(
                lambda v: payments.check_text(
                    "description", v, payments.MAX_DESCRIPTION, required=True
                )
            )
        ],
    )
    reference = StringField(
        _l("Your reference (optional)"),
        validators=[
            PaymentCheck(
                lambda v: payments.check_text(
                    "reference", v, payments.MAX_REFERENCE, required=False
                )
            )
        ],
    )
    buyer_email = StringField(
        _l("Buyer's e-mail (optional)"), validators=[PaymentCheck(payments.check_email)]
    )
    expires_at = DateTimeLocalField(
        _l("Expires (UTC, optional)"), validators=[Optional(), in_the_future]
    )
    reusable = BooleanField(_l("Reusable: any number of buyers may pay it"))


class ApiKeyForm(FlaskForm):
    name = StringField(
        _l("Name"), filters=[strip], validators=[DataRequired(_l("Name the key.")), Length(max=100)]
    )
