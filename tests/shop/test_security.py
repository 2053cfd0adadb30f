"""Headers on every page, and no redirect that leaves the site except to the exchanger."""

from urllib.parse import urlsplit

import pytest

from tests.helpers import create_shop, place_order

PAGES = ["/", "/cart", "/checkout", "/console/login", "/no-such-page", "/orders/x/return"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_the_security_headers(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert (
        "default-src 'self'" in csp
        and "script-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
    )
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"


def test_forms_may_lead_to_the_exchanger_and_nowhere_else(tmp_path):
    app = create_shop(
        {
            "TESTING": True,
            "DATABASE": str(tmp_path / "s.sqlite"),
            "EXCHANGER_URL": "https://exchanger.example",
            "PAYOUT_VALUES": {"x": "y"},
        }
    )
    csp = app.test_client().get("/").headers["Content-Security-Policy"]
    assert "form-action 'self' https://exchanger.example;" in csp


def test_the_checkout_redirect_to_the_payment_page_is_allowed(client):
    location = place_order(client)
    assert location.startswith("http://127.0.0.1:1/sandbox/en/payment/")


def test_a_redirect_to_another_site_is_refused(app, client):
    from flask import redirect

    app.add_url_rule("/leak", "leak", lambda: redirect("https://evil.example/steal"))
    app.add_url_rule("/leak2", "leak2", lambda: redirect("/\\evil.example"))
    for path in ("/leak", "/leak2"):
        answer = client.get(path)
        assert answer.status_code == 400 and "Location" not in answer.headers


def redirects_of(client, path, method="GET"):
    answer = client.open(path, method=method)
    return answer.headers.get("Location")


@pytest.mark.parametrize(
    "path",
    [
        "/console/login?next=https://evil.example",
        "/console/login?next=//evil.example",
        "/orders/x/pay",
        "/checkout/%2F%2Fevil.example",
        "//evil.example/",
    ],
)
def test_no_user_input_makes_a_redirect_leave_the_site(client, path):
    location = redirects_of(client, path)
    if location is not None:
        # Relative, or absolute on this very host (Werkzeug's own slash-merging redirects).
        assert urlsplit(location).netloc in ("", "localhost"), location
        assert not location.startswith("//")
