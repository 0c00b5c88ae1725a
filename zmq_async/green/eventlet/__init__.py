"""ZeroMQ for eventlet: ``import zmq_async.green.eventlet as zmq``, for ``eventlet.green.zmq``.

The whole ``zmq`` namespace (every constant, error and utility), with green ``Context``,
``Socket``, ``Poller``, ``select``, ``device``, ``proxy`` and ``proxy_steerable`` whose
blocking calls block only the calling green thread. Nothing is monkeypatched, and gevent is
never imported.
"""

from __future__ import annotations

import zmq as _zmq
from zmq import *  # noqa: F403 - the drop-in re-exports the whole zmq namespace

from zmq_async.green.eventlet._context import Context as Context
from zmq_async.green.eventlet._device import device as device
from zmq_async.green.eventlet._device import proxy as proxy
from zmq_async.green.eventlet._device import proxy_steerable as proxy_steerable
from zmq_async.green.eventlet._locks import LockReleaseError as LockReleaseError
from zmq_async.green.eventlet._locks import _BlockedThread as _BlockedThread
from zmq_async.green.eventlet._locks import _QueueLock as _QueueLock
from zmq_async.green.eventlet._poller import Poller as Poller
from zmq_async.green.eventlet._poller import select as select
from zmq_async.green.eventlet._socket import Socket as Socket

__all__ = list(_zmq.__all__)
