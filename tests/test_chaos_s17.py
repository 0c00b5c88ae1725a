"""Reductions of what benchmarks/chaos.py found in the core (session 17)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import zmq

from zmq_async import _ops
from zmq_async._reactor import Reactor, Waiter


class _Closed:
    """A completion that records how it ended."""

    def __init__(self) -> None:
        self.outcome: Any = None

    def done(self) -> bool:
        return self.outcome is not None

    def set_result(self, result: Any, /) -> None:
        self.outcome = ("result", result)

    def set_exception(self, exception: BaseException, /) -> None:
        self.outcome = ("error", exception)

    def cancel(self) -> bool:
        self.outcome = ("cancelled", None)
        return True


class _ClosedByAnotherThread:
    """A driver whose ``watch`` lets another thread's ``close()`` land, as it may when the
    interpreter switches threads between the reactor's closed check and its queueing."""

    def __init__(self) -> None:
        self.reactor: Reactor | None = None

    def watch(self, fd: int, callback: Callable[[], object], writable: bool = False) -> None:
        assert self.reactor is not None
        self.reactor.close(zmq.ContextTerminated())

    def unwatch(self, fd: int, callback: Callable[[], object], writable: bool = False) -> None:
        pass

    def call_soon(self, callback: Callable[[], object]) -> None:
        pass

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Any:
        return self  # a timer that never fires: its cancel() does nothing

    def may_unwatch_here(self) -> bool:
        return True

    def cancel(self) -> None:
        pass


@pytest.mark.timeout(10)
@pytest.mark.parametrize("queue", ["recv", "send", "poll"])
def test_a_close_from_another_thread_while_a_waiter_queues_completes_it(queue):
    """A close (or term, destroy) from another OS thread that lands while a waiter is being
    queued: the close's release had already emptied the queues, so the waiter joined a
    closed reactor, was never completed, and its greenlet (or task) waited for ever. The
    chaos run met it once in about 900 terms from another thread (eventlet). Now queueing
    into a reactor closed meanwhile raises, as queueing into a closed one does."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PUSH if queue == "send" else zmq.PULL)
    sock.linger = 0
    driver = _ClosedByAnotherThread()
    reactor = Reactor(sock, driver)
    driver.reactor = reactor
    completion = _Closed()
    try:
        with pytest.raises(zmq.ZMQError):
            if queue == "recv":
                reactor.wait_recv(Waiter(completion, _ops.recv, (zmq.NOBLOCK, True, False)))
            elif queue == "send":
                reactor.wait_send(Waiter(completion, _ops.send, (b"x", zmq.NOBLOCK)))
            else:
                reactor.wait_poll(Waiter(completion, None, mask=zmq.POLLIN), None)
        assert reactor.closed
        assert not (reactor.recvq or reactor.sendq or reactor.pollq)
    finally:
        ctx.destroy(linger=0)
