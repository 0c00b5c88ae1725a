"""``Socket``: :class:`zmq_async.asyncio.Socket` under Tornado's name.

Its Futures are ``asyncio.Future`` objects, which Tornado 6 awaits and yields as its own
(``tornado.concurrent.Future is asyncio.Future``); they belong to the running loop, which is
the one under ``IOLoop.current()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from zmq_async.asyncio._socket import Socket as _AsyncioSocket
from zmq_async.tornado._ioloop import IOLoopEntry, enlist, io_loop_of, unlist

__all__ = ["Socket", "SocketClosed"]


class SocketClosed(asyncio.CancelledError, Exception):
    """What a pending operation fails with when its socket is closed.

    ``zmq.eventloop.future`` fails it with its ``CancelledError``, an ``Exception``; this is
    both an ``asyncio.CancelledError`` (``zmq_async.tornado.CancelledError``, which a
    cancelled operation raises too, as the peer's does) and an ``Exception``, so code
    catching either keeps working.
    """


class Socket(_AsyncioSocket):
    """A socket for Tornado coroutines: a drop-in for ``zmq.eventloop.future.Socket``.

    ``recv``/``send`` (and friends) and ``poll`` return Futures usable with ``await`` and with
    ``yield`` in ``tornado.gen.coroutine``. Once used under a Tornado ``IOLoop`` the socket is
    listed among that IOLoop's handlers, as the peer's is, so ``IOLoop.close(all_fds=True)``
    closes it.
    """

    _repr_cls = "zmq_async.tornado.Socket"
    _io_loop_entry: tuple[Any, IOLoopEntry] | None = None

    def _bind(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        loop = super()._bind(loop)
        io_loop = io_loop_of(loop)
        if io_loop is not None:
            enlist(self, io_loop, self._reactor.fd)
        else:
            unlist(self)
        return loop

    def _get_loop(self) -> Any:
        """The Tornado IOLoop the socket runs on, attaching it to the current one first.

        The peer's (private) way to attach a socket; pyzmq's own tests call it.
        """
        from tornado.ioloop import IOLoop

        io_loop = IOLoop.current()
        self._bind(io_loop.asyncio_loop)  # type: ignore[attr-defined]
        return io_loop

    def _close_error(self) -> BaseException:
        return SocketClosed("socket closed")

    async def __anext__(self) -> list[Any]:
        """The next multipart message; iteration ends when the socket is closed."""
        try:
            return await super().__anext__()
        except SocketClosed:
            if self._reactor.closed:
                raise StopAsyncIteration from None
            raise

    def close(self, linger: int | None = None) -> None:
        """Close the socket, as ``zmq.asyncio.Socket.close``, and unlist it from its IOLoop.

        Pending operations fail with ``CancelledError`` (one that is also an ``Exception``).
        """
        reactor = self._reactor
        pending = [w.completion for q in (reactor.recvq, reactor.sendq, reactor.pollq) for w in q]
        super().close(linger)
        if self.closed:  # not when the close was handed to the socket's loop's thread
            unlist(self)
            for completion in pending:
                # Failed by the caller's own close: a Future nobody awaited must not be
                # reported at exit as a lost error ("Future exception was never retrieved"),
                # as the asyncio layer's cancelled ones are not. A Poller's wait holds its
                # Future as ``completion``.
                future = getattr(completion, "completion", completion)
                if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
                    future.exception()
