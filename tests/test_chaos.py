"""Chaos at a small size: every fault on, then reconciliation; the shop must agree with the exchanger."""

from bench.chaos import run


def test_orders_stay_correct_whatever_the_notifications_and_the_api_do(tmp_path):
    report = run(orders=40, buyers=4, seed=5, folder=tmp_path)

    # The faults really happened.
    assert (
        report["ipns dropped"] > 0 and report["ipns duplicated"] > 0 and report["ipns forged"] > 0
    )
    assert report["http statuses seen by buyers"].get(503, 0) > 0
    assert {"duplicate", "rejected"} <= set(report["shop ipn outcomes"])

    comparison = report["comparison"]
    assert comparison["equal"] >= 30
    assert [key for key in comparison if key.startswith("MISMATCH")] == []
    assert comparison.get("LOST", 0) == 0
    assert report["forged ipns accepted"] == 0
    assert report["ipn answers 500"] == 0 and 500 not in report["http statuses seen by buyers"]
    # Reconciliation is idempotent: once caught up, a run changes nothing.
    assert (
        "applied" not in report["reconcile runs"][2] and "error" not in report["reconcile runs"][2]
    )
