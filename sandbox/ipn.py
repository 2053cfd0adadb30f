"""IPN delivery: one signed POST per change, never retried (what the merchant docs say).

The docs do not say where the checksum travels or under which name, how toValues is encoded,
or how amounts are spelled: those are guesses, played as switchable variants (faults.VARIANTS)
so that a receiver is tested against each. Each delivery is written to ipn_deliveries first,
then sent by a background thread, so the request that caused the change never waits on the
merchant's server.
"""

import hashlib
import heapq
import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from urllib.parse import urlencode

import requests

from .db import connect
from .pricing import plain

FORGERIES = ("wrong_hash", "other_order", "altered_amount")
SIGNED = ("orderId", "newStatus", "inAmount", "outAmount", "xml_from", "xml_to", "timestamp")


def checksum(order_id, new_status, in_amount, out_amount, xml_from, xml_to, timestamp, secret):
    """sha256_hex(orderId:newStatus:inAmount:outAmount:xml_from:xml_to:timestamp:ipnSecret)."""
    parts = (order_id, new_status, in_amount, out_amount, xml_from, xml_to, str(timestamp), secret)
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


def fields(order, route, new_status, timestamp, amounts="plain"):
    """The IPN's fields in the documented order, amounts spelled as the settings say."""
    return {
        "orderUID": str(order["uid"]),
        "orderId": order["id"],
        "newStatus": new_status,
        "inAmount": spell(order["in_amount"], amounts),
        "outAmount": spell(order["out_amount"], amounts),
        "xml_from": route["from"]["xml"],
        "xml_to": route["to"]["xml"],
        "timestamp": str(timestamp),
    }


def sign(values, secret):
    """The docs' checksum over the strings exactly as they will be sent."""
    return checksum(*(values[name] for name in SIGNED), secret)


def spell(amount_text, amounts):
    """An amount as the platform might write it. A guess: the docs say only "String(number)"."""
    number = Decimal(amount_text)
    if amounts == "zeros":
        return f"{plain(number)}{'' if '.' in plain(number) else '.'}0000"
    if amounts == "exponent":
        return f"{number.normalize():e}"
    return plain(number)


def encode(values, digest, to_values, url, settings):
    """(url, body, content type) of one IPN, in the variant the settings choose.

    The docs say: one form-encoded POST. Everything else here is a guess: the checksum's field
    name and place ("string for create secure hash in ipn url" may mean the query string), how
    toValues is encoded (bracket style, as Node's qs writes it), and a JSON body.
    """
    name = settings["ipn_checksum_field"]
    if settings["ipn_checksum_in"] == "query":
        url = f"{url}{'&' if '?' in url else '?'}{urlencode({name: digest})}"
        signed = dict(values)
    else:
        signed = {**values, name: digest}
    if settings["ipn_encoding"] == "json":
        body = {**signed, "orderUID": int(values["orderUID"]), "toValues": to_values}
        body["timestamp"] = int(values["timestamp"])
        return url, json.dumps(body), "application/json"
    pairs = list(signed.items())
    for index, item in enumerate(to_values):
        for key in ("key", "name", "value"):
            pairs.append((f"toValues[{index}][{key}]", item[key]))
    return url, urlencode(pairs), "application/x-www-form-urlencoded"


def forge(values, digest, kind, other_order):
    """(values, checksum) someone without the secret could have sent."""
    forged = {**values, "newStatus": "done"}
    if kind == "other_order" and other_order is not None:
        # The right checksum for this order, pinned on another order's ids.
        forged["orderId"], forged["orderUID"] = other_order["id"], str(other_order["uid"])
    elif kind == "altered_amount":
        forged["outAmount"] = plain(Decimal(forged["outAmount"]) * 10)
    else:
        digest = hashlib.sha256(b"not the secret").hexdigest()
    return forged, digest


class Dispatcher:
    """Sends queued deliveries when they fall due, a few at a time, each exactly once."""

    def __init__(self, database, timeout):
        self.database = database
        self.timeout = timeout
        self._due = []
        self._sequence = itertools.count()
        self._pending = 0
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sandbox-ipn")
        self._http = requests.Session()
        threading.Thread(target=self._run, name="sandbox-ipn-timer", daemon=True).start()

    def schedule(self, delivery_id, url, body, delay, content_type):
        with self._cond:
            self._pending += 1
            heapq.heappush(
                self._due,
                (
                    time.monotonic() + delay,
                    next(self._sequence),
                    delivery_id,
                    url,
                    body,
                    content_type,
                ),
            )
            self._cond.notify()

    def wait_idle(self, timeout=10):
        """Block until every scheduled delivery has been sent or failed (tests and scripts)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def _run(self):
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._cond.wait(wait)
                _, _, *delivery = heapq.heappop(self._due)
            self._pool.submit(self._send, *delivery)

    def _send(self, delivery_id, url, body, content_type):
        outcome, status, answer, error = "error", None, None, None
        try:
            response = self._http.post(
                url,
                data=body,
                headers={"Content-Type": content_type},
                timeout=self.timeout,
                allow_redirects=False,
            )
            outcome, status, answer = "sent", response.status_code, response.text[:500]
        except requests.RequestException as exc:
            error = type(exc).__name__
        finally:
            self._record(delivery_id, outcome, status, answer, error)
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _record(self, delivery_id, outcome, status, answer, error):
        db = connect(self.database)
        try:
            db.execute(
                "UPDATE ipn_deliveries SET sent_at = ?, outcome = ?, http_status = ?,"
                " response = ?, error = ? WHERE id = ?",
                (time.time(), outcome, status, answer, error, delivery_id),
            )
        finally:
            db.close()


def notify(sandbox, db, order, route, new_status, timestamp):
    """Queue the IPN for one status change, with whatever faults are switched on."""
    if not order["ipn_url"]:
        return
    faults = sandbox.faults
    settings = faults.current()
    values = fields(order, route, new_status, timestamp, settings["ipn_amounts"])
    digest = sign(values, order["ipn_secret"])
    copies = [("normal", values, digest)]
    if faults.happens(settings["ipn_duplicate"]):
        copies.append(("duplicate", values, digest))
    if faults.happens(settings["ipn_forge"]):
        kind = faults.choice(FORGERIES)
        other = db.execute(
            "SELECT id, uid FROM orders WHERE uid != ? ORDER BY uid DESC LIMIT 1", (order["uid"],)
        ).fetchone()
        copies.append((f"forged:{kind}", *forge(values, digest, kind, other)))
    for kind, copy, copy_digest in copies:
        dropped = kind == "normal" and faults.happens(settings["ipn_drop"])
        delay = faults.seconds(settings["ipn_delay"])
        url, body, content_type = encode(
            copy, copy_digest, order["to_values_list"], order["ipn_url"], settings
        )
        cursor = db.execute(
            "INSERT INTO ipn_deliveries (order_uid, kind, url, new_status, payload,"
            " delay_seconds, created_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order["uid"],
                kind,
                url,
                new_status,
                body,
                delay,
                time.time(),
                "dropped" if dropped else "queued",
            ),
        )
        if not dropped:
            sandbox.dispatcher().schedule(cursor.lastrowid, url, body, delay, content_type)
