"""``ReactorSocket``: the ``zmq.Socket`` under every adapter's socket, with its reactor.

Reading or setting options goes through here so the reactor stays right: reading ``EVENTS``
may consume the edge a queued waiter needs (rule 1), and the reactor caches RCVTIMEO and
SNDTIMEO, so setting either must invalidate the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import zmq
from zmq.backend import Socket as _BackendSocket

from zmq_async._reactor import Reactor

__all__ = ["ReactorSocket"]

_T = TypeVar("_T")

_get: Callable[[Any, int], Any] = _BackendSocket.get
_set = _BackendSocket.set
_EVENTS = int(zmq.EVENTS)
_TIMEOUTS = (int(zmq.RCVTIMEO), int(zmq.SNDTIMEO))


class ReactorSocket(zmq.Socket[_T]):
    """A ``zmq.Socket`` served by one :class:`~zmq_async._reactor.Reactor` (``_reactor``)."""

    _reactor: Reactor

    def get(self, option: int) -> Any:
        result = _get(self, option)
        if option == _EVENTS:
            # Reading EVENTS may have consumed the edge a queued waiter needs.
            self._reactor.after_op()
        return result

    def getsockopt(self, option: int) -> Any:
        return self.get(option)

    def set(self, option: int, optval: Any) -> None:
        _set(self, option, optval)
        if option in _TIMEOUTS:
            self._reactor.invalidate_timeouts()

    setsockopt = set
