"""Model-based test of an order's status under any interleaving of IPNs, polls and the console.

A model exchanger walks one order through any legal sequence of statuses and queues one IPN per
change. Hypothesis interleaves, in any order: the exchanger's next change; IPN delivery (in any
order, duplicated, or dropped); polls whose answers come back late or never (the worker died);
an IPN whose worker dies before committing; the merchant's cancel; forged IPNs; and reconcile.
The shop is real: its /ipn endpoint, its writer and rules, its SQLite database, its reconcile.
After every step the invariants below hold; at the end one reconcile makes the shop equal the
model.

Profiles: 'ci' (the default: a fixed seed, bounded) and 'fuzz' (`make fuzz`: many more).
"""

import hashlib
import itertools
import os
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shop import orders, reconcile
from shop.db import get_db, transaction, upgrade
from shop.exchanger import CreatedOrder
from tests.conftest import BOTH_ENGINES
from tests.helpers import create_shop, query

pytestmark = BOTH_ENGINES

CI_SEED = 1
settings.register_profile(
    "ci",
    max_examples=200,
    stateful_step_count=40,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", max_examples=2000, stateful_step_count=60, deadline=None, database=None
)

PRICE = Decimal("12.50")
FINAL = ("done", "returned", "deleted")
OPEN = tuple(s for s in orders.EXCHANGER_STATUSES if s not in FINAL)
# Refund checks due at once, three of them: the window a refund after done is found in.
REFUND_CHECKS = [0, 0, 0]
# Which of the IPNs in flight, or of the polls awaiting their answer (modulo how many there are).
ANY = st.integers(0, 7)
SIGNED = ("orderId", "newStatus", "inAmount", "outAmount", "xml_from", "xml_to", "timestamp")


class ModelOrder:
    """The exchanger's truth for one order: its status, its history, and the IPNs it sent."""

    def __init__(self, uid, order_id, secret, ipn_secret, first_status, gives_change_time):
        self.uid, self.id, self.secret, self.ipn_secret = uid, order_id, secret, ipn_secret
        self.gives_change_time = gives_change_time
        self.clock = itertools.count(1_800_000_000_000, 7)
        self.status, self.out, self.changed_ms = first_status, PRICE, next(self.clock)
        self.history = [(first_status, PRICE)]

    def next_statuses(self):
        """What the platform lets happen next: operators move open orders freely; finals stay."""
        if self.status in ("deleted", "returned"):
            return []
        if self.status == "done":
            return ["returned"]
        return [s for s in OPEN + FINAL if s not in (self.status, "new")]

    def move(self, status, out):
        """Change the status; returns the change's IPN as (its place in the history, body)."""
        self.status, self.out, self.changed_ms = status, out, next(self.clock)
        self.history.append((status, out))
        return self.now(), self.ipn_body(status, out, self.changed_ms)

    def now(self):
        """The place in the history that the exchanger's state is at now."""
        return len(self.history) - 1

    def ipn_body(self, status, out, timestamp, secret=None):
        fields = {
            "orderUID": str(self.uid),
            "orderId": self.id,
            "newStatus": status,
            "inAmount": "0.0002",
            "outAmount": str(out),
            "xml_from": "BTC",
            "xml_to": "USDTTRC20",
            "timestamp": str(timestamp),
        }
        signed = ":".join(fields[name] for name in SIGNED) + ":" + (secret or self.ipn_secret)
        fields["hash"] = hashlib.sha256(signed.encode()).hexdigest()
        return urlencode(fields)

    def answer(self):
        """order/get as the exchanger would answer it now (with a time of change, or not)."""
        answer = {"status": self.status, "inAmount": 0.0002, "outAmount": float(self.out)}
        if self.gives_change_time:
            answer["updatedAt"] = self.changed_ms
        return answer

    def saw_contradiction(self):
        """A reason for review: done paying out less, or a refund after done."""
        statuses = [s for s, _ in self.history]
        underpaid = any(s == "done" and out < PRICE for s, out in self.history)
        return underpaid or ("done" in statuses and statuses[-1] == "returned")


