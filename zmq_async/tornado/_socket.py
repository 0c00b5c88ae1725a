"""``Socket``: :class:`zmq_async.asyncio.Socket` under Tornado's name.

Its Futures are ``asyncio.Future`` objects, which Tornado 6 awaits and yields as its own
(``tornado.concurrent.Future is asyncio.Future``); they belong to the running loop, which is
the one under ``IOLoop.current()``.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from typing import Any

from zmq_async.asyncio._socket import Socket as _AsyncioSocket

__all__ = ["Socket"]


class Socket(_AsyncioSocket):
    """A socket for Tornado coroutines: a drop-in for ``zmq.eventloop.future.Socket``.

    ``recv``/``send`` (and friends) and ``poll`` return Futures usable with ``await`` and with
    ``yield`` in ``tornado.gen.coroutine``. Once used under a Tornado ``IOLoop`` the socket is
    listed among that IOLoop's handlers, as the peer's is, so ``IOLoop.close(all_fds=True)``
    closes it.
    """

    _repr_cls = "zmq_async.tornado.Socket"
    _io_loop_entry: tuple[Any, _IOLoopEntry] | None = None

    def _bind(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        loop = super()._bind(loop)
        self._unlist()
        io_loop = _io_loop_of(loop)
        if io_loop is not None:
            entry = _IOLoopEntry(self)
            if _enlist(io_loop, entry):
                self._io_loop_entry = (io_loop, entry)
        return loop

    def _get_loop(self) -> Any:
        """The Tornado IOLoop the socket runs on, attaching it to the current one first.

        The peer's (private) way to attach a socket; pyzmq's own tests call it.
        """
        from tornado.ioloop import IOLoop

        io_loop = IOLoop.current()
        self._bind(io_loop.asyncio_loop)  # type: ignore[attr-defined]
        return io_loop

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        if self.closed:  # not when the close was handed to the socket's loop's thread
            self._unlist()

    def _unlist(self) -> None:
        """Leave the IOLoop's handlers (only our own entry: the FD may be listed by others)."""
        listed = self._io_loop_entry
        if listed is not None:
            self._io_loop_entry = None
            io_loop, entry = listed
            handlers = getattr(io_loop, "handlers", None)
            if handlers is not None and handlers.get(entry.fd, (None,))[0] is entry:
                io_loop.remove_handler(entry.fd)


class _IOLoopEntry:
    """What the IOLoop's handlers hold for a socket: ``close_fd`` on it closes the socket.

    Holds the socket weakly, so being listed does not keep an abandoned socket alive.
    """

    __slots__ = ("__weakref__", "fd", "socket")

    def __init__(self, socket: Socket) -> None:
        self.fd: int = socket._reactor.fd
        self.socket = weakref.ref(socket)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        socket = self.socket()
        if socket is not None:
            socket.close()


def _io_loop_of(loop: asyncio.AbstractEventLoop) -> Any:
    """The Tornado IOLoop already running on ``loop``, if any (none is created)."""
    ioloop = sys.modules.get("tornado.ioloop")  # no IOLoop exists unless Tornado is imported
    if ioloop is None:
        return None
    return getattr(ioloop.IOLoop, "_ioloop_for_asyncio", {}).get(loop)


def _noop(fd: Any, events: int) -> None:
    """Never called: the entry watches no events (the reactor watches the FD itself)."""


def _enlist(io_loop: Any, entry: _IOLoopEntry) -> bool:
    """List ``entry`` in ``io_loop``'s handlers, watching no events; False if the FD is taken.

    The FD is taken when another wrapper of the same libzmq socket, or the caller's own
    ``add_handler``, listed it first; an entry left by a socket that is gone is replaced.
    """
    handlers = getattr(io_loop, "handlers", None)
    if handlers is not None:
        listed = handlers.get(entry.fd, (None,))[0]
        if isinstance(listed, _IOLoopEntry):
            owner = listed.socket()
            if owner is None or owner.closed:
                io_loop.remove_handler(entry.fd)
    try:
        io_loop.add_handler(entry, _noop, 0)
    except ValueError:  # "fd added twice"
        return False
    return True
