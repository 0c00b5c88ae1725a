"""``Context``: creates :class:`~zmq_async.green.eventlet.Socket` objects."""

from __future__ import annotations

from typing import Any

import eventlet.patcher  # type: ignore[import-untyped]
from zmq.utils import garbage

from zmq_async.green._base import GreenContext
from zmq_async.green.eventlet._driver import current_hub, hub_exists
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
    _hub_exists = staticmethod(hub_exists)
    _instance: Any = None
    _instance_pid: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _green_garbage_collector()


#: Whether pyzmq's garbage collector was looked at in a monkeypatched process (once is enough).
_collector_checked = False


def _green_garbage_collector() -> None:
    """In a program monkeypatched by eventlet, give pyzmq's zero-copy garbage collector one of
    our contexts, as pyzmq does for gevent alone.

    Its thread (started by the first zero-copy send) is then a green thread, and a plain
    context's blocking receive there stopped the whole OS thread: the process hung, as it
    does with ``eventlet.green.zmq``. A collector already given a context is left as it is.
    """
    global _collector_checked
    if _collector_checked or not eventlet.patcher.is_monkey_patched("thread"):
        return
    _collector_checked = True  # first: the context made here comes back through __init__
    if garbage.gc._context is None:
        garbage.gc.context = Context()
