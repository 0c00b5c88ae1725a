"""ZeroMQ for anyio: one program, unchanged, on anyio's asyncio and trio backends.

::

    ctx = zmq_async.anyio.Context()
    sock = ctx.socket(zmq.PULL)
    msg = await sock.recv_multipart()       # no task group, no ``async with`` needed
    with anyio.move_on_after(1):            # cancel scopes cancel any call, losing nothing
        msg = await sock.recv()

Blocking methods are coroutine methods. Works on the asyncio backend (default loop, uvloop)
and on trio, where any number of tasks may wait on one socket.
"""

from zmq_async.anyio._context import Context
from zmq_async.anyio._poller import Poller
from zmq_async.anyio._socket import Socket

__all__ = ["Context", "Poller", "Socket"]
