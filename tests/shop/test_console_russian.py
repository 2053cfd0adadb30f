"""The merchant console in Russian: every console string translated, each page in Russian
with the switcher's choice, and its messages too; English stays the default."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from babel.messages.pofile import read_po
from werkzeug.security import generate_password_hash

from shop.console import PAGE_SIZE
from tests.conftest import BOTH_ENGINES
from tests.helpers import hidden_inputs, query
from tests.shop.test_console import PASSWORD, buy, log_in, post_button, sandbox_set
from tests.shop.test_dashboard import seed_shop

pytestmark = BOTH_ENGINES

ROOT = Path(__file__).parents[2]
CONSOLE_TEMPLATES = sorted((ROOT / "templates/console").glob("*.html"))
# The Python behind the console: its flash messages, form labels, state words and search notes.
CONSOLE_MODULES = [
    ROOT / "shop" / name
    for name in (
        "console.py",
        "dashboard.py",
        "paylinks.py",
        "payments.py",
        "logins.py",
        "forms.py",
        "orders.py",
        "api.py",
        "webhooks.py",
    )
]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "N_": None, "lazy_ngettext": (1, 2)}


def console_messages():
    """(context, msgid or (singular, plural)) of every string the console marks."""
    found = set()
    for path in CONSOLE_TEMPLATES:
        options = {"extensions": "jinja2.ext.i18n"}
        for _line, message, _comments, context in extract_from_file(
            "jinja2", path, keywords=KEYWORDS, options=options
        ):
            found.add((context, message))
    for path in CONSOLE_MODULES:
        for _line, message, _comments, context in extract_from_file(
            "python", path, keywords=KEYWORDS
        ):
            found.add((context, message))
    return found


def test_every_console_string_has_a_russian_translation():
    with (ROOT / "translations/ru/LC_MESSAGES/messages.po").open("rb") as source:
        catalogue = read_po(source)
    assert catalogue.plural_forms.startswith("nplurals=3;")
    messages = console_messages()
    assert ("login", "failed") in messages and (None, "Log out") in messages  # it extracts
    missing = []
    for context, message in messages:
        singular = message[0] if isinstance(message, tuple) else message
        entry = catalogue.get(singular, context=context)
        strings = () if entry is None else entry.string
        strings = strings if isinstance(strings, tuple) else (strings,)
        if not strings or not all(strings):
            missing.append((context, message))
        elif isinstance(message, tuple) and len(strings) != 3:
            missing.append((context, message))  # a count needs Russian's three forms
    assert missing == []


# -- the pages, with the switcher's choice -------------------------------------------------


@pytest.fixture
def console_app(app):
    """The shop with a console password, and CSRF on as in production."""
    app.config.update(WTF_CSRF_ENABLED=True, CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD))
    return app


def choose(client, lang, next_path):
    """The switcher in the header, as a click posts it: back to next_path."""
    csrf = hidden_inputs(client.get(next_path).get_data(as_text=True))["csrf_token"]
    return client.post("/language", data={"csrf_token": csrf, "lang": lang, "next": next_path})


@pytest.fixture
def russian_merchant(console_app):
    """A merchant who chose Russian on the login page, then logged in."""
    client = console_app.test_client()
    assert choose(client, "ru", "/console/login").location == "/console/login"
    assert log_in(client).status_code == 302
    return client


def visible_text(html):
    """What a reader sees: the page's text without its tags, attributes, scripts or styles."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def assert_russian(html, headings, english):
    assert '<html lang="ru">' in html
    for heading in headings:
        assert re.search(rf"<h[12][^>]*>\s*{re.escape(heading)}", html), heading
    text = visible_text(html)
    found = [word for word in english if re.search(rf"\b{re.escape(word)}\b", text)]
    assert found == []


# The console's words in English, on every page: the header and its menu.
MENU = ["Dashboard", "Orders", "Payment links", "API keys", "IPN log", "Logins", "Log out"]


