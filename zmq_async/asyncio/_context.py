"""``Context``: creates :class:`~zmq_async.asyncio.Socket` objects."""

from __future__ import annotations

from typing import Any

import zmq

from zmq_async.asyncio._socket import Socket

__all__ = ["Context"]


class Context(zmq.Context[Socket]):
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