class ModelExchanger:
    """What reconcile's exchanger client answers, from the model (get_exchanger() returns it)."""

    base_url = "http://127.0.0.1:1"  # for the pages' CSP; nothing here goes there

    def __init__(self, model):
        self.model = model

    def get_order(self, uid, secret, view="order"):
        assert (uid, secret) == (self.model.uid, self.model.secret)
        return self.model.answer()


class WorkerDied(Exception):
    """Raised inside a transaction: nothing it wrote is committed."""


class OrderMachine(RuleBasedStateMachine):
    app = folder = None  # set by the test
    uids = itertools.count(50_000)

    @initialize(first=st.sampled_from(["new", "waitPayment"]), gives_change_time=st.booleans())
    def create_order(self, first, gives_change_time):
        uid = next(self.uids)
        # A database of its own per example: reconcile looks at every order in it. On
        # PostgreSQL the test's one database, emptied (much faster than a new database).
        if self.app.config.get("DATABASE_URL"):
            query(
                self.app.config,
                "TRUNCATE orders, order_items, status_history, ipn_log, mail_outbox, webhook_outbox,"
                " webhook_deliveries RESTART IDENTITY",
            )
        else:
            # The earlier examples' pooled connections, to files already removed, close.
            engines = self.app.extensions["db_engines"]
            while engines:
                engines.popitem()[1].dispose()
            self.database = os.path.join(self.folder, f"{uid}.sqlite")
            self.app.config["DATABASE"] = self.database
            upgrade({"DATABASE": self.database})
        self.model = ModelOrder(
            uid, f"{uid:024x}", f"secret{uid}", f"ipn{uid}", first, gives_change_time
        )
        self.app.extensions["exchanger"] = ModelExchanger(self.model)
        # IPNs sent and not yet delivered, and polls sent and not yet answered, each with the
        # place in the model's history it speaks of.
        self.in_flight, self.polls = [], []
        with self.app.app_context():
            db = get_db()
            draft, _ = orders.create_draft(db, self.draft(uid), [])
            self.order_id = draft["id"]
            created = CreatedOrder(self.model.id, uid, "R", self.model.secret, Decimal(1), PRICE)
            orders.record_created(db, self.order_id, created)
        self.client = self.app.test_client()
        self.shown, self.position, self.cause = "new", 0, None

    def draft(self, uid):
        return {
            "token": f"t{uid}",
            "checkout_key": f"k{uid}",
            "lang": "en",
            "currency": "USDTTRC20",
            "price": str(PRICE),
            "route_id": "r",
            "from_xml": "BTC",
            "from_name": "Bitcoin",
            "to_xml": "USDTTRC20",
            "send_amount": "0.0002",
            "requisites": "[]",
            "buyer_email": None,
            "ipn_secret": self.model.ipn_secret,
        }

    def shop(self):
        with self.app.app_context():
            return dict(orders.get_order(get_db(), self.order_id))

    def pick(self, index, pending):
        return pending.pop(index % len(pending))

    # -- the exchanger -----------------------------------------------------------------------

    @precondition(lambda self: self.model.next_statuses())
    @rule(data=st.data(), steps=st.integers(1, 4))
    def exchanger_moves(self, data, steps):
        for _ in range(steps):
            status = self.next_status(data)
            if status is None:
                return
            # One done in ten pays out a cent less than the price: review, never paid.
            self.move_to(status, underpaid=status == "done" and data.draw(st.integers(0, 9)) == 0)

    def move_to(self, status, underpaid=False):
        out = PRICE - Decimal("0.01") if underpaid else PRICE
        self.in_flight.append(self.model.move(status, out))

    def next_status(self, data):
        """A legal next status; open ones seven times as often as final ones, for long histories."""
        choices = self.model.next_statuses()
        if self.model.status == "done" and not self.refund_checks_left():
            # The promise: a refund after done is found inside the refund-check window.
            return None
        opens = [s for s in choices if s not in FINAL]
        ending = not opens or data.draw(st.integers(0, 7)) == 0
        finals = [s for s in choices if s in FINAL]
        return data.draw(st.sampled_from(finals if ending else opens)) if choices else None

    def refund_checks_left(self):
        shop = self.shop()
        return shop["status"] != "done" or shop["settle_check_at"] is not None

    # -- IPNs: delivered in any order, twice, never, or to a worker that dies ---------------

    @precondition(lambda self: self.in_flight)
    @rule(index=ANY, again=st.booleans())
    def deliver_ipn(self, index, again):
        index %= len(self.in_flight)
        place, body = self.in_flight[index] if again else self.in_flight.pop(index)
        self.cause = ("ipn", place)
        answer = self.client.post(
            "/ipn", data=body, content_type="application/x-www-form-urlencoded"
        )
        assert answer.status_code == 200

    @precondition(lambda self: self.in_flight)
    @rule(index=ANY)
    def ipn_lost(self, index):
        self.pick(index, self.in_flight)

    @precondition(lambda self: self.in_flight)
    @rule(index=ANY)
    def ipn_worker_dies_before_commit(self, index):
        _, body = self.pick(index, self.in_flight)
        fields = dict(parse_qsl(body))
        event = orders.Event(
            "ipn",
            fields["newStatus"],
            at_ms=int(fields["timestamp"]),
            out_amount=Decimal(fields["outAmount"]),
        )
        before = self.shop()
        with self.app.app_context(), pytest.raises(WorkerDied), transaction(get_db()) as db:
            orders.apply_event(db, self.order_id, event)
            raise WorkerDied
        assert self.shop() == before

    @rule(
        kind=st.sampled_from(["wrong secret", "altered amount", "other order"]),
        status=st.sampled_from(OPEN + FINAL),
    )
    def forged_ipn(self, kind, status):
        stamp = next(self.model.clock)
        if kind == "altered amount":
            body = self.model.ipn_body(status, PRICE, stamp).replace(
                "outAmount=12.50", "outAmount=99.50"
            )
        else:
            body = self.model.ipn_body(status, PRICE, stamp, secret="not-the-secret")
            if kind == "other order":
                body = body.replace(f"orderId={self.model.id}", "orderId=" + "f" * 24)
        before = self.shop()
        answer = self.client.post(
            "/ipn", data=body, content_type="application/x-www-form-urlencoded"
        )
        assert answer.status_code == 403
        assert self.shop() == before

    # -- polls: sent now, answered now, later, or never -------------------------------------

    @rule()
    def send_poll(self):
        with self.app.app_context():
            version = orders.claim_poll(get_db(), self.order_id)
        self.polls.append((version, self.model.now(), self.model.answer()))

    @precondition(lambda self: self.polls)
    @rule(index=ANY)
    def poll_answer_arrives(self, index):
        version, place, answer = self.pick(index, self.polls)
        self.cause = ("poll", place)
        with self.app.app_context():
            orders.apply_event(get_db(), self.order_id, reconcile.poll_event(answer, version))

    @precondition(lambda self: self.polls)
    @rule(index=ANY)
    def poll_worker_dies(self, index):
        self.pick(index, self.polls)

    # -- the merchant and cron ----------------------------------------------------------------

    @precondition(lambda self: orders.is_cancellable(self.shop()))
    @rule(minded=st.integers(0, 3))
    def merchant_cancels(self, minded):
        # Merchants seldom cancel: one time in four, or every history would end here.
        if minded or self.model.status not in ("new", "waitPayment"):
            return  # the exchanger refuses, and nothing is recorded
        self.in_flight.append(self.model.move("deleted", PRICE))
        self.cause = ("console", self.model.now())
        with self.app.app_context():
            orders.apply_event(get_db(), self.order_id, orders.Event("console", "deleted"))

    @rule()
    def cron_reconciles(self):
        self.cause = ("poll", self.model.now())
        with self.app.app_context():
            assert "error" not in reconcile.reconcile_all(concurrency=1, attempts=1)

    # -- what must always hold ----------------------------------------------------------------

    @invariant()
    def paid_only_when_the_exchanger_paid_out_the_price(self):
        if orders.payment_state(self.shop()) == "paid":
            assert ("done", PRICE) in self.model.history

    @invariant()
    def the_shop_follows_the_exchangers_history_forwards(self):
        """Every change is one the exchanger made, never an earlier one than already shown.

        Without a time of change in order/get, an IPN older than a poll's answer cannot be told
        from a newer one: then a late IPN may show an earlier open step, until the next poll.
        """
        shop = self.shop()
        if shop["status"] == self.shown:
            return
        kind, place = self.cause
        assert shop["status"] == self.model.history[place][0]
        late_ipn_allowed = kind == "ipn" and not self.model.gives_change_time
        assert place >= self.position or late_ipn_allowed, (self.shown, shop["status"])
        if self.shown in FINAL:
            # Only a refund leaves a final state (done), and a person looks.
            assert self.shown == "done" and shop["status"] in FINAL and shop["review_reason"]
        self.shown, self.position = shop["status"], place

    @invariant()
    def no_review_without_a_real_contradiction(self):
        if self.shop()["review_reason"]:
            assert self.model.saw_contradiction(), self.shop()["review_reason"]

    def teardown(self):
        if not hasattr(self, "model"):
            return
        try:
            self.final_reconcile_makes_the_shop_equal_the_model()
        finally:
            if not self.app.config.get("DATABASE_URL"):
                for suffix in ("", "-wal", "-shm", ".lock"):
                    if os.path.exists(self.database + suffix):
                        os.remove(self.database + suffix)

    def final_reconcile_makes_the_shop_equal_the_model(self):
        with self.app.app_context():
            assert "error" not in reconcile.reconcile_all(concurrency=1, attempts=1)
        shop = self.shop()
        assert shop["status"] == self.model.status
        if self.model.status == "done":
            # The model's only done: paid exactly when it paid out the price, else review.
            underpaid = self.model.out < PRICE
            assert bool(shop["review_reason"]) == underpaid
            assert (orders.payment_state(shop) == "paid") == (not underpaid)


