"""The examples run, exit 0 promptly, and print what they claim to do.

Each runs in its own process, so the gevent and eventlet ones (which may monkeypatch) touch
nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The four scenarios every framework has: file -> regular expressions, each of which must
# match a whole line of its output.
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


TORNADO_EXPECTED: dict[str, list[str]] = {
    "echo_server.py": [
        r"client sent 'hello', got 'hello'",
        r"client sent 'ping', got 'ping'",
        r"client sent 'bye', got 'bye'",
        r"echo_server: done",
    ],
    "pub_sub.py": [
        r"publisher sent \d+ updates on each of 'weather' and 'sports'",
        r"subscriber got 3 updates, topics: \['weather'\]",
        r"pub_sub: done",
    ],
}

#: examples/<folder> -> what its examples print, and the argument lists each is run with.
FOLDERS: dict[str, tuple[dict[str, list[str]], list[tuple[str, ...]]]] = {
    "asyncio": (EXPECTED, [()]),
    "anyio": (EXPECTED, [("asyncio",), ("trio",)]),
    "tornado": (TORNADO_EXPECTED, [()]),
    "gevent": (EXPECTED, [()]),
    "eventlet": (EXPECTED, [()]),
}

CASES = [
    pytest.param(folder, name, args, id="/".join([folder, name, *args]))
    for folder, (expected, arg_lists) in FOLDERS.items()
    for name in sorted(expected)
    for args in arg_lists
]

# Warnings are errors, except eventlet's notice (on import) that it is deprecated.
RUNNER = (
    "import runpy, sys, warnings\n"
    "warnings.filterwarnings('ignore', message='\\nEventlet is deprecated')\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def test_examples_folders_are_all_checked() -> None:
    folders = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert folders == sorted(FOLDERS)


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_every_example_is_checked_and_listed(folder: str) -> None:
    expected = FOLDERS[folder][0]
    assert sorted(p.name for p in (EXAMPLES / folder).glob("*.py")) == sorted(expected)
    readme = (EXAMPLES / "README.md").read_text()
    for name in expected:
        assert f"{folder}/{name}" in readme, name


@pytest.mark.parametrize(("folder", "name", "args"), CASES)
def test_example_runs_and_prints_what_it_did(folder: str, name: str, args: tuple[str, ...]) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", RUNNER, str(EXAMPLES / folder / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    for pattern in FOLDERS[folder][0][name]:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, proc.stdout)
