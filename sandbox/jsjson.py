"""JSON exactly as JavaScript's JSON.stringify writes it: the platform (Node) signs and checks that.

The sandbox's own copy (it never imports the shop): it re-serialises what it parsed, as a Node
server would, so a client that signs Python's json.dumps output is refused here as it would be
on a real site.
"""

import re
from decimal import Decimal

_JS_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_JS_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')
_ARRAY_INDEX = re.compile(r"^(0|[1-9]\d{0,9})$")
_SAFE_INTEGER = 2**53 - 1


def js_json(value):
    """value as JavaScript's JSON.stringify(value) writes it, byte for byte (a str)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        # JavaScript strings are UTF-16: a surrogate pair is one character, a lone half is
        # written as \\udXXX (ES2019 well-formed JSON.stringify).
        text = value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return '"' + _JS_NEEDS_ESCAPE.sub(_js_escape, text) + '"'
    if isinstance(value, int):
        # JavaScript has only doubles: a bigger integer arrives rounded.
        return str(value) if abs(value) <= _SAFE_INTEGER else js_number(float(value))
    if isinstance(value, (float, Decimal)):
        return js_number(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{js_json(str(k))}:{js_json(v)}" for k, v in _js_items(value)) + "}"
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _js_escape(match):
    char = match.group()
    return _JS_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _js_items(mapping):
    # JavaScript objects list integer-like keys first, in numeric order, then the rest as added.
    indices, others = [], []
    for key, item in mapping.items():
        key = str(key)
        is_index = _ARRAY_INDEX.match(key) and int(key) < 2**32 - 1
        (indices if is_index else others).append((key, item))
    return sorted(indices, key=lambda pair: int(pair[0])) + others


def js_number(number):
    """A float as JavaScript's Number.prototype.toString writes it (ECMA-262 Number::toString)."""
    if number != number or number in (float("inf"), float("-inf")):
        return "null"  # what JSON.stringify writes for NaN and the infinities
    if number == 0:
        return "0"
    if number < 0:
        return "-" + js_number(-number)
    # repr gives the shortest digits that read back as the same double, as JavaScript does.
    _sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digits))
    k, n = len(digits), exponent + len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
