"""The merchant console: login, every page and action, CSV, and nothing reachable without login."""

import csv
import io
import re

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import BOTH_ENGINES
from tests.helpers import create_shop, hidden_inputs, query

pytestmark = BOTH_ENGINES

PASSWORD = "correct horse battery"


def token_from(client, path="/"):
    """The session's CSRF token (one per session), from a page that has a form."""
    return hidden_inputs(client.get(path).get_data(as_text=True))["csrf_token"]


def log_in(client, password=PASSWORD, next_path=None):
    csrf = token_from(client)
    url = "/console/login" + (f"?next={next_path}" if next_path else "")
    return client.post(url, data={"csrf_token": csrf, "password": password})


def buy(console_app, times=1):
    """Orders made by buyers in their own sessions (CSRF on, like the real thing)."""
    buyer = console_app.test_client()
    for _ in range(times):
        csrf = token_from(buyer, "/")
        buyer.post("/cart/add", data={"csrf_token": csrf, "product_id": "mug", "quantity": "1"})
        page = buyer.get("/checkout/65f0c0ffee0000000000aa01").get_data(as_text=True)
        answer = buyer.post(
            "/checkout/65f0c0ffee0000000000aa01",
            data={
                **hidden_inputs(page),
                "fromValues_0": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
                "routeValues_0": "buyer@example.com",
                "agreement": "y",
            },
        )
        assert answer.status_code == 302
    return query(console_app.config, "SELECT * FROM orders ORDER BY id")


def shown(page, element_id):
    """The text of the element with this id."""
    return re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page).group(1)


def post_button(client, path, **data):
    csrf = token_from(client)
    return client.post(path, data={"csrf_token": csrf, **data}, follow_redirects=True)


def sandbox_set(app, uid, status):
    exchanger = app.extensions["exchanger"]
    url = f"{exchanger.base_url}/service/api/v1/sandbox/order/set-status"
    exchanger.session.post(url, json={"orderUID": uid, "status": status}, timeout=5)


# -- access ----------------------------------------------------------------------------------


def test_every_console_route_needs_a_login(console_app):
    client = console_app.test_client()
    (order,) = buy(console_app)
    # A valid CSRF token of the anonymous session: only the login check can stop the request.
    csrf = token_from(client)
    rules = [r for r in console_app.url_map.iter_rules() if r.endpoint.startswith("console.")]
    assert len(rules) >= 9
    for rule in rules:
        if rule.endpoint == "console.login":
            continue
        url = rule.build({"token": order["token"]}, append_unknown=False)[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            answer = client.open(url, method=method, data={"csrf_token": csrf, "note": "x"})
            assert answer.status_code == 302, (rule, method)
            assert answer.location.startswith("/console/login?next=")
    assert query(console_app.config, "SELECT status FROM orders")[0]["status"] == "new"


def test_login_good_bad_and_logout(console_app):
    client = console_app.test_client()
    wrong = log_in(client, "guess")
    assert wrong.status_code == 200 and "Wrong password." in wrong.get_data(as_text=True)
    assert client.get("/console/").status_code == 302
    assert log_in(client).location == "/console/dashboard"  # the console home
    assert client.get("/console/").status_code == 200
    assert client.get("/console/logout").status_code == 405
    post_button(client, "/console/logout")
    assert client.get("/console/").status_code == 302


def test_failures_are_rate_limited_even_for_the_right_password(console_app):
    client = console_app.test_client()
    for _ in range(5):
        log_in(client, "guess")
    blocked = log_in(client)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.get_data(
        as_text=True
    )
    assert client.get("/console/").status_code == 302


def test_login_needs_its_csrf_token(console_app):
    client = console_app.test_client()
    assert client.post("/console/login", data={"password": PASSWORD}).status_code == 400


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/console", "/\\evil.example", "/cart"]
)
def test_after_login_next_never_leaves_the_console(console_app, target):
    answer = log_in(console_app.test_client(), next_path=target)
    assert answer.location == "/console/dashboard"


def test_login_keeps_its_next_page(console_app):
    assert log_in(console_app.test_client(), next_path="/console/ipn").location == "/console/ipn"


