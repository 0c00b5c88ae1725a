"""Listing our sockets and streams among a Tornado IOLoop's handlers, as the peer's are.

The peer registers each socket (and each ZMQStream's socket) with ``IOLoop.add_handler``, so
``IOLoop.close(all_fds=True)`` closes them. Ours watch their FD through the reactor instead,
so here they are only *listed*: ``add_handler(entry, _noop, 0)`` watches no events, and
``close_fd(entry)`` calls the owner's ``close()``. Tornado is never imported here.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Protocol

__all__ = ["IOLoopEntry", "enlist", "io_loop_of", "peer_attribute", "unlist"]


class _Owner(Protocol):
    """A socket or stream that can be listed: it remembers its listing, and can close."""

    _io_loop_entry: tuple[Any, IOLoopEntry] | None

    @property
    def closed(self) -> Any: ...

    def close(self, linger: int | None = None) -> None: ...


class IOLoopEntry:
    """What the IOLoop's handlers hold for an owner: ``close()`` on it closes the owner.

    Holds the owner weakly, so being listed does not keep an abandoned socket alive.
    """

    __slots__ = ("__weakref__", "fd", "owner")

    def __init__(self, owner: _Owner, fd: int) -> None:
        self.fd = fd
        self.owner = weakref.ref(owner)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        owner = self.owner()
        if owner is not None:
            getattr(owner, "_close_listed", owner.close)()

    def stale(self) -> bool:
        """Whether the owner is gone, closed or listed elsewhere: the FD is free again."""
        owner = self.owner()
        if owner is None:
            return True
        closed = owner.closed
        if callable(closed):  # ZMQStream.closed() is a method
            closed = closed()
        if closed:
            return True
        listed = owner._io_loop_entry
        return listed is None or listed[1] is not self


def io_loop_of(loop: Any) -> Any:
    """The Tornado IOLoop running on the asyncio loop ``loop``, if any (none is created)."""
    ioloop = sys.modules.get("tornado.ioloop")  # no IOLoop exists unless Tornado is imported
    if ioloop is None:
        return None
    return getattr(ioloop.IOLoop, "_ioloop_for_asyncio", {}).get(loop)


def peer_attribute(module: str, name: str) -> Any:
    """A module ``__getattr__``: ``IOLoop`` is Tornado's, as on the peer module, imported only
    when asked for (importing ours imports no Tornado). Raises AttributeError for other names.
    """
    if name == "IOLoop":
        from tornado.ioloop import IOLoop

        return IOLoop
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def enlist(owner: _Owner, io_loop: Any, fd: int, take_over: object = None) -> None:
    """List ``owner`` in ``io_loop``'s handlers under ``fd``, leaving any listing it had.

    Not listed if the FD is listed already (another wrapper of the same libzmq socket, or the
    caller's own ``add_handler``), unless by a stale entry or one owned by ``take_over`` (a
    stream takes its socket's place: closing the stream closes the socket).
    """
    unlist(owner)
    handlers = getattr(io_loop, "handlers", None)
    if handlers is not None:
        listed = handlers.get(fd, (None,))[0]
        if isinstance(listed, IOLoopEntry) and (
            listed.stale() or (take_over is not None and listed.owner() is take_over)
        ):
            io_loop.remove_handler(fd)
    entry = IOLoopEntry(owner, fd)
    try:
        io_loop.add_handler(entry, _noop, 0)
    except ValueError:  # "fd ... added twice"
        return
    owner._io_loop_entry = (io_loop, entry)


def unlist(owner: _Owner) -> None:
    """Leave the IOLoop's handlers (only the owner's own entry: others may list the FD)."""
    listed = owner._io_loop_entry
    if listed is not None:
        owner._io_loop_entry = None
        io_loop, entry = listed
        handlers = getattr(io_loop, "handlers", None)
        if handlers is not None and handlers.get(entry.fd, (None,))[0] is entry:
            io_loop.remove_handler(entry.fd)


def _noop(fd: Any, events: int) -> None:
    """Never called: the entry watches no events (the reactor watches the FD itself)."""
