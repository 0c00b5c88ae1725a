"""Fault scenarios from real bug reports against gevent and eventlet with zmq (zmq.green,
gevent-zeromq, eventlet.green.zmq, zerorpc, locust), reduced to what the reported program did,
run against zmq_async in both flavours, plain and monkeypatched. Each test names its report;
the whole list, with what each report became, is in the project's bgreen-reports.md."""

from __future__ import annotations

import socket as stdlib_socket
import time
from typing import Any

import pytest


def _dead_endpoint() -> str:
    """A tcp endpoint no one listens on (a port the OS just gave and took back)."""
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def _ticker(green: Any, ticks: list[float]) -> Any:
    """A greenlet that notes the time every 10 ms: a heartbeat that shows a frozen hub."""

    def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            green.sleep(0.01)

    return green.spawn(tick)


def _ticks_between(ticks: list[float], start: float, end: float) -> int:
    return sum(1 for t in ticks if start <= t <= end)


# -- term and destroy ----------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["destroy", "close-then-term"])
def test_a_lingering_term_blocks_only_its_greenlet(green, zmq, how):
    """pyzmq#809 (zmq.green.Context.destroy freezes all greenthreads): a REQ with an unsent
    request to a peer that never comes, closed with a LINGER, then its context destroyed.
    libzmq's term waits out the linger; the other greenlets must run meanwhile."""
    ticks: list[float] = []
    ticker = _ticker(green, ticks)
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.linger = 600
    req.connect(_dead_endpoint())
    req.send_json({}, zmq.NOBLOCK)  # queued for the peer: the linger keeps it
    start = time.monotonic()
    if how == "destroy":
        green.get(green.spawn(context.destroy), timeout=10)
    else:
        req.close()
        green.get(green.spawn(context.term), timeout=10)
    end = time.monotonic()
    green.kill(ticker)
    assert context.closed
    assert end - start >= 0.4  # the linger was waited out...
    # ...while the heartbeat went on (about 60 ticks; none if the hub was blocked)
    assert _ticks_between(ticks, start + 0.1, end - 0.1) >= 5, (end - start, len(ticks))


def test_a_term_after_closes_without_linger_stays_in_the_greenlet(green, zmq):
    """The other side of pyzmq#809: sockets closed with linger 0 leave libzmq nothing to
    wait for, and ``destroy(linger=0)`` terminates at once, in the calling greenlet."""
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.connect(_dead_endpoint())
    req.send(b"x", zmq.NOBLOCK)
    start = time.monotonic()
    context.destroy(linger=0)
    assert context.closed
    assert time.monotonic() - start < 1.0


@pytest.mark.timeout(20)
def test_a_socket_closed_after_libzmq_reported_eterm_still_closes(green, zmq):
    """The common shutdown of pyzmq#809's programs: term() from one greenlet, the socket's
    own greenlet sees ETERM from libzmq, then closes it with its default LINGER. (Reading
    the LINGER there raises ETERM too: the close must not.)"""
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    terminator = green.spawn(context.term)
    deadline = time.monotonic() + 10
    while True:
        try:
            pull.recv(zmq.NOBLOCK)
        except zmq.Again:
            assert time.monotonic() < deadline, "libzmq never reported ETERM"
            green.sleep(0.01)
        except zmq.ContextTerminated:
            break
    pull.close()
    green.get(terminator, timeout=10)
    assert pull.closed and context.closed
