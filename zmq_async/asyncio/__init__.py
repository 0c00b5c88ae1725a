"""ZeroMQ for asyncio: a drop-in for ``zmq.asyncio``.

Change ``import zmq.asyncio`` to ``import zmq_async.asyncio`` and keep the rest::

    ctx = zmq_async.asyncio.Context()
    sock = ctx.socket(zmq.PULL)
    msg = await sock.recv_multipart()

Works on any asyncio loop with ``add_reader`` (the default loop, uvloop).
"""

import asyncio as _asyncio

from zmq_async.asyncio._context import Context
from zmq_async.asyncio._poller import Poller
from zmq_async.asyncio._socket import Socket

__all__ = ["Context", "Poller", "Socket"]

#: Names the peer module has beside its ``__all__`` and programs use (``zmq.asyncio.Future``
#: as the Future class to make): asyncio's own classes, and the peer's warning category (which
#: programs name in warning filters; never issued here: on a loop without ``add_reader``, such
#: as Windows' proactor loop, our sockets raise RuntimeError instead of starting a thread).
Future = _asyncio.Future
SelectorEventLoop = _asyncio.SelectorEventLoop


class ProactorSelectorThreadWarning(RuntimeWarning):
    """``zmq.asyncio.ProactorSelectorThreadWarning``, for warning filters that name it."""


#: ``zmq.asyncio.ZMQEventLoop``, deprecated since pyzmq 17 and still used by old programs: any
#: asyncio loop serves our sockets, and pyzmq's is a plain ``SelectorEventLoop`` subclass too.
#: Kept (outside ``__all__``) so such programs run under :func:`zmq_async.install`.
ZMQEventLoop = _asyncio.SelectorEventLoop


def install() -> None:
    """``zmq.asyncio.install()``: a no-op, as in pyzmq since 17 (nothing to install).

    Not to be confused with :func:`zmq_async.install`, which redirects pyzmq's modules.
    """
