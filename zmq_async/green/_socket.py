"""``Socket``: a zmq.Socket whose blocking calls block only the calling greenlet (gevent)."""

from __future__ import annotations

from zmq_async.green._base import GreenSocket
from zmq_async.green._driver import current_hub

__all__ = ["Socket"]


class Socket(GreenSocket):
    """A green socket for gevent: a drop-in for ``zmq.green.Socket``.

    Unlike it, any number of greenlets may wait on one socket (served FIFO), ``RCVTIMEO`` and
    ``SNDTIMEO`` raise ``zmq.Again`` after their time, and an idle socket costs no CPU.
    """

    _repr_cls = "zmq_async.green.Socket"
    _current_hub = staticmethod(current_hub)
