"""``device``, ``proxy`` and ``proxy_steerable`` for eventlet, run in the calling green thread."""

from __future__ import annotations

from typing import Any

from zmq_async.green._base import green_device, green_proxy
from zmq_async.green.eventlet._poller import Poller

__all__ = ["device", "proxy", "proxy_steerable"]


def device(device_type: int, frontend: Any, backend: Any) -> int:
    """Forward messages both ways between two sockets; ``device_type`` is ignored.

    Returns only by raising ``ContextTerminated`` (ETERM) or ``ZMQError``, as ``zmq.device``.
    """
    return green_device(Poller, device_type, frontend, backend)


def proxy(frontend: Any, backend: Any, capture: Any = None) -> int:
    """Forward messages both ways, copying each to ``capture`` if given.

    Returns only by raising ``ContextTerminated`` (ETERM) or ``ZMQError``, as ``zmq.proxy``.
    """
    return green_proxy(Poller, frontend, backend, capture)


def proxy_steerable(frontend: Any, backend: Any, capture: Any = None, control: Any = None) -> int:
    """:func:`proxy`, steered by ``control``: ``PAUSE``, ``RESUME``, ``TERMINATE`` (returns 0)."""
    return green_proxy(Poller, frontend, backend, capture, control)
