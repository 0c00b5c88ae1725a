"""``Socket``: :class:`zmq_async.asyncio.Socket` under Tornado's name.

Its Futures are ``asyncio.Future`` objects, which Tornado 6 awaits and yields as its own
(``tornado.concurrent.Future is asyncio.Future``); they belong to the running loop, which is
the one under ``IOLoop.current()``.
"""

from __future__ import annotations

from zmq_async.asyncio._socket import Socket as _AsyncioSocket

__all__ = ["Socket"]


class Socket(_AsyncioSocket):
    """A socket for Tornado coroutines: a drop-in for ``zmq.eventloop.future.Socket``.

    ``recv``/``send`` (and friends) and ``poll`` return Futures usable with ``await`` and with
    ``yield`` in ``tornado.gen.coroutine``.
    """

    _repr_cls = "zmq_async.tornado.Socket"
