"""ZeroMQ for asyncio: a drop-in for ``zmq.asyncio``.

Change ``import zmq.asyncio`` to ``import zmq_async.asyncio`` and keep the rest::

    ctx = zmq_async.asyncio.Context()
    sock = ctx.socket(zmq.PULL)
    msg = await sock.recv_multipart()

Works on any asyncio loop with ``add_reader`` (the default loop, uvloop).
"""

from zmq_async.asyncio._context import Context
from zmq_async.asyncio._poller import Poller
from zmq_async.asyncio._socket import Socket

__all__ = ["Context", "Poller", "Socket"]
