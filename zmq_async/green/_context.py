"""``Context``: creates :class:`~zmq_async.green.Socket` objects."""

from __future__ import annotations

from typing import Any

from zmq_async.green._base import GreenContext
from zmq_async.green._driver import current_hub, hub_exists
from zmq_async.green._socket import Socket

__all__ = ["Context"]


class Context(GreenContext[Socket]):
    """A context for gevent sockets: a drop-in for ``zmq.green.Context``.

    ``Context.instance()`` is this class's own singleton. ``term()`` and ``destroy()`` wake
    greenlets waiting on its sockets with ``zmq.ContextTerminated`` (ETERM).
    """

    _socket_class = Socket
    _repr_cls = "zmq_async.green.Context"
    _current_hub = staticmethod(current_hub)
    _hub_exists = staticmethod(hub_exists)
    _instance: Any = None
    _instance_pid: int | None = None
