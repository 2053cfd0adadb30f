"""The platform's own front-end's calls, replayed by Node against a live standalone sandbox.

frontend_calls.test.mjs sends what GitHub NRepeat/exchanger-client-web sends (its methods,
headers, bodies and parameter types) and checks every property that code reads on the way:
route list -> route -> create -> order page (confirm) -> payment page -> "I have paid" ->
reload. Node 20 is installed wherever the tests run: without it this test fails, never skips.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("frontend_calls.test.mjs")


def test_the_front_ends_calls_get_every_property_it_reads(sandbox_server):
    node = shutil.which("node")
    assert node, "node (20 or later) is needed to replay the front-end's calls"
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(SCRIPT)],
        env={**os.environ, "SANDBOX_URL": sandbox_server.url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # Every step ran and passed: the journey's six and the three tests themselves.
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.M)
    assert passed and int(passed.group(1)) >= 9 and "# fail 0" in result.stdout, report
