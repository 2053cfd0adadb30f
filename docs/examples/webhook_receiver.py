"""A receiver for the shop's webhooks (docs/INTEGRATION.md, "Webhooks"): Python and Flask.

Verifies the Shop-Signature header in constant time, refuses a timestamp more than five
minutes from now (a recorded request replayed later), and hands each event to your code once
per event id. The shop's tests run this very file, so it cannot drift from what the shop sends.

    app = create_app(secret="whsec_...", handle=lambda event: print(event["type"]))
"""

import hashlib
import hmac
import json
import time

from flask import Flask, abort, request

# How far the signature's time may be from this machine's clock, either way.
TOLERANCE_SECONDS = 5 * 60


class BadSignature(ValueError):
    """The request is not a fresh event signed with our secret."""


def verify(secret, header, body, now=None):
    """The event in body (bytes) if header is a fresh, valid Shop-Signature; else BadSignature."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        raise BadSignature("no timestamp") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("timestamp too old (or in the future)")
    signed = str(timestamp).encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    # Constant time: how long the comparison takes says nothing about the right signature.
    if not hmac.compare_digest(expected.encode(), fields.get("v1", "").encode()):
        raise BadSignature("signature does not match")
    return json.loads(body)


def create_app(secret, handle):
    """A Flask app receiving events at POST /shop-events; handle(event) is your code."""
    app = Flask(__name__)
    seen = set()  # use your database: a redelivered event carries the same id

    @app.post("/shop-events")
    def shop_events():
        try:
            event = verify(secret, request.headers.get("Shop-Signature", ""), request.get_data())
        except (BadSignature, UnicodeError, json.JSONDecodeError):
            abort(400)
        if event["id"] not in seen:
            handle(event)
            seen.add(event["id"])
        # Any 2xx means delivered; anything else (or no answer in 10 s) is retried later.
        return "", 204

    return app
