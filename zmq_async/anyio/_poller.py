"""``Poller``: ``await poller.poll(timeout)`` gives ``[(socket, event), ...]``."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import zmq
from anyio.lowlevel import checkpoint_if_cancelled

from zmq_async import _ops, _poller
from zmq_async._poller import PollWait
from zmq_async._reactor import Reactor
from zmq_async.anyio import _socket
from zmq_async.anyio._driver import Key, TrioCompletion
from zmq_async.anyio._socket import Socket
from zmq_async.asyncio._driver import driver_for

__all__ = ["Poller"]


class Poller(zmq.Poller):
    """A poller whose ``poll`` is a coroutine, on anyio's asyncio or trio backend.

    Polls our sockets, plain ``zmq.Socket`` objects, raw file descriptors and objects with
    ``fileno()``, without blocking the loop. Cancel it with a cancel scope like any call.
    """

    #: Polls left before one yields to the loop (see :data:`~zmq_async.anyio._socket.YIELD_EVERY`).
    _countdown = _socket.YIELD_EVERY

    async def poll(self, timeout: int | None = -1) -> list[tuple[Any, int]]:  # type: ignore[override]
        """The ready ``(socket, event)`` pairs; ``[]`` after ``timeout`` ms.

        ``timeout`` None or negative waits for ever; 0 answers at once. Raises ZMQError if
        one of our sockets is closed (before or during the wait), TypeError for an item
        that cannot be polled.
        """
        seconds = _ops.poll_timeout(timeout)
        loop = _socket.running_asyncio_loop()
        sync_poll = partial(zmq.Poller.poll, self, 0)
        # One poll in YIELD_EVERY yields, as a socket's calls do: a loop of polls that are
        # ready at once must still let other tasks run and its own deadline pass.
        countdown = self._countdown - 1
        yields = not countdown
        self._countdown = _socket.YIELD_EVERY if yields else countdown
        if loop is not None:
            await (asyncio.sleep(0) if yields else checkpoint_if_cancelled())
            future: asyncio.Future[list[tuple[Any, int]]] = loop.create_future()
            reactor_of = partial(_reactor_of, loop)
            wait = PollWait(driver_for(loop), self.sockets, sync_poll, reactor_of, future)
            if not wait.begin(seconds):
                return future.result()
            try:
                return await future
            finally:
                wait.teardown()
        driver = _socket.current_trio_driver(self)
        lowlevel = _socket._trio.lowlevel
        await (lowlevel.checkpoint() if yields else lowlevel.checkpoint_if_cancelled())
        completion = TrioCompletion(driver)
        reactor_of = partial(_reactor_of, None)
        wait = PollWait(driver, self.sockets, sync_poll, reactor_of, completion)
        if not wait.begin(seconds):
            if completion.error is not None:
                raise completion.error
            return completion.result  # type: ignore[no-any-return]
        try:
            return await driver.block_any(completion, _keys(self.sockets))  # type: ignore[no-any-return]
        finally:
            wait.teardown()


def _reactor_of(loop: asyncio.AbstractEventLoop | None, item: Any) -> Reactor | None:
    """The reactor of our socket ``item``, bound to the poll's backend (``loop``, or trio if
    None); None for other items. (It may be called from the loop's callbacks: no task there.)
    """
    if not isinstance(item, Socket):
        return None
    if loop is not None:
        if loop is not item._loop:
            item._bind_asyncio(loop)
    else:
        item._trio()
    return item._reactor


def _keys(items: list[tuple[Any, int]]) -> list[Key]:
    """The FDs a trio task polling ``items`` may watch for everyone."""
    keys: list[Key] = []
    for item, mask in items:
        if isinstance(item, Socket):
            keys.append((item._reactor.fd, False))
        elif isinstance(item, zmq.Socket):
            keys.append((_poller.item_fd(item), False))  # both directions signal as readable
        else:
            fd = _poller.item_fd(item)
            if mask & zmq.POLLIN:
                keys.append((fd, False))
            if mask & zmq.POLLOUT:
                keys.append((fd, True))
    return keys
