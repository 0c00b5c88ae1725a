"""``Poller``: ``poll()`` returns an asyncio Future of ``[(socket, event), ...]``."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import zmq

from zmq_async import _ops
from zmq_async._poller import PollWait
from zmq_async._reactor import Reactor
from zmq_async.asyncio._driver import current_loop, driver_for
from zmq_async.asyncio._socket import Socket

__all__ = ["Poller"]


class Poller(zmq.Poller):
    """A poller for asyncio: a drop-in for ``zmq.asyncio.Poller``.

    Polls our sockets, plain ``zmq.Socket`` objects, raw file descriptors and objects with
    ``fileno()``, without blocking the loop.
    """

    def poll(self, timeout: int | None = -1) -> asyncio.Future[list[tuple[Any, int]]]:  # type: ignore[override]
        """A Future of the ready ``(socket, event)`` pairs; ``[]`` after ``timeout`` ms.

        ``timeout`` None or negative waits for ever; 0 answers at once. Over a socket whose
        loop runs in another thread, the poll is handed to that loop, as its operations are.
        """
        loop = current_loop()
        foreign = _foreign_socket(self.sockets, loop)
        if foreign is not None:
            return foreign._hand_off(loop, self.poll, timeout)
        future: asyncio.Future[list[tuple[Any, int]]] = loop.create_future()
        wait = PollWait(
            driver_for(loop),
            self.sockets,
            partial(zmq.Poller.poll, self, 0),
            partial(_reactor_on, loop),
            future,
        )
        if wait.begin(_ops.poll_timeout(timeout)):
            future.add_done_callback(lambda _: wait.teardown())
        return future


def _foreign_socket(items: list[tuple[Any, int]], loop: Any) -> Socket | None:
    """One of our sockets in ``items`` whose loop (not ``loop``) runs in another thread."""
    for item, _ in items:
        if isinstance(item, Socket) and item._loop is not loop and item._foreign():
            return item
    return None


def _reactor_on(loop: asyncio.AbstractEventLoop, item: Any) -> Reactor | None:
    """The reactor of our socket ``item``, attached to ``loop``; None for anything else."""
    if not isinstance(item, Socket):
        return None
    if item._loop is not loop:
        item._bind(loop)
    return item._reactor
