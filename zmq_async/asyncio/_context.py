"""``Context``: creates :class:`~zmq_async.asyncio.Socket` objects."""

from __future__ import annotations

from typing import Any

import zmq

from zmq_async.asyncio._socket import Socket, finish_handed_closes

__all__ = ["Context", "TermFinishesHandedCloses"]


class TermFinishesHandedCloses:
    """Mixed into the contexts of asyncio and Tornado sockets (before ``zmq.Context``)."""

    def term(self) -> None:
        """Terminate the context, as ``zmq.Context.term``: waits until its sockets close.

        A close handed by another thread to a socket's loop that stopped before carrying it
        out is carried out here (the wait would otherwise never end).
        """
        finish_handed_closes(self)  # type: ignore[arg-type]
        super().term()  # type: ignore[misc]


class Context(TermFinishesHandedCloses, zmq.Context[Socket]):
    """A context for asyncio sockets: a drop-in for ``zmq.asyncio.Context``.

    ``Context.instance()`` is this class's own singleton (per process), distinct from
    ``zmq.Context.instance()``. ``Context(sync_ctx)`` or ``Context(shadow=...)`` shadows
    an existing context.
    """

    _socket_class = Socket
    _repr_cls = "zmq_async.asyncio.Context"
    _instance: Any = None
    _instance_pid: int | None = None

    def __init__(
        self, io_threads: int | zmq.Context[Any] = 1, shadow: zmq.Context[Any] | int = 0
    ) -> None:
        super().__init__(io_threads, shadow)  # type: ignore[misc, call-overload]
