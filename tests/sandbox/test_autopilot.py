"""Time on the sandbox: paid orders walk to done, unpaid ones expire; a moved clock, no sleeps."""

import threading

from tests.conftest import SandboxServer
from tests.helpers import btc_order


def create(server, **changes):
    return server.data("POST", "public/exchanger/order/create", json=btc_order(**changes))


def pay(server, order):
    body = {"orderUID": order["uid"], "orderSecret": order["secret"], "status": "inProgress"}
    server.data("PUT", "public/exchanger/order/update-status", json=body)


def status(server, order):
    return server.orders()[order["uid"]]["status"]


def test_a_paid_order_walks_to_done_after_the_delays(sandbox_server, receiver):
    order = create(sandbox_server, ipnUrl=f"{receiver.url}/ipn")
    pay(sandbox_server, order)
    assert sandbox_server.run_due(advance=1) == 0
    assert status(sandbox_server, order) == "inProgress"
    sandbox_server.run_due(advance=3)
    assert status(sandbox_server, order) == "inProgressPayout"
    sandbox_server.run_due(advance=3)
    assert status(sandbox_server, order) == "done"
    sandbox_server.wait_ipns()
    sent = [d["new_status"] for d in sandbox_server.deliveries(order["uid"])]
    assert sent == ["inProgress", "inProgressPayout", "done"]


def test_unpaid_orders_expire_after_their_ttl_and_others_do_not(sandbox_server):
    unpaid, paid = create(sandbox_server), create(sandbox_server)
    pay(sandbox_server, paid)
    sandbox_server.set_status(paid["uid"], "hold")
    sandbox_server.run_due(advance=29 * 60)
    assert status(sandbox_server, unpaid) == "waitPayment"
    sandbox_server.run_due(advance=60)
    assert status(sandbox_server, unpaid) == "deleted"
    assert status(sandbox_server, paid) == "hold"


def test_the_autopilot_can_be_switched_off(tmp_path):
    server = SandboxServer(str(tmp_path / "s.sqlite"), AUTOPILOT=False)
    try:
        order = create(server)
        pay(server, order)
        server.run_due(advance=600)
        assert status(server, order) == "inProgress"
    finally:
        server.stop()


def test_the_background_autopilot_finishes_an_order_on_its_own(tmp_path, receiver):
    server = SandboxServer(
        str(tmp_path / "s.sqlite"),
        BACKGROUND=True,
        TICK_SECONDS=0.05,
        AUTOPILOT_DELAYS={"inProgress": 0.1, "inProgressPayout": 0.1},
    )
    try:
        order = create(server, ipnUrl=f"{receiver.url}/ipn")
        pay(server, order)
        # Wait for the third IPN (done) to arrive, not for a guessed number of seconds.
        assert receiver.wait_for(3, timeout=20)
        assert status(server, order) == "done"
    finally:
        server.stop()


def test_racing_changes_make_one_change(sandbox_server):
    order = create(sandbox_server)
    pay(sandbox_server, order)
    results = []

    def step():
        results.append(sandbox_server.run_due(advance=0))

    sandbox_server.state.clock.advance(3)
    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 1
    assert status(sandbox_server, order) == "inProgressPayout"
