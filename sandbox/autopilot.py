"""What time does to orders: unpaid ones expire, paid ones walk to done (when the autopilot is on)."""

import threading
import time

from . import orders
from .db import connect

NEXT_STEP = {"inProgress": "inProgressPayout", "inProgressPayout": "done"}


def run_due(sandbox):
    """Make every change that is due now; returns how many were made."""
    db = connect(sandbox.app.config["DATABASE"])
    now = sandbox.clock.now()
    changes = 0
    try:
        expired = db.execute(
            "SELECT * FROM orders WHERE status IN ('new', 'waitPayment') AND expires_at <= ?",
            (now,),
        ).fetchall()
        for order in expired:
            changes += orders.change_status(sandbox, db, order, "deleted")
        if sandbox.app.config["AUTOPILOT"]:
            for status, delay in sandbox.app.config["AUTOPILOT_DELAYS"].items():
                due = db.execute(
                    "SELECT * FROM orders WHERE status = ? AND status_changed_at + ? <= ?",
                    (status, delay, now),
                ).fetchall()
                for order in due:
                    changes += orders.change_status(sandbox, db, order, NEXT_STEP[status])
    finally:
        db.close()
    return changes


def start(sandbox):
    """Run run_due every tick in a daemon thread of this process."""

    def loop():
        while True:
            time.sleep(sandbox.app.config["TICK_SECONDS"])
            try:
                run_due(sandbox)
            except Exception:
                sandbox.app.logger.exception("sandbox autopilot tick failed")

    threading.Thread(target=loop, name="sandbox-autopilot", daemon=True).start()
