"""The standalone sandbox's workers share one secret key, so any worker takes any form."""

import requests

from tests.conftest import SandboxServer
from tests.helpers import hidden_inputs
from tests.sandbox.test_pages import create, page


def test_a_form_from_one_worker_is_accepted_by_another(tmp_path):
    """Two workers of one sandbox (same database, no SECRET_KEY set): 'I have paid' works."""
    database = str(tmp_path / "sandbox.sqlite")
    first, second = SandboxServer(database), SandboxServer(database)
    try:
        assert first.flask_app.secret_key == second.flask_app.secret_key
        order = create(first)
        browser = requests.Session()
        token = hidden_inputs(page(first, order, session=browser).text)["csrf_token"]
        url = f"{second.url}/en/payment/{order['uid']}/{order['secret']}/paid"
        assert browser.post(url, data={"csrf_token": token}, timeout=10).status_code == 200
        assert second.orders()[order["uid"]]["status"] == "inProgress"
    finally:
        first.stop()
        second.stop()


def test_the_key_is_kept_beside_the_database_for_its_user_only(tmp_path):
    database = tmp_path / "sandbox.sqlite"
    server = SandboxServer(str(database))
    server.stop()
    key_file = tmp_path / "sandbox.sqlite.secret-key"
    assert key_file.read_text() == server.flask_app.secret_key
    assert key_file.stat().st_mode & 0o077 == 0
    other = SandboxServer(str(tmp_path / "other.sqlite"))
    other.stop()
    assert other.flask_app.secret_key != server.flask_app.secret_key
