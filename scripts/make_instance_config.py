"""Write instance/config.py for a local run: a random SECRET_KEY and console password.

The password is printed once; only its hash is kept. Never overwrites an existing file.
"""

import secrets
import sys
from pathlib import Path

from werkzeug.security import generate_password_hash

path = Path(sys.argv[1])
if path.exists():
    sys.exit(f"{path} exists: not overwritten")
password = secrets.token_urlsafe(12)
path.write_text(
    f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
    f"CONSOLE_PASSWORD_HASH = {generate_password_hash(password)!r}\n"
)
path.chmod(0o600)
print(f"Wrote {path}. Merchant console password (shown once): {password}")