def test_the_login_page_and_its_messages_speak_russian(console_app):
    client = console_app.test_client()
    choose(client, "ru", "/console/login")
    page = client.get("/console/login").get_data(as_text=True)
    assert_russian(page, ["Консоль продавца"], ["Merchant console", "Password", "Log in"])
    assert "Пароль" in page and ">Войти<" in page
    wrong = log_in(client, password="not the password").get_data(as_text=True)
    assert "Неверный пароль." in wrong and "Wrong password" not in wrong


def test_every_console_page_speaks_russian(console_app, russian_merchant):
    (order,) = buy(console_app)
    console_app.test_client().post("/ipn", data="junk", content_type="text/plain")
    merchant = russian_merchant
    created = post_button(
        merchant, "/console/links", amount="12.50", description="Счёт 42", reference="INV-42"
    ).get_data(as_text=True)
    assert "Платёжная ссылка создана." in created
    keys = post_button(merchant, "/console/api-keys", name="CRM").get_data(as_text=True)
    assert "Ваш новый ключ." in keys

    pages = {
        "/console/": (
            ["Заказы"],
            ["Search", "Filter", "Clear", "Export CSV", "Created", "State", "pending", "Price"],
        ),
        f"/console/orders/{order['token']}": (
            ["Заказ", "Суммы", "История статусов", "Письма покупателю", "Полученные IPN"],
            ["Amounts", "Refresh from the exchanger", "Status history", "State", "Next check"],
        ),
        "/console/ipn": (["Журнал IPN"], ["Received", "Outcome", "Body", "rejected", "Filter"]),
        "/console/logins": (["Входы в консоль"], ["When", "Outcome", "ok", "failed"]),
        "/console/dashboard": (
            ["Сводка", "Дольше всех ждут"],
            ["Paid revenue", "Conversion", "Waiting longest", "Show", "Period", "Last 30 days"],
        ),
        "/console/links": (
            ["Платёжные ссылки", "Новая платёжная ссылка", "Ссылки и платежи через API"],
            ["Amount", "Description", "Create link", "Switch off", "single", "open", "Older"],
        ),
        "/console/api-keys": (["Ключи API"], ["Create key", "Revoke", "active", "Name"]),
    }
    for path, (headings, english) in pages.items():
        answer = merchant.get(path)
        assert answer.status_code == 200, path
        assert_russian(answer.get_data(as_text=True), headings, MENU + english)
    orders_page = merchant.get("/console/").get_data(as_text=True)
    assert "ожидает оплаты" in orders_page and f"{order['price'].replace('.', ',')}" in orders_page
    assert "Выйти" in orders_page and "Журнал IPN" in orders_page


def test_the_search_notes_paging_and_filter_messages_speak_russian(console_app, russian_merchant):
    page = russian_merchant.get("/console/?q=nobody%40example&before=x").get_data(as_text=True)
    assert "Такой страницы нет: показаны самые новые." in page
    assert "Нет e-mail покупателя, который начинается с nobody@example" in page
    assert "Ищите по полному токену заказа" in page
    bad_date = russian_merchant.get("/console/?date_from=someday").get_data(as_text=True)
    assert "Некоторые фильтры заданы неверно и не применены." in bad_date
    period = russian_merchant.get("/console/dashboard?days=11").get_data(as_text=True)
    assert "Выберите период: 7, 30, 90 дней. Показаны последние 30 дней." in period
    assert "Последние 30 дней" in period and "Последние 7 дней" in period


def test_a_payment_links_errors_speak_russian(russian_merchant):
    page = post_button(
        russian_merchant, "/console/links", amount="12,50", description=" "
    ).get_data(as_text=True)
    assert "Сумма: нужно десятичное число вида «12.50»" in page
    assert "Описание: обязательное поле." in page
    assert "must be" not in page and "is required" not in page


def test_the_dashboard_draws_and_counts_in_russian(console_app, russian_merchant):
    seed_shop(console_app.config, datetime.now(UTC).date())
    html = russian_merchant.get("/console/dashboard").get_data(as_text=True)
    assert "Оплаченная выручка по дням, USDTTRC20" in html
    assert "36,355 USDTTRC20" in html  # the Russian decimal comma
    bars = re.findall(r"<rect[^>]*><title>([^<]+)</title>", html)
    assert bars and all(re.search(r"\d оплаченн(ый заказ|ых заказа|ых заказов)$", b) for b in bars)
    assert " paid" not in visible_text(html)


