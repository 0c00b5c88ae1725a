"""The model-checked reactor (tests/test_model_machine.py) on zmq_async.green, with gevent.

Operations run in their own greenlets; the machine runs in the main greenlet, so gevent's hub
runs only when a step yields to it, and each step drives it until it is idle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import pytest
import zmq_async_model_machine as machine  # shared by tests/conftest.py
from hypothesis import settings

import zmq_async.green

TIMEOUT = max(60, settings().max_examples)

pytestmark = pytest.mark.unpatched(
    "the reactor's model, on greenlets and the hub, which use only the original threads"
)


def _outcome(operation: Callable[[], Any]) -> tuple[str, Any]:
    """Run a blocking operation in its greenlet; a kill (GreenletExit) passes through."""
    try:
        return "ok", operation()
    except Exception as exc:
        return "error", exc


class GeventHarness(machine.Harness):  # type: ignore[misc, name-defined]
    name = "gevent"
    zmq = zmq_async.green

    def call(self, function: Callable[[], Any]) -> Any:
        return function()

    def start(self, operation: Callable[[], Any]) -> Any:
        return gevent.spawn(_outcome, operation)

    def cancel(self, handle: Any) -> None:
        handle.kill(block=False)

    def outcome(self, handle: Any) -> tuple[str, Any]:
        if not handle.dead:
            return "pending", None
        if isinstance(handle.value, gevent.GreenletExit):  # killed: gevent calls it success
            return "cancelled", None
        if handle.successful():
            return handle.value  # type: ignore[no-any-return]
        return "error", handle.exception

    def settle(self) -> None:
        # idle() returns once the hub has nothing else to run (I/O included); twice, since
        # what ran may have scheduled more.
        for _ in range(2):
            gevent.sleep(0)
            gevent.idle()

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)
        self.settle()


class Machine(machine.ReactorModel):  # type: ignore[misc, name-defined]
    make_harness = GeventHarness


@pytest.mark.timeout(TIMEOUT)
def test_model_gevent() -> None:
    Machine.TestCase().runTest()
