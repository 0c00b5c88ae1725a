"""SIGINT under ``asyncio.run`` with zmq operations pending (a program: tests/faultprocs.py).

asyncio cancels the main task: ``asyncio.run`` raises KeyboardInterrupt at once, the pending
recv and poll end cancelled, and the next message sent to the socket was not taken by them.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("layer", ["asyncio", "uvloop", "tornado", "anyio-asyncio"])
def test_sigint_cancels_main_and_pending_operations(procs: Any, layer: str) -> None:
    latency, lines, err, code = procs.interrupt_program("sigint_asyncio", layer)
    assert lines[1] == "KeyboardInterrupt", [*lines, err]
    assert latency < 2.0
    assert "pending: ['cancelled', 'cancelled']" in lines, lines
    assert "next: m1" in lines, lines
    assert lines[-1] == "exit ok" and code == 0, [*lines, err]
    assert err == "", err
