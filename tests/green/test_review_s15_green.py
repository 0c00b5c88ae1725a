"""Review of the green layers (round 15): hostile scenarios, both flavours, patched or not."""

from __future__ import annotations

from typing import Any

import pytest
import zmq as plain_zmq


@pytest.fixture
def plain_pull() -> Any:
    """A plain (blocking) PULL bound on inproc and a PUSH connected to it: (push, pull)."""
    context = plain_zmq.Context()
    pull = context.socket(plain_zmq.PULL)
    pull.bind("inproc://review-s15-plain")
    push = context.socket(plain_zmq.PUSH)
    push.connect("inproc://review-s15-plain")
    yield push, pull
    context.destroy(linger=0)


@pytest.mark.timeout(30)
def test_a_green_poller_sees_a_plain_socket_whose_edge_another_touch_took(green, zmq, plain_pull):
    """A plain socket's FD is edge-triggered as ours are: a touch by someone else (here an
    EVENTS read right after the send) takes the edge, and the poller, watching only that FD,
    slept for ever (zmq.green's poller looks again every second)."""
    push, pull = plain_pull
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)

    def send_then_look() -> None:
        green.sleep(0.05)
        push.send(b"m")
        assert pull.get(plain_zmq.EVENTS) & plain_zmq.POLLIN  # the edge is gone now

    g = green.spawn(send_then_look)
    with green.Timeout(10, AssertionError("the poller never looked again")):
        assert poller.poll() == [(pull, zmq.POLLIN)]
    green.get(g)
    assert pull.recv(plain_zmq.NOBLOCK) == b"m"


@pytest.mark.timeout(30)
def test_a_plain_socket_closed_while_a_green_poller_waits_fails_the_poll(green, zmq, plain_pull):
    """Closing a plain socket under a waiting poller: an error, as for a closed green socket,
    not a wait for ever (eventlet's hub never wakes for a closed FD)."""
    _push, pull = plain_pull
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)

    def close_it() -> None:
        green.sleep(0.05)
        pull.close(linger=0)

    g = green.spawn(close_it)
    never = AssertionError("the poller never noticed the close")
    with green.Timeout(10, never), pytest.raises(zmq.ZMQError) as info:
        poller.poll()
    assert info.value.errno == zmq.ENOTSOCK
    green.get(g)