def test_without_a_password_hash_every_console_route_is_closed(app, client):
    """README: an unset CONSOLE_PASSWORD_HASH closes the console, login page included."""
    assert app.config["CONSOLE_PASSWORD_HASH"] is None
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("console.")]
    for rule in rules:
        url = rule.build({"token": "x"}, append_unknown=False)[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            answer = client.open(url, method=method, data={"password": "", "note": "x"})
            assert answer.status_code == 404, (rule, method)
    page = client.get("/console/login").get_data(as_text=True)
    assert "There is nothing at this address." in page and 'name="password"' not in page


def test_session_cookie_flags(store):
    app = create_shop(
        {
            "TESTING": True,
            **store,
            "PUBLIC_URL": "https://shop.example",
            "SANDBOX": {"BACKGROUND": False},
            "CONSOLE_PASSWORD_HASH": generate_password_hash(PASSWORD),
        }
    )
    client = app.test_client()
    answer = log_in(client)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_the_password_command_prints_a_hash_that_logs_in(console_app):
    result = console_app.test_cli_runner().invoke(
        args=["console", "password"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("CONSOLE_PASSWORD_HASH = ")
    assert PASSWORD not in line
    short = console_app.test_cli_runner().invoke(
        args=["console", "password"], input="short\nshort\n"
    )
    assert short.exit_code != 0 and "at least 10" in short.output


# -- pages -----------------------------------------------------------------------------------


def test_orders_newest_first_with_counts_filters_and_search(console_app, merchant):
    orders = buy(console_app, times=3)
    sandbox_set(console_app, orders[0]["exchanger_uid"], "done")
    post_button(merchant, f"/console/orders/{orders[0]['token']}/refresh")
    page = merchant.get("/console/").get_data(as_text=True)
    tokens = re.findall(r'data-token="([^"]+)"', page)
    assert tokens == [o["token"] for o in reversed(orders)]
    assert re.search(r'data-state="paid">paid <strong>1<', page)
    assert re.search(r'data-state="pending">pending <strong>2<', page)
    paid = merchant.get("/console/?state=paid").get_data(as_text=True)
    assert re.findall(r'data-token="([^"]+)"', paid) == [orders[0]["token"]]
    for search in (orders[1]["token"], str(orders[1]["exchanger_uid"])):
        found = merchant.get(f"/console/?q={search}").get_data(as_text=True)
        assert re.findall(r'data-token="([^"]+)"', found) == [orders[1]["token"]]
    by_email = merchant.get("/console/?q=buyer@example").get_data(as_text=True)
    assert len(re.findall(r"data-token=", by_email)) == 3
    assert "data-token" not in merchant.get("/console/?q=100%25_").get_data(as_text=True)


def test_date_filters_and_bad_filters(console_app, merchant):
    buy(console_app)
    today = query(console_app.config, "SELECT created_at FROM orders")[0]["created_at"][:10]
    assert "data-token" in merchant.get(f"/console/?date_from={today}&date_to={today}").get_data(
        as_text=True
    )
    assert "data-token" not in merchant.get("/console/?date_from=2999-01-01").get_data(as_text=True)
    bad = merchant.get("/console/?date_from=yesterday&state=rich").get_data(as_text=True)
    assert "not valid and are ignored" in bad and "data-token" in bad


def test_pagination(console_app, merchant):
    buy(console_app)
    for n in range(55):
        query(
            console_app.config,
            "INSERT INTO orders (token, checkout_key, created_at, updated_at, lang, currency,"
            " price, route_id, from_xml, from_name, to_xml, send_amount, requisites, ipn_secret,"
            " status) SELECT ?, ?, created_at, updated_at, lang, currency, price, route_id,"
            " from_xml, from_name, to_xml, send_amount, requisites, ipn_secret, status"
            " FROM orders WHERE id = 1",
            f"t{n:03d}",
            f"k{n:03d}",
        )
    first = merchant.get("/console/").get_data(as_text=True)
    older = re.search(r'href="([^"]+)">Older', first).group(1).replace("&amp;", "&")
    second = merchant.get(older).get_data(as_text=True)
    assert first.count("data-token=") == 50 and second.count("data-token=") == 6
    assert "Older" in first and "Older" not in second and "Newer" in second
    for odd in ("0", "-3", "abc", "9" * 40):
        for name in ("before", "after"):
            for path in ("/console/", "/console/ipn"):
                answer = merchant.get(f"{path}?{name}={odd}").get_data(as_text=True)
                assert "page position is not valid" in answer


def test_an_order_page_shows_everything_about_it(console_app, merchant):
    (order,) = buy(console_app)
    console_app.test_client().post(
        "/ipn", data="orderId=x", content_type="application/x-www-form-urlencoded"
    )
    page = merchant.get(f"/console/orders/{order['token']}").get_data(as_text=True)
    assert "Ledger mug" in page and "12.50 USDTTRC20" in page and order["send_amount"] in page
    assert "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh" in page and "buyer@example.com" in page
    link = f"/sandbox/en/order/{order['exchanger_uid']}/{order['exchanger_secret']}"
    assert link in page
    assert re.search(r"<td>draft</td><td>new</td><td>create</td>", page)
    assert order["ipn_secret"] not in page
    assert merchant.get("/console/orders/unknown").status_code == 404


def test_refresh_applies_the_exchangers_status(console_app, merchant):
    (order,) = buy(console_app)
    sandbox_set(console_app, order["exchanger_uid"], "inProgress")
    page = post_button(merchant, f"/console/orders/{order['token']}/refresh").get_data(as_text=True)
    assert "Asked the exchanger: applied." in page and shown(page, "status") == "inProgress"


def test_cancel_an_unpaid_order(console_app, merchant):
    (order,) = buy(console_app)
    page = post_button(merchant, f"/console/orders/{order['token']}/cancel").get_data(as_text=True)
    assert "The order is cancelled." in page and shown(page, "state") == "cancelled"
    history = query(console_app.config, "SELECT source, note FROM status_history ORDER BY id")
    assert history[-1] == {"source": "console", "note": "cancelled by the merchant"}
    exchanger = console_app.extensions["exchanger"]
    assert (
        exchanger.get_order(order["exchanger_uid"], order["exchanger_secret"])["status"]
        == "deleted"
    )


def test_cancel_refused_when_the_buyer_paid_meanwhile(console_app, merchant):
    (order,) = buy(console_app)
    sandbox_set(console_app, order["exchanger_uid"], "inProgress")
    page = post_button(merchant, f"/console/orders/{order['token']}/cancel").get_data(as_text=True)
    assert "The exchanger refused" in page and shown(page, "status") == "inProgress"


def test_resolve_a_review_with_a_note(console_app, merchant):
    (order,) = buy(console_app)
    query(
        console_app.config,
        "UPDATE orders SET review_reason = 'paid 1.00 of 12.50' WHERE id = ?",
        order["id"],
    )
    path = f"/console/orders/{order['token']}"
    assert "Review: paid 1.00 of 12.50" in merchant.get(path).get_data(as_text=True)
    empty = post_button(merchant, f"{path}/resolve", note="  ").get_data(as_text=True)
    assert "Write a note" in empty
    done = post_button(
        merchant, f"{path}/resolve", note="buyer topped up by bank transfer"
    ).get_data(as_text=True)
    assert "Review resolved." in done and 'id="review-reason"' not in done
    assert "review resolved: buyer topped up by bank transfer" in done


def test_ipn_log_lists_rejected_ones_and_filters(console_app, merchant):
    client = console_app.test_client()
    client.post("/ipn", data="junk", content_type="text/plain")
    page = merchant.get("/console/ipn").get_data(as_text=True)
    assert 'data-outcome="rejected"' in page and "neither a form-encoded nor a JSON body" in page
    assert 'data-outcome="rejected"' not in merchant.get("/console/ipn?outcome=applied").get_data(
        as_text=True
    )


def test_csv_export_of_the_filtered_list(console_app, merchant):
    orders = buy(console_app, times=2)
    query(
        console_app.config,
        "UPDATE orders SET buyer_email = '=HYPERLINK(\"x\")' WHERE id = ?",
        orders[0]["id"],
    )
    answer = merchant.get("/console/orders.csv?state=pending")
    assert answer.mimetype == "text/csv" and "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [r["token"] for r in rows] == [o["token"] for o in reversed(orders)]
    assert rows[0]["state"] == "pending" and rows[0]["price"] == "12.50"
    assert rows[1]["buyer_email"] == '\'=HYPERLINK("x")'
    assert merchant.get("/console/orders.csv?state=paid").get_data(as_text=True).count("\n") == 1
