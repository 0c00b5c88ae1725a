"""Review of the round-14 speed work in the green layer (shared by both flavours)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import zmq as plain_zmq

from zmq_async import _reactor


@pytest.mark.timeout(30)
def test_a_message_that_comes_between_a_failed_look_and_the_park_wakes_the_receiver(
    green, zmq, ctx, monkeypatch
):
    """Rule 1 with ``recv_ready``: its False counts as a failed receive (a dispatch may end on
    it), so nothing may touch the socket between that look and queuing. A message sent right
    after each failed look must still wake the receiver, with the re-check out of the way."""
    monkeypatch.setattr(_reactor, "RECHECK_FIRST", 60.0)
    monkeypatch.setattr(_reactor, "RECHECK_MAX", 60.0)
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://review-s14-look")
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://review-s14-look")
    sent: list[bytes] = []
    looks: list[bool] = []
    recv_ready = _reactor.Reactor.recv_ready

    def look_then_send(reactor: _reactor.Reactor) -> bool:
        ready = recv_ready(reactor)
        looks.append(ready)
        if not ready and reactor.socket.underlying == pull.underlying and len(sent) < 6:
            # inproc: the message and its command are in the pipe when send returns, so the
            # FD signals now; a touch before the park would take that edge.
            sent.append(b"%d" % len(sent))
            push.send(sent[-1], plain_zmq.NOBLOCK)
        return ready

    monkeypatch.setattr(_reactor.Reactor, "recv_ready", look_then_send)
    got: list[bytes] = []

    def receive() -> None:
        for _ in range(6):
            got.append(pull.recv())  # woken in the dispatch, it looks again at once

    g = green.spawn(receive)
    green.sleep(0.05)
    push.send(b"start", plain_zmq.NOBLOCK)  # the first receive failed and parked
    sent.insert(0, b"start")
    green.get(g, timeout=10)
    assert got == sent[:6]
    assert looks.count(False) >= 3  # the looks were taken, each followed by a message


def test_attributes_on_a_green_socket_and_its_subclasses_are_as_the_peers(green, zmq, ctx):
    """``__slots__`` on the green socket must not change what pyzmq allows: an attribute a
    (sub)class declares can be set (jupyter_client's sockets do so), any other name is taken
    for a socket option."""

    class Mine(zmq.Socket):
        label: str = ""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.label = "mine"

    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    mine = ctx.socket(zmq.PUSH, socket_class=Mine)
    try:
        assert isinstance(mine, Mine) and mine.label == "mine" and mine.__dict__["label"] == "mine"
        mine.label = "changed"
        assert mine.label == "changed"
        mine.connect(f"tcp://127.0.0.1:{port}")
        mine.send(b"x")
        assert pull.recv() == b"x"
        peer = green.peer.Context.shadow(ctx.underlying).socket(zmq.PULL)
        try:
            for sock in (pull, peer):
                with pytest.raises(AttributeError, match="no such option: NOT_AN_OPTION"):
                    sock.not_an_option = 1
        finally:
            peer.close(linger=0)
    finally:
        mine.close(linger=0)


def test_copy_and_pickle_of_a_green_socket_are_as_pyzmqs(green, zmq, pair):
    """A copy is a shadow of the same class (pyzmq's ``__copy__``) that waits greenly;
    pickling fails with pyzmq's TypeError."""
    push, pull = pair
    for action in (copy.copy, copy.deepcopy):
        twin = action(pull)
        assert type(twin) is type(pull) and twin.underlying == pull.underlying
        g = green.spawn(twin.recv)
        green.sleep(0.02)
        push.send(b"to the twin")
        assert green.get(g, timeout=5) == b"to the twin"
    with pytest.raises(TypeError, match="pickl"):
        pickle.dumps(pull)
