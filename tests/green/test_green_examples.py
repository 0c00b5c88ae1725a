"""The flavour's examples (examples/gevent/ or examples/eventlet/) run and print what they did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FLAVOUR = os.environ["ZMQ_ASYNC_GREEN"]
ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / FLAVOUR

# The same scenarios and output as examples/asyncio (see tests/test_examples.py).
EXPECTED: dict[str, list[str]] = {
    "req_rep.py": [
        r"client sent 'hello', got 'HELLO'",
        r"client sent 'ping', got 'PING'",
        r"client sent 'bye', got 'BYE'",
        r"req_rep: done",
    ],
    "pub_sub.py": [
        r"publisher sent \d+ updates on each of 'weather' and 'sports'",
        r"subscriber got 3 updates, topics: \['weather'\]",
        r"pub_sub: done",
    ],
    "push_pull.py": [
        r"ventilator sent 10 tasks to 2 workers",
        r"sink collected 10 results: \[0, 1, 4, 9, 16, 25, 36, 49, 64, 81\]",
        r"sum of squares = 285",
        r"push_pull: done",
    ],
    "router_dealer.py": [
        r"client-0 got \['reply to client-0/0', 'reply to client-0/1'\]",
        r"client-1 got \['reply to client-1/0', 'reply to client-1/1'\]",
        r"client-2 got \['reply to client-2/0', 'reply to client-2/1'\]",
        r"router_dealer: done",
    ],
}

# Warnings are errors, except eventlet's notice that it is deprecated.
RUNNER = (
    "import runpy, sys, warnings\n"
    "warnings.filterwarnings('ignore', message='\\nEventlet is deprecated')\n"
    "runpy.run_path(sys.argv[1], run_name='__main__')\n"
)


def test_every_example_is_checked_and_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)
    readme = (ROOT / "examples" / "README.md").read_text()
    for name in EXPECTED:
        assert f"{FLAVOUR}/{name}" in readme, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_what_it_did(name: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", RUNNER, str(EXAMPLES / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    for pattern in EXPECTED[name]:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, proc.stdout)
