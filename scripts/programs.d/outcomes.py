"""pytest plugin: append each test's outcome to $PROGRAMS_OUTCOMES as one JSON line.

One line per test as soon as it is known, so a run killed by its time limit still tells what
ran. A test is "passed", "failed" (its body failed), "error" (setup or teardown failed) or
"skipped" (xfail counts as skipped, xpass as passed). At the end, one line names the modules
that the run's `zmq.asyncio`, `zmq.eventloop.zmqstream` and the other peers (and ours) really
were (those it imported), and "monkeypatched" if gevent or eventlet patched it, in
$PROGRAMS_OUTCOMES.modules.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_outcomes: dict[str, str] = {}
#: The peers' modules, and ours that a test file imports itself when its import is switched.
_MODULES = (
    "zmq.asyncio", "zmq.eventloop.zmqstream", "zmq.eventloop.future", "zmq.green",
    "eventlet.green.zmq", "zmq_anyio", "zmq_async.asyncio", "zmq_async.stream",
    "zmq_async.tornado", "zmq_async.green", "zmq_async.green.eventlet", "zmq_async.zmq_anyio",
)  # fmt: skip


def _record(nodeid: str, outcome: str) -> None:
    path = os.environ.get("PROGRAMS_OUTCOMES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": nodeid, "outcome": outcome}) + "\n")


def pytest_runtest_logreport(report: Any) -> None:
    nodeid = report.nodeid
    if report.when == "setup":
        if report.failed:
            _outcomes[nodeid] = "error"
        elif report.skipped:
            _outcomes[nodeid] = "skipped"
    elif report.when == "call":
        if report.failed:
            _outcomes[nodeid] = "failed"
        elif report.skipped:
            _outcomes[nodeid] = "skipped"
        else:
            _outcomes[nodeid] = "passed"
    elif report.when == "teardown":
        if report.failed and _outcomes.get(nodeid) in ("passed", None):
            _outcomes[nodeid] = "error"
        _record(nodeid, _outcomes.get(nodeid, "error"))


def pytest_sessionfinish() -> None:
    path = os.environ.get("PROGRAMS_OUTCOMES")
    if not path:
        return
    modules = {name: sys.modules[name].__name__ for name in _MODULES if name in sys.modules}
    # And whether the process was monkeypatched (the peer suites' "patched" rows must be).
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        modules["monkeypatched"] = "gevent"
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("socket"):
        modules["monkeypatched"] = "eventlet"
    with open(path + ".modules", "w", encoding="utf-8") as f:
        f.write(json.dumps(modules))
