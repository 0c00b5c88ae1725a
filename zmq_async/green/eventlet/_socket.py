"""``Socket``: a zmq.Socket whose blocking calls block only the calling green thread (eventlet)."""

from __future__ import annotations

from zmq_async.green._base import GreenSocket
from zmq_async.green.eventlet._driver import current_hub

__all__ = ["Socket"]


class Socket(GreenSocket):
    """A green socket for eventlet: a drop-in for ``eventlet.green.zmq.Socket``.

    Unlike it, ``SNDTIMEO`` is honoured as well as ``RCVTIMEO``, polls are green, closing
    the socket wakes its waiters with an error, and an idle socket costs no CPU.
    """

    _repr_cls = "zmq_async.green.eventlet.Socket"
    _current_hub = staticmethod(current_hub)
