"""``Poller``: :class:`zmq_async.asyncio.Poller` under Tornado's name."""

from __future__ import annotations

from zmq_async.asyncio._poller import Poller as _AsyncioPoller

__all__ = ["Poller"]


class Poller(_AsyncioPoller):
    """A poller for Tornado coroutines: a drop-in for ``zmq.eventloop.future.Poller``.

    ``poll()`` returns a Future of ``[(socket, event), ...]``, awaitable or yieldable.
    """
