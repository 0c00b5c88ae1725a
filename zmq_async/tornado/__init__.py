"""ZeroMQ for Tornado coroutines: a drop-in for ``zmq.eventloop.future``.

Change ``from zmq.eventloop import future`` to ``import zmq_async.tornado as future`` and keep
the rest::

    ctx = zmq_async.tornado.Context()
    sock = ctx.socket(zmq.PULL)
    msg = await sock.recv_multipart()        # or: msg = yield sock.recv_multipart()

Tornado 6's ``Future`` is ``asyncio.Future`` and its IOLoop runs on an asyncio loop, so these
are :mod:`zmq_async.asyncio`'s classes under Tornado's names, on ``IOLoop.current()``. The
callback-style :class:`~zmq_async.stream.ZMQStream` is re-exported here.
"""

import asyncio
from typing import Any

from zmq_async.stream import SendQueueFull, ZMQStream
from zmq_async.tornado._context import Context
from zmq_async.tornado._ioloop import peer_attribute
from zmq_async.tornado._poller import Poller
from zmq_async.tornado._socket import Socket

CancelledError = asyncio.CancelledError
"""What a cancelled operation raises, and (as a subclass that is also an ``Exception``, like
``zmq.eventloop.future.CancelledError``) a pending operation whose socket was closed."""

#: ``zmq.eventloop.future.Future``: Tornado's ``Future``, which is asyncio's (Tornado 5 on).
Future = asyncio.Future

__all__ = ["CancelledError", "Context", "Poller", "SendQueueFull", "Socket", "ZMQStream"]


def __getattr__(name: str) -> Any:
    """``IOLoop``: Tornado's, as ``zmq.eventloop.future.IOLoop``."""
    return peer_attribute(__name__, name)
