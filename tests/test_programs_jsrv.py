"""Reductions of what jupyter_server's and nbclient's own test suites showed on zmq_async.

Both suites pass on zmq_async as on pyzmq (``scripts/programs --suites jupyter_server,nbclient``).
Their logs showed one difference: each "Unclosed socket" ResourceWarning of a socket that
jupyter_client's tests dropped without ``close()`` named ``zmq_async/_socket.py`` as its place,
where pyzmq's names the line of the program that dropped the socket. A warning filter with a
module (``-W ignore::ResourceWarning:jupyter_client.channels``), the ``module`` action that
nbclient's configuration uses, and the reader who must find the leak all depend on that place.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import pytest
import zmq
import zmq.asyncio

import zmq_async.anyio
import zmq_async.asyncio
import zmq_async.tornado

pytestmark = pytest.mark.timeout(30)


def drop_unclosed(ctx: zmq.Context[Any]) -> tuple[list[warnings.WarningMessage], int]:
    """Make a socket, drop it unclosed; return the warnings and the line that dropped it."""
    sock = ctx.socket(zmq.DEALER)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        del sock
    return caught, line


@pytest.mark.parametrize(
    "module", [zmq.asyncio, zmq_async.asyncio, zmq_async.tornado, zmq_async.anyio]
)
def test_an_unclosed_socket_warning_names_the_line_that_dropped_it(module: Any) -> None:
    """As pyzmq's (zmq.asyncio, the first case): one ResourceWarning, at the ``del`` (freed by
    reference counting there: test_dropped_sockets.py checks that no cycle delays it)."""
    ctx = module.Context()
    try:
        caught, line = drop_unclosed(ctx)
        resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert len(resource) == 1, [str(w.message) for w in caught]
        assert str(resource[0].message).startswith("Unclosed socket <")
        assert (resource[0].filename, resource[0].lineno) == (__file__, line)
    finally:
        ctx.term()  # returns: the dropped socket was closed


GREEN_SCRIPT = """
import gc, sys, warnings, zmq
import {module} as green

gc.disable()
ctx = green.Context()
sock = ctx.socket(zmq.DEALER)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    del sock  # line 10
ctx.term()
print([(w.category.__name__, w.filename, w.lineno) for w in caught])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("module", ["zmq_async.green", "zmq_async.green.eventlet"])
def test_an_unclosed_green_socket_warning_names_the_line_that_dropped_it(module: str) -> None:
    """The same on the green layers (in a child: importing gevent or eventlet stays there)."""
    out = subprocess.run(
        [sys.executable, "-c", GREEN_SCRIPT.format(module=module)],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    assert out.stdout.strip() == str([("ResourceWarning", "<string>", 10)]), out.stderr