@pytest.fixture
def machine_app(store):
    return create_shop(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            **store,
            "PUBLIC_URL": "http://127.0.0.1:1",
            "WTF_CSRF_ENABLED": False,
            "SETTLEMENT_CHECK_HOURS": REFUND_CHECKS,
            "SANDBOX": {"BACKGROUND": False},
        }
    )


def test_order_status_under_any_interleaving(machine_app, tmp_path):
    OrderMachine.app, OrderMachine.folder = machine_app, str(tmp_path)
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    machine = OrderMachine
    if profile == "ci":
        # The same examples on every run; `make fuzz` looks for new ones with fresh seeds.
        machine = seed(CI_SEED)(type("SeededOrderMachine", (OrderMachine,), {}))
    run_state_machine_as_test(machine, settings=settings.get_profile(profile))


# -- examples the machine found (against deliberately broken rules), kept as regressions ------


def replay(app, folder, first, gives_change_time, steps):
    """Run steps on a fresh machine, checking every invariant after each, then its teardown."""
    OrderMachine.app, OrderMachine.folder = app, folder
    machine = OrderMachine()
    machine.create_order(first=first, gives_change_time=gives_change_time)
    for step in steps:
        step(machine)
        machine.paid_only_when_the_exchanger_paid_out_the_price()
        machine.the_shop_follows_the_exchangers_history_forwards()
        machine.no_review_without_a_real_contradiction()
    machine.teardown()
    return machine


