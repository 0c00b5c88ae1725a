"""``Context``: creates :class:`~zmq_async.anyio.Socket` objects."""

from __future__ import annotations

from typing import Any

import zmq

from zmq_async.anyio._socket import Socket

__all__ = ["Context"]


class Context(zmq.Context[Socket]):
    """A context for anyio sockets (asyncio and trio backends).

    ``Context.instance()`` is this class's own singleton (per process), distinct from
    ``zmq.Context.instance()``. ``Context(sync_ctx)`` or ``Context(shadow=...)`` shadows an
    existing context. ``destroy()`` closes every socket: their pending operations raise
    ``zmq.ZMQError`` (ENOTSOCK).
    """

    _socket_class = Socket
    _repr_cls = "zmq_async.anyio.Context"
    _instance: Any = None
    _instance_pid: int | None = None

    def __init__(
        self, io_threads: int | zmq.Context[Any] = 1, shadow: zmq.Context[Any] | int = 0
    ) -> None:
        super().__init__(io_threads, shadow)  # type: ignore[call-overload]
