"""Fixtures: temporary databases, live servers on free ports, and a guard against the network."""

import ipaddress
import socket
import threading
from pathlib import Path

import pytest
import requests

import sandbox
from tests.helpers import create_shop
from tests.servers import LiveServer

API = "/service/api/v1/"


def pytest_sessionstart(session):
    """Compile the message catalogues, as `make test` does, so plain `pytest` works too."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in Path(__file__).parents[1].glob("translations/*/LC_MESSAGES/messages.po"):
        with po.open("rb") as source, po.with_suffix(".mo").open("wb") as target:
            write_mo(target, read_po(source))


# -- no network beyond this machine ----------------------------------------------------------


def is_loopback(host):
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection to an address that is not on 127.0.0.0/8 or ::1."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            raise AssertionError(f"a test tried to reach {address[0]}: only 127.0.0.1 is allowed")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the whole run; each test makes its own database."""
    from tests.postgres import PostgresServer

    server = PostgresServer()
    yield server
    server.stop()


# The storage-dependent modules (pytestmark = BOTH_ENGINES) run every test that touches the
# database on both engines; elsewhere `engine` is SQLite, the embedded default.
ENGINES = ["sqlite", "postgresql"]
BOTH_ENGINES = pytest.mark.both_engines


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture(scope="session")
def postgres_template(postgres):
    """A database migrated once; each test's database is a copy (CREATE DATABASE ... TEMPLATE)."""
    from shop import db

    url = postgres.database()
    db.upgrade({"DATABASE_URL": url})
    return url.rsplit("/", 1)[1]


@pytest.fixture
def engine(request):
    return getattr(request, "param", "sqlite")


@pytest.fixture
def store(engine, tmp_path, request):
    """The shop's database settings for this test: a SQLite file, or a fresh PostgreSQL database."""
    settings = {"DATABASE": str(tmp_path / "shop.sqlite")}
    if engine == "postgresql":
        server = request.getfixturevalue("postgres")
        template = request.getfixturevalue("postgres_template")
        settings["DATABASE_URL"] = server.database(template=template)
    return settings


# -- live servers ----------------------------------------------------------------------------


class SandboxServer(LiveServer):
    """The sandbox exchanger, live, with helpers to drive it like a test would."""

    def __init__(self, database, **settings):
        self.flask_app = sandbox.create_app(
            {"DATABASE": database, "BACKGROUND": False, "IPN_TIMEOUT": (1, 2), **settings}
        )
        self.state = self.flask_app.extensions["sandbox"]
        super().__init__(self.flask_app)
        self.http = requests.Session()

    def api(self, method, path, **kwargs):
        """The JSON answer of one API call (any envelope)."""
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, f"{self.url}{API}{path}", **kwargs).json()

    def data(self, method, path, **kwargs):
        answer = self.api(method, path, **kwargs)
        assert answer["success"], answer
        return answer["data"]

    def set_faults(self, **faults):
        return self.data("POST", "sandbox/faults", json={"reset": True, **faults})["faults"]

    def set_status(self, uid, status):
        return self.data(
            "POST", "sandbox/order/set-status", json={"orderUID": uid, "status": status}
        )

    def orders(self):
        return {o["uid"]: o for o in self.data("GET", "sandbox/orders")["orders"]}

    def deliveries(self, uid=None):
        params = {"orderUID": uid} if uid else {}
        return self.data("GET", "sandbox/ipn-log", params=params)["deliveries"]

    def wait_ipns(self, timeout=15):
        """Block until every queued IPN was sent (or failed): no sleeping past the race."""
        assert self.state.dispatcher().wait_idle(timeout), "IPNs still queued"

    def autopilot_to_done(self):
        """Let the autopilot walk paid orders to done, each step's IPNs delivered before the next.

        Its steps are seconds apart in real life; IPNs sent at one moment may arrive in either
        order (then the older is stale), which is not what a journey test is about.
        """
        for _ in range(2):
            self.wait_ipns()
            self.run_due(advance=10)
        self.wait_ipns()

    def run_due(self, advance=0):
        from sandbox.autopilot import run_due

        self.state.clock.advance(advance)
        return run_due(self.state)


@pytest.fixture
def sandbox_server(tmp_path):
    server = SandboxServer(str(tmp_path / "sandbox.sqlite"))
    yield server
    server.stop()


class Receiver(LiveServer):
    """A merchant endpoint that records every POST it gets and answers with `status`."""

    def __init__(self):
        self.received = []
        self.status = 200
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        super().__init__(self._app)

    def _app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode()
        with self.arrived:
            self.received.append(
                {"path": environ["PATH_INFO"], "type": environ.get("CONTENT_TYPE"), "body": body}
            )
            self.arrived.notify_all()
        start_response(f"{self.status} X", [("Content-Type", "text/plain")])
        return [b"ok"]

    def wait_for(self, count, timeout=10):
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


# -- the shop --------------------------------------------------------------------------------


# Port 1 never has a server: the embedded sandbox's IPNs to it are lost, whatever else runs
# here (a `make run` on port 5000, say).
UNREACHABLE_SHOP = "http://127.0.0.1:1"


@pytest.fixture
def app(store):
    """The shop with the embedded sandbox, for the Flask test client (CSRF off)."""
    return create_shop(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "PUBLIC_URL": UNREACHABLE_SHOP,
            "WTF_CSRF_ENABLED": False,
            "SANDBOX": {"BACKGROUND": False},
            **store,
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


class ShopServer(LiveServer):
    """The shop, live, talking over HTTP to a live sandbox, with CSRF on."""

    def __init__(self, database, exchanger_url, **settings):
        super().__init__()
        self.flask_app = create_shop(
            {
                "TESTING": True,
                "SECRET_KEY": "test",
                "DATABASE": database,
                "PUBLIC_URL": self.url,
                "EXCHANGER_URL": exchanger_url,
                "PAYOUT_VALUES": {"65f0c0ffee00000000000d10": "TMerchantPayoutWa11etSandboxDemoXq"},
                "STATUS_POLL_SECONDS": 0,
                **settings,
            }
        )
        self.app = self.flask_app

    def query(self, sql, *args):
        from tests.helpers import query

        return query(self.flask_app.config, sql, *args)


@pytest.fixture
def shop_server(store, sandbox_server):
    server = ShopServer(store["DATABASE"], sandbox_server.url, **store)
    yield server
    server.stop()
