"""ZeroMQ for gevent: ``import zmq_async.green as zmq``, a drop-in for ``zmq.green``.

The whole ``zmq`` namespace (every constant, error and utility), with green ``Context``,
``Socket``, ``Poller``, ``select``, ``device`` and ``proxy`` whose blocking calls block only
the calling greenlet. Nothing is monkeypatched. gevent itself is imported on first use of
one of those names, so ``zmq_async.green.eventlet`` (the same for eventlet) never imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import zmq as _zmq
from zmq import *  # noqa: F403 - the drop-in re-exports the whole zmq namespace

#: The gevent-backed names, and the module each one lives in (imported on first use).
_GREEN = {
    "Context": "zmq_async.green._context",
    "Socket": "zmq_async.green._socket",
    "Poller": "zmq_async.green._poller",
    "select": "zmq_async.green._poller",
    "device": "zmq_async.green._device",
    "proxy": "zmq_async.green._device",
    "proxy_steerable": "zmq_async.green._device",
}

__all__ = list(_zmq.__all__)

if TYPE_CHECKING:
    from zmq_async.green._context import Context as Context
    from zmq_async.green._device import device as device
    from zmq_async.green._device import proxy as proxy
    from zmq_async.green._device import proxy_steerable as proxy_steerable
    from zmq_async.green._poller import Poller as Poller
    from zmq_async.green._poller import select as select
    from zmq_async.green._socket import Socket as Socket
else:
    # The star import bound zmq's blocking versions: forget them, so that __getattr__ runs.
    for _name in _GREEN:
        globals().pop(_name, None)
    del _name


def __getattr__(name: str) -> Any:
    module = _GREEN.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_GREEN})
