"""The import switch of scripts/programs' peer suites (round 17), on lines shaped like the
peers' tests: each spelling becomes ours, and nothing else changes.

The suites themselves download and run the peers' tests (``scripts/programs --suites
peer-pyzmq,peer-eventlet,peer-zmq-anyio``); a switch that missed a spelling would run that test
on the peer on both sides and prove nothing.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "programs"


@functools.cache
def _programs() -> ModuleType:
    """The script as a module (its dataclasses need it in sys.modules)."""
    loader = importlib.machinery.SourceFileLoader("_programs_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader("_programs_script", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_programs_script"] = module
    loader.exec_module(module)
    return module


def _switch(tmp_path: Path, suite: str, text: str) -> tuple[str, int]:
    programs = _programs()
    tests = tmp_path / "tests"
    tests.mkdir(parents=True)
    (tests / "test_x.py").write_text(text)
    changed = programs.switch_imports(tests, programs.PEER_SWITCH[suite])
    return (tests / "test_x.py").read_text(), changed


#: (a line of pyzmq's tests, what the switch makes of it), in the shapes its files have.
PYZMQ_LINES = [
    ("import zmq", "import zmq"),
    ("import zmq.asyncio", "import zmq_async.asyncio"),
    ("import zmq.asyncio as zaio", "import zmq_async.asyncio\nimport zmq_async.asyncio as zaio"),
    # pyzmq's own modules stay: the authenticator, Tornado's IOLoop
    ("from zmq.auth.asyncio import AsyncioAuthenticator", None),
    ("from zmq.eventloop import ioloop", None),
    ("from zmq import green as gzmq", "import zmq_async.green as gzmq"),
    ("ctx = zmq.asyncio.Context.instance()", "ctx = zmq_async.asyncio.Context.instance()"),
    ("def make():", None),
    ("    from zmq.eventloop import zmqstream", "    import zmq_async.stream as zmqstream"),
    ("    from zmq.eventloop import future", "    import zmq_async.tornado as future"),
    ("    import zmq.green", "    import zmq_async.green"),
    ("    return zmq.green.device", "    return zmq_async.green.device"),
    ('_repr_cls = "zmq.green.Socket"', '_repr_cls = "zmq_async.green.Socket"'),
    (
        '@pytest.mark.parametrize("pkgname", ["zmq", "zmq.green"])',
        '@pytest.mark.parametrize("pkgname", ["zmq", '
        'pytest.param("zmq_async.green", id="zmq.green")])',
    ),
    ("def test_all_exports(pkgname):\n    pass", None),
]
PYZMQ_BEFORE = "\n".join(before for before, _ in PYZMQ_LINES) + "\n"
PYZMQ_AFTER = "\n".join(before if after is None else after for before, after in PYZMQ_LINES) + "\n"


@pytest.mark.timeout(30)
def test_the_pyzmq_switch_puts_ours_in_every_spelling_and_keeps_test_ids(tmp_path: Path) -> None:
    """pyzmq's own modules (zmq.auth.asyncio, Tornado's ioloop) stay; the test_imports
    parameter keeps the peer's test id, so the two sides' outcomes compare test by test."""
    after, changed = _switch(tmp_path, "peer-pyzmq", PYZMQ_BEFORE)
    assert after == PYZMQ_AFTER
    assert changed > 0
    compile(after, "test_x.py", "exec")


@pytest.mark.timeout(30)
def test_the_eventlet_and_zmq_anyio_switches(tmp_path: Path) -> None:
    before = "try:\n    from eventlet.green import zmq\nexcept ImportError:\n    zmq = {}\n"
    after, _ = _switch(tmp_path / "ev", "peer-eventlet", before)
    assert after == before.replace(
        "from eventlet.green import zmq", "from zmq_async.green import eventlet as zmq"
    )
    before = "import zmq\nfrom zmq_anyio import Poller, Socket\n"
    after, _ = _switch(tmp_path / "za", "peer-zmq-anyio", before)
    assert after == "import zmq\nfrom zmq_async.zmq_anyio import Poller, Socket\n"


@pytest.mark.timeout(30)
def test_a_switch_that_finds_nothing_says_so(tmp_path: Path) -> None:
    """The suites stop when the switch changed nothing (the pinned tests moved): a run
    on the peer on both sides would pass and prove nothing."""
    after, changed = _switch(tmp_path, "peer-pyzmq", "import zmq\n")
    assert (after, changed) == ("import zmq\n", 0)
