"""The green drop-in surface as code that does not know about us sees it, peer beside ours.

Runs once per flavour (gevent, eventlet), patched and not (see conftest.py).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest


@pytest.fixture(params=["peer", "ours"])
def layer(request: pytest.FixtureRequest, green: Any, zmq: Any) -> Any:
    """The flavour's module: pyzmq's (``zmq.green``, ``eventlet.green.zmq``) or ours."""
    return green.peer if request.param == "peer" else zmq


def _unraisable_after(action: Any) -> list[BaseException | None]:
    """Run ``action`` (which must raise TypeError), collect, and return what the garbage
    collector could not raise (finalizers' errors), as pytest would report them."""
    seen: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        try:
            action()
        except TypeError:
            pass  # (not kept: its traceback holds the half-made object)
        else:
            raise AssertionError("accepted")
        gc.collect()
    finally:
        sys.unraisablehook = hook
    return [u.exc_value for u in seen]


@pytest.mark.timeout(20)
def test_a_context_refused_for_a_bad_argument_leaves_nothing_for_the_collector(layer):
    """``Context(io_loop=...)`` (tornado's keyword, pasted into green code) raises TypeError;
    the half-made context's finalizer then failed on ours (``_sockets`` never set: 'Context
    has no such option: _SOCKETS'), an unraisable error that fails a test suite."""
    assert _unraisable_after(lambda: layer.Context(io_loop=None, bogus=1)) == []


@pytest.mark.timeout(20)
def test_a_context_made_after_a_refused_one_works(zmq, green):
    """The refused one left no state behind: the next context serves a round trip."""
    _unraisable_after(lambda: zmq.Context(bogus=1))
    context = zmq.Context()
    try:
        pull = context.socket(zmq.PULL)
        push = context.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        push.send(b"x")
        assert green.get(green.spawn(pull.recv), timeout=10) == b"x"
    finally:
        context.destroy(linger=0)
