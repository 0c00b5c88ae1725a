"""The examples run, exit 0 promptly, and print what they claim to do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "asyncio"

# example file -> regular expressions, each of which must match a whole line of its output
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


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def test_every_example_is_listed_in_the_readme() -> None:
    readme = (ROOT / "examples" / "README.md").read_text()
    for name in EXPECTED:
        assert f"asyncio/{name}" in readme, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_what_it_did(name: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)],
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


# -- examples/anyio (issue 3): the same scenarios, each run on both anyio backends --------------

ANYIO_EXAMPLES = ROOT / "examples" / "anyio"


def test_every_anyio_example_is_checked_and_listed() -> None:
    assert sorted(p.name for p in ANYIO_EXAMPLES.glob("*.py")) == sorted(EXPECTED)
    readme = (ROOT / "examples" / "README.md").read_text()
    for name in EXPECTED:
        assert f"anyio/{name}" in readme, name


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_anyio_example_runs_on_each_backend(name: str, backend: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(ANYIO_EXAMPLES / name), backend],
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
