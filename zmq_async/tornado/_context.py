"""``Context``: creates :class:`~zmq_async.tornado.Socket` objects."""

from __future__ import annotations

import warnings
from typing import Any

import zmq

from zmq_async.asyncio._context import TermFinishesHandedCloses
from zmq_async.tornado._socket import Socket

__all__ = ["Context"]


class Context(TermFinishesHandedCloses, zmq.Context[Socket]):
    """A context for Tornado sockets: a drop-in for ``zmq.eventloop.future.Context``.

    ``Context.instance()`` is this class's own singleton. ``io_loop=`` is accepted, with the
    peer's DeprecationWarning, and ignored: the current loop is always used.
    """

    _socket_class = Socket
    _repr_cls = "zmq_async.tornado.Context"
    _instance: Any = None
    _instance_pid: int | None = None
    io_loop: Any = None

    def __init__(
        self,
        io_threads: int | zmq.Context[Any] = 1,
        shadow: zmq.Context[Any] | int = 0,
        io_loop: Any = None,
    ) -> None:
        if io_loop is not None:
            warnings.warn(
                f"{type(self).__name__}(io_loop) is deprecated and ignored: "
                "the currently active loop is always used.",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(io_threads, shadow)  # type: ignore[misc, call-overload]
