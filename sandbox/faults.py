"""Faults the sandbox injects on purpose (lost, duplicated, late and forged IPNs; a bad API),
and the variants it plays where the docs are silent (where the IPN checksum travels, ...).

Settings live in the sandbox database so every worker process sees the same ones; the random
choices come from one seeded generator per process, so a single-process run is repeatable.
"""

import json
import random
import threading

from .db import connect

SHARES = ("ipn_drop", "ipn_duplicate", "ipn_forge", "api_error", "api_hang")
RANGES = ("ipn_delay", "api_latency", "api_answer_delay")
API_ERROR_KINDS = ("envelope", "antiflood", "http500", "html", "badjson")
MAX_SECONDS = 60
# Where the docs are silent, the sandbox plays each plausible reading; these are guesses, so
# an integration should pass against every one (sandbox/README.md, "Variants").
VARIANTS = {
    "ipn_checksum_field": ("hash", "sign", "signature", "checksum"),
    "ipn_checksum_in": ("body", "query"),
    "ipn_encoding": ("form", "json"),
    "ipn_amounts": ("plain", "zeros", "exponent"),
    # The platform's front-end shows a confirm step for `new` and sends skipPreview only from
    # its deposit pop-up, so a real site most likely starts orders in `new` unless told to skip.
    "start_status": ("new", "waitPayment"),
    # Whether a site honours skipPreview on a server-side create is not public either.
    "skip_preview": ("honoured", "ignored"),
    # Whether a server-side order/create must solve a captcha is not public: "unsigned" asks
    # for one (error 1601588666628861) unless the call is signed with a merchant key.
    "captcha": ("off", "unsigned"),
}

DEFAULTS = {
    "seed": 1,
    "ipn_drop": 0.0,
    "ipn_duplicate": 0.0,
    "ipn_forge": 0.0,
    "ipn_delay": [0.0, 0.0],
    "api_latency": [0.0, 0.0],
    # Seconds between doing the work and answering: an order/get answer that arrives late,
    # describing the order as it was when asked (a slow answer racing newer IPNs).
    "api_answer_delay": [0.0, 0.0],
    "api_error": 0.0,
    "api_error_kinds": list(API_ERROR_KINDS),
    "api_hang": 0.0,
    "api_hang_seconds": 15.0,
    **{name: choices[0] for name, choices in VARIANTS.items()},
}


class FaultSettingError(ValueError):
    """A fault setting that makes no sense; the message names it."""


def validate(changes, current):
    """The settings after applying changes to current, or FaultSettingError."""
    if not isinstance(changes, dict):
        raise FaultSettingError("send a JSON object of settings")
    merged = dict(DEFAULTS) if changes.get("reset") else dict(current)
    for name, value in changes.items():
        if name == "reset":
            continue
        if name not in DEFAULTS:
            raise FaultSettingError(f"unknown setting {name!r}")
        merged[name] = _checked(name, value)
    return merged


def _checked(name, value):
    if name == "seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FaultSettingError("seed must be an integer")
        return value
    if name in SHARES:
        return _number(name, value, 0, 1)
    if name in RANGES:
        if not isinstance(value, list) or len(value) != 2:
            raise FaultSettingError(f"{name} must be [min_seconds, max_seconds]")
        low, high = (_number(name, v, 0, MAX_SECONDS) for v in value)
        if low > high:
            raise FaultSettingError(f"{name}: min is above max")
        return [low, high]
    if name in VARIANTS:
        if value not in VARIANTS[name]:
            raise FaultSettingError(f"{name} must be one of {', '.join(VARIANTS[name])}")
        return value
    if name == "api_hang_seconds":
        return _number(name, value, 0, MAX_SECONDS)
    if not isinstance(value, list) or not value or not set(value) <= set(API_ERROR_KINDS):
        raise FaultSettingError(f"api_error_kinds must be a non-empty list of {API_ERROR_KINDS}")
    return value


def _number(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise FaultSettingError(f"{name} must be a number from {low} to {high}")
    return float(value)


class Faults:
    """Reads and writes the settings; rolls the dice for each decision."""

    def __init__(self, database):
        self.database = database
        self._lock = threading.Lock()
        self._random = random.Random(DEFAULTS["seed"])

    def current(self):
        db = connect(self.database)
        try:
            row = db.execute("SELECT value FROM settings WHERE name = 'faults'").fetchone()
        finally:
            db.close()
        return {**DEFAULTS, **json.loads(row["value"])} if row else dict(DEFAULTS)

    def update(self, changes):
        settings = validate(changes, self.current())
        db = connect(self.database)
        try:
            db.execute(
                "INSERT INTO settings (name, value) VALUES ('faults', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (json.dumps(settings),),
            )
        finally:
            db.close()
        with self._lock:
            self._random.seed(settings["seed"])
        return settings

    def happens(self, share):
        """True with probability share."""
        if share <= 0:
            return False
        with self._lock:
            return self._random.random() < share

    def seconds(self, bounds):
        low, high = bounds
        if high <= 0:
            return 0.0
        with self._lock:
            return self._random.uniform(low, high)

    def choice(self, options):
        with self._lock:
            return self._random.choice(list(options))
