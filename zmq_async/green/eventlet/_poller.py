"""``Poller`` and ``select`` for eventlet: they block only the calling greenlet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zmq_async.green._base import GreenPoller, green_select
from zmq_async.green.eventlet._driver import current_hub
from zmq_async.green.eventlet._socket import Socket

__all__ = ["Poller", "select"]


class Poller(GreenPoller):
    """A green poller for eventlet (``eventlet.green.zmq.Poller`` is not); timeout in ms."""

    _current_hub = staticmethod(current_hub)
    _socket_class = Socket


def select(
    rlist: Sequence[Any], wlist: Sequence[Any], xlist: Sequence[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """``zmq.select`` for eventlet: ``timeout`` in seconds (None: forever)."""
    return green_select(Poller, rlist, wlist, xlist, timeout)
