"""Round 18's review of round 17's green changes: each test replays a fault it found; both
flavours, plain and monkeypatched (each run tests its own mode)."""

from __future__ import annotations

from typing import Any

import pytest
import zmq as plain_zmq

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("closed", ["socket", "shadow", "plain"])
def test_sibling_waiter_fails_when_the_socket_closes_and_never_reads_the_next_one(
    green: Any, ctx: Any, closed: str
) -> None:
    """A greenlet waits in ``recv()`` on a green socket or its green shadow; the other one
    is closed, in the hub's thread; the next socket made (libzmq reuses the address) gets a
    message. The waiter fails with ENOTSOCK at the close (as on its own socket's close) and
    the new socket gets its message: the waiter went on reading the freed address, and
    took it (as zmq.green's does). "plain": the shadowed socket is pyzmq's own, closed
    behind our back; the new socket's making ends the wait."""
    plain_ctx = plain_zmq.Context()
    sock = (plain_ctx if closed == "plain" else ctx).socket(plain_zmq.PULL)
    sock.bind("inproc://review-s18-old")
    twin = green.zmq.Socket.shadow(sock.underlying)
    waiting, closing = (sock, twin) if closed == "shadow" else (twin, sock)
    waiter = green.spawn(waiting.recv)
    green.sleep(0.01)  # parked in recv (its first re-check is 50 ms away)
    assert not green.dead(waiter)
    address = sock.underlying
    closing.close(linger=0)
    new = ctx.socket(plain_zmq.PULL)
    new.bind("inproc://review-s18-new")
    green.sleep(0)
    green.sleep(0)
    if closed != "plain" or new.underlying == address:
        # Ended by the close (or by the new socket's making), not by a later re-check.
        assert green.dead(waiter)
    push = ctx.socket(plain_zmq.PUSH)
    push.connect("inproc://review-s18-new")
    push.send(b"for the new socket")
    with pytest.raises(plain_zmq.ZMQError) as caught:
        green.get(waiter, 3.0)
    assert caught.value.errno == plain_zmq.ENOTSOCK
    new.setsockopt(plain_zmq.RCVTIMEO, 3000)
    assert new.recv() == b"for the new socket"
    for s in (new, push):
        s.close(linger=0)
    plain_ctx.term()
