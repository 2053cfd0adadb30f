"""English and Russian: the switcher, the browser's language, and what reaches the exchanger."""

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.helpers import BTC_ROUTE, SETTLEMENT, hidden_inputs, place_order, query

ROOT = Path(__file__).parents[2]
RU = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}


def test_the_browsers_language_is_used(client):
    html = client.get("/", headers=RU).get_data(as_text=True)
    assert '<html lang="ru">' in html and "Каталог" in html and "Кружка «Гроссбух»" in html
    assert f"12,50 {SETTLEMENT['symbol']}" in html and SETTLEMENT["name"] in html


@pytest.mark.parametrize("header", ["de-DE,de;q=0.9", "", "*", "xx;q=abc"])
def test_other_or_broken_languages_fall_back_to_english(client, header):
    html = client.get("/", headers={"Accept-Language": header}).get_data(as_text=True)
    assert '<html lang="en">' in html and "Catalogue" in html


def switch(client, lang, next_path="/cart"):
    token = hidden_inputs(client.get("/").get_data(as_text=True))["csrf_token"]
    return client.post("/language", data={"csrf_token": token, "lang": lang, "next": next_path})


def test_the_switcher_wins_over_the_browser_and_goes_back(app):
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    answer = switch(client, "ru")
    assert answer.status_code == 302 and answer.location == "/cart"
    assert "Ваша корзина" in client.get("/cart", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    switch(client, "en")
    assert "Your cart" in client.get("/cart", headers=RU).get_data(as_text=True)


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example", "/\\evil"])
def test_the_switcher_never_leaves_the_site(app, next_path):
    app.config["WTF_CSRF_ENABLED"] = True
    assert switch(app.test_client(), "ru", next_path).location == "/"


def test_the_switcher_refuses_unknown_languages_and_missing_tokens(app):
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    switch(client, "de")
    assert "Catalogue" in client.get("/").get_data(as_text=True)
    assert client.post("/language", data={"lang": "ru"}).status_code == 400


def test_a_russian_buyer_checks_out_in_russian_and_pays_in_russian(app, client):
    sent = []
    exchanger = app.extensions["exchanger"]
    original = exchanger.create_order
    exchanger.create_order = lambda payload: sent.append(payload) or original(payload)
    client.post("/cart/add", data={"product_id": "mug", "quantity": "2"})
    routes = client.get("/checkout", headers=RU).get_data(as_text=True)
    assert "Как вы хотите оплатить?" in routes and "0,00040467 BTC" in routes
    form = client.get(f"/checkout/{BTC_ROUTE}", headers=RU).get_data(as_text=True)
    assert "Отправьте ровно указанную сумму" in form  # the route's ##ru## instruction
    empty = client.post(
        f"/checkout/{BTC_ROUTE}",
        data={"checkout_key": hidden_inputs(form)["checkout_key"]},
        headers=RU,
    ).get_data(as_text=True)
    assert "Поле «Your BTC address (for refunds)» обязательно." in empty
    assert "Чтобы продолжить, примите условия." in empty
    location = place_order(client, headers=RU)
    assert "/sandbox/ru/payment/" in location
    assert sent[-1]["lang"] == "ru"
    (order,) = query(app.config, "SELECT token, lang FROM orders")
    assert order["lang"] == "ru"
    status = client.get(f"/orders/{order['token']}/status", headers=RU).get_json()
    assert status["state"] == "pending" and status["label"] == "ожидает оплаты"


def test_error_pages_speak_the_buyers_language(client):
    assert "По этому адресу ничего нет." in client.get("/nowhere", headers=RU).get_data(
        as_text=True
    )


def test_every_message_in_the_code_has_a_russian_translation(tmp_path):
    template = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-k",
            "N_",
            "-k",
            "lazy_ngettext:1,2",
            "-o",
            str(template),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with template.open("rb") as source:
        wanted = {m.id for m in read_po(source) if m.id}
    with (ROOT / "translations/ru/LC_MESSAGES/messages.po").open("rb") as source:
        translated = {m.id for m in read_po(source) if m.id and m.string}
    assert wanted - translated == set()


@pytest.mark.parametrize(
    ("instructions", "lang", "expected"),
    [
        ([{"step": "createOrder", "content": "##en##Pay##ru##Оплатите##"}], "ru", "Оплатите"),
        ([{"step": "createOrder", "content": "##en##Pay##"}], "ru", "Pay"),
        ([{"step": "createOrder", "content": "Plain text"}], "ru", "Plain text"),
        (["junk", None, {"step": "createOrder", "content": 5}], "en", None),
        ([{"step": "other", "content": "##en##Later##"}], "en", None),
        (None, "en", None),
    ],
)
def test_route_instructions_in_the_buyers_language(instructions, lang, expected):
    from shop.checkout import instructions_for

    assert instructions_for({"instructions": instructions}, lang) == expected
