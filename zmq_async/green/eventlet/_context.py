"""``Context``: creates :class:`~zmq_async.green.eventlet.Socket` objects."""

from __future__ import annotations

from typing import Any

from zmq_async.green._base import GreenContext
from zmq_async.green.eventlet._driver import current_hub
from zmq_async.green.eventlet._socket import Socket

__all__ = ["Context"]


class Context(GreenContext[Socket]):
    """A context for eventlet sockets: a drop-in for ``eventlet.green.zmq.Context``.

    ``Context.instance()`` is this class's own singleton. ``term()`` and ``destroy()`` wake
    green threads waiting on its sockets with ``zmq.ContextTerminated`` (ETERM).
    """

    _socket_class = Socket
    _repr_cls = "zmq_async.green.eventlet.Context"
    _current_hub = staticmethod(current_hub)
    _instance: Any = None
    _instance_pid: int | None = None