def test_a_poll_answer_overtaken_by_a_newer_status_is_dropped(machine_app, tmp_path):
    # Without the version check, 'new' (the answer as sent) replaced the newer 'waitPayment'.
    replay(
        machine_app,
        str(tmp_path),
        "new",
        False,
        [
            lambda m: m.send_poll(),
            lambda m: m.move_to("waitPayment"),
            lambda m: m.cron_reconciles(),
            lambda m: m.poll_answer_arrives(index=0),
        ],
    )


def test_an_earlier_step_arriving_after_a_final_state_polled_without_time_is_stale(
    machine_app, tmp_path
):
    # order/get carries no time of change, so only the final-state rule can refuse the IPN.
    machine = replay(
        machine_app,
        str(tmp_path),
        "new",
        False,
        [
            lambda m: m.move_to("waitPayment"),
            lambda m: m.move_to("done"),
            lambda m: m.cron_reconciles(),
            lambda m: m.deliver_ipn(index=0, again=False),
        ],
    )
    assert machine.shop()["review_reason"] is None


def test_done_paying_out_less_than_the_price_is_review_however_it_is_learned(machine_app, tmp_path):
    machine = replay(
        machine_app,
        str(tmp_path),
        "waitPayment",
        True,
        [lambda m: m.move_to("done", underpaid=True), lambda m: m.cron_reconciles()],
    )
    assert orders.payment_state(machine.shop()) == "review"