def test_switching_on_a_console_page_returns_to_it_and_english_stays_the_default(
    console_app, russian_merchant
):
    answer = choose(russian_merchant, "en", "/console/ipn?outcome=rejected")
    assert answer.status_code == 302 and answer.location == "/console/ipn?outcome=rejected"
    assert "<h1>IPN log</h1>" in russian_merchant.get("/console/ipn").get_data(as_text=True)
    # With no choice made and no Russian browser, the console is English.
    fresh = console_app.test_client()
    assert log_in(fresh).status_code == 302
    page = fresh.get("/console/").get_data(as_text=True)
    assert '<html lang="en">' in page and "<h1>Orders</h1>" in page


def test_logging_out_keeps_the_language(russian_merchant):
    post_button(russian_merchant, "/console/logout")
    page = russian_merchant.get("/console/login").get_data(as_text=True)
    assert "Консоль продавца" in page


def test_the_pager_speaks_russian(console_app, russian_merchant):
    console_app.test_client().post("/ipn", data="junk", content_type="text/plain")
    for n in range(PAGE_SIZE):
        query(
            console_app.config,
            "INSERT INTO ipn_log (received_at, remote_addr, content_type, headers, body, outcome)"
            " SELECT received_at, remote_addr, content_type, headers, ?, outcome FROM ipn_log"
            " WHERE id = 1",
            f"junk{n}",
        )
    first = russian_merchant.get("/console/ipn").get_data(as_text=True)
    older = re.search(r'href="([^"]+)">Более старые →</a>', first)
    assert older and "Older" not in first and first.count("<td>отклонено</td>") == PAGE_SIZE
    second = russian_merchant.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert ">← Более новые</a>" in second and "Newer" not in second


def test_the_webhook_pages_speak_russian(console_app, russian_merchant):
    merchant = russian_merchant
    empty = merchant.get("/console/webhooks/").get_data(as_text=True)
    assert_russian(empty, ["Вебхуки", "Адреса получателей"], [*MENU, "Webhooks", "Add endpoint"])
    refused = post_button(merchant, "/console/webhooks/", url="ftp://example.com/hooks")
    assert "URL должен начинаться с http:// или https://." in refused.get_data(as_text=True)
    added = post_button(merchant, "/console/webhooks/", url="http://127.0.0.1:9/hooks")
    assert "Секрет для подписи, показан один раз" in added.get_data(as_text=True)
    (order,) = buy(console_app)
    sandbox_set(console_app, order["exchanger_uid"], "inProgress")
    # The refresh moves the order to processing, which queues an event for the endpoint.
    refreshed = post_button(merchant, f"/console/orders/{order['token']}/refresh")
    assert "Запрос к обменнику: применено." in refreshed.get_data(as_text=True)
    (event,) = query(console_app.config, "SELECT id, endpoint_id FROM webhook_outbox")
    pages = {
        "/console/webhooks/": (["Вебхуки", "Последние события"], ["Endpoints", "Redeliver"]),
        f"/console/webhooks/endpoints/{event['endpoint_id']}": (
            ["Адрес", "События"],
            ["Disable", "Make a new secret", "Queued", "Attempts"],
        ),
        f"/console/webhooks/events/{event['id']}": (
            ["Доставки"],
            ["Redeliver now", "Deliveries", "State", "No attempt yet", "next attempt"],
        ),
    }
    for path, (headings, english) in pages.items():
        answer = merchant.get(path)
        assert answer.status_code == 200, path
        assert_russian(answer.get_data(as_text=True), headings, MENU + english)
    page = merchant.get(f"/console/webhooks/events/{event['id']}").get_data(as_text=True)
    # The event's state in words; its JSON body below keeps the payment's states as codes.
    assert re.search(r'id="event-state">(ждёт доставки|доставляется|доставлено)', page)
    queued = post_button(merchant, f"/console/webhooks/events/{event['id']}/redeliver")
    assert "Поставлено в очередь: событие скоро уйдёт." in queued.get_data(as_text=True)
