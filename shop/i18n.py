"""The buyer's language (English or Russian): chosen in the switcher, else the browser's."""

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from babel import Locale
from babel.numbers import parse_pattern
from flask import Blueprint, redirect, request, session, url_for
from flask_babel import Babel, get_locale
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectChoice, SelectField

# The platform's `lang` takes exactly these.
LANGUAGES = ("en", "ru")
TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"

bp = Blueprint("i18n", __name__)


class LanguageForm(FlaskForm):
    # Each language named in itself, so a buyer finds theirs whatever the page's language.
    lang = SelectField(choices=[SelectChoice("en", "English"), SelectChoice("ru", "Русский")])
    next = HiddenField()


babel = Babel()


def N_(text):
    """Marks a string for the translation catalogue where it is defined; _() runs where it is shown."""
    return text


def select_locale():
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def current_lang():
    """The buyer's language code, as the exchanger's `lang` and payment URL take it."""
    return get_locale().language


def money(value):
    """An amount in the buyer's number format, with exactly the decimals it has.

    12.50 stays 12.50 (12,50 in ru) and 0.00040467 keeps all eight: amounts are never rounded
    for display, or the buyer would send the wrong sum.
    """
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    pattern, locale = number_format(max(0, -number.as_tuple().exponent), current_lang())
    return pattern.apply(number, locale)


@lru_cache(maxsize=64)
def number_format(places, lang):
    """Babel's parsed pattern for this many decimals, and the locale: parsed once, not per amount."""
    return parse_pattern("#,##0" + ("." + "0" * places if places else "")), Locale.parse(lang)


def same_site_path(target):
    """target when it is a path on this site, else the catalogue."""
    target = target or ""
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return url_for("catalog.index")
    return target


@bp.post("/language")
def choose_language():
    """The switcher: remember the choice in the session, then go back to the page."""
    # The switcher posts a form; a JSON body (which Flask-WTF would read) is not one.
    form = LanguageForm(formdata=request.form)
    if form.validate_on_submit():
        session["lang"] = form.lang.data
    return redirect(same_site_path(form.next.data))


def init_app(app):
    babel.init_app(
        app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS)
    )
    app.jinja_env.filters["money"] = money

    @app.context_processor
    def language_switch():
        # formdata=None: the switcher on every page, error pages included, never reads the
        # request's body (a JSON body that is not an object would break the page).
        form = LanguageForm(formdata=None)
        return {"languages": LANGUAGES, "lang": current_lang(), "language_form": form}
