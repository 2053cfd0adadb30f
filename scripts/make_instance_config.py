"""Write instance/config.py for a local run: a random SECRET_KEY, a console password, the sandbox.

The password is printed once; only its hash is kept. An existing file is never overwritten: one
made before EXCHANGER_URL had to be named only gains `EXCHANGER_URL = "sandbox"`, which is what
it meant then, so `make run` keeps working on an existing checkout.
"""

import os
import runpy
import secrets
import sys
from pathlib import Path

from werkzeug.security import generate_password_hash

SANDBOX_LINE = (
    "\n# The built-in sandbox exchanger: no real money moves. Set your exchanger's https://"
    " site here to go live.\n"
    'EXCHANGER_URL = "sandbox"\n'
)


def create(path):
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The sandbox line first: settings a merchant adds below it (a real EXCHANGER_URL) win.
    path.write_text(
        SANDBOX_LINE.lstrip()
        + f"\nSECRET_KEY = {secrets.token_hex(32)!r}\n"
        + f"CONSOLE_PASSWORD_HASH = {generate_password_hash(password)!r}\n"
    )
    path.chmod(0o600)
    print(f"Wrote {path}. Merchant console password (shown once): {password}")


def upgrade(path):
    """Name the sandbox in a file that chose no exchanger (and none is set in the environment)."""
    if "EXCHANGER_URL" in runpy.run_path(str(path)) or os.environ.get("FLASK_EXCHANGER_URL"):
        return
    with path.open("a") as config:
        config.write(SANDBOX_LINE)
    print(f'{path} named no exchanger: added EXCHANGER_URL = "sandbox" (the demo sandbox).')


if __name__ == "__main__":
    target = Path(sys.argv[1])
    if target.exists():
        upgrade(target)
    else:
        create(target)
