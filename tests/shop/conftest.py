"""Fixtures the console's test modules share: the shop with a console password, and a merchant
logged in to it."""

import pytest
from werkzeug.security import generate_password_hash

from tests.shop.test_console import PASSWORD, log_in


@pytest.fixture
def console_app(app):
    """The shop with a console password, and CSRF on as in production."""
    app.config.update(WTF_CSRF_ENABLED=True, CONSOLE_PASSWORD_HASH=generate_password_hash(PASSWORD))
    return app


@pytest.fixture
def merchant(console_app):
    client = console_app.test_client()
    assert log_in(client).status_code == 302
    return client
