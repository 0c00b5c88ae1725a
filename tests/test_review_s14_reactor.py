"""Review of the round-14 speed work in the reactor: EVENTS read through ``zmq_poll``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

import zmq_async._reactor
import zmq_async.asyncio
from zmq_async.stream import ZMQStream

pytestmark = pytest.mark.timeout(30)


@contextlib.contextmanager
def stdin_as(state: str) -> Iterator[None]:
    """File descriptor 0, which pyzmq's zmq_poll polls in place of a closed socket, made
    ``readable`` (a pipe with data), ``quiet`` (an empty pipe) or ``closed``."""
    saved = os.dup(0)
    r, w = os.pipe()
    try:
        if state == "closed":
            os.close(0)
        else:
            os.dup2(r, 0)
            if state == "readable":
                os.write(w, b"x")
        yield
    finally:
        os.dup2(saved, 0)
        for fd in (saved, r, w):
            os.close(fd)


@pytest.mark.asyncio
@pytest.mark.parametrize("stdin", ["readable", "quiet", "closed"])
async def test_a_plain_socket_closed_under_its_stream_closes_it_through_the_recheck(
    stdin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user closes the plain socket under a receiving stream and waits for the close
    callback without calling anything on the stream: only the re-check can see it."""
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip("libuv aborts the process when a watched FD is closed under it")
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_FIRST", 0.01)
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_MAX", 0.05)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        # Another waiting socket in the same re-check generation: the re-check polls both
        # at once, where pyzmq's fd-0 stand-in for the closed one raises nothing.
        other = ZMQStream(ctx.socket(zmq.PULL))
        other.on_recv(lambda msg: None)
        sock = ctx.socket(zmq.PULL)
        sock.linger = 0
        stream = ZMQStream(sock)
        closes: list[int] = []
        stream.set_close_callback(lambda: closes.append(1))
        stream.on_recv(lambda msg: None)
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        with warnings.catch_warnings(), stdin_as(stdin):
            warnings.simplefilter("ignore")  # the late unregister warns, as the peer's
            sock.close()
            deadline = loop.time() + 10
            while not closes and loop.time() < deadline:
                await asyncio.sleep(0.005)
        assert closes == [1], "the stream never noticed its socket closed"
        assert stream.socket is None
        other.close(linger=0)
    finally:
        ctx.destroy(linger=0)


@pytest.mark.asyncio
@pytest.mark.parametrize("stdin", ["readable", "quiet"])
async def test_a_callback_closing_its_plain_socket_closes_the_stream(stdin: str) -> None:
    """A stream whose last wakeup brought one message looks (zmq_poll) before a second
    receive: after the callback closed the plain socket, that look polls fd 0 instead."""
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip("libuv aborts the process when a watched FD is closed under it")
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        pull = ZMQStream(ctx.socket(zmq.PULL))
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        got: list[Any] = []
        closes: list[int] = []
        pull.set_close_callback(lambda: closes.append(1))
        loop = asyncio.get_running_loop()

        def callback(msg: list[bytes]) -> None:
            got.append(msg)
            if msg == [b"close"]:
                pull.socket.close()  # the socket, not the stream

        pull.on_recv(callback)
        push.send(b"one")  # one message per wakeup: the receiver looks before a second
        deadline = loop.time() + 10
        while not got and loop.time() < deadline:
            await asyncio.sleep(0.005)
        assert pull._receiver.lone
        with warnings.catch_warnings(), stdin_as(stdin):
            warnings.simplefilter("ignore")  # the late unregister warns, as the peer's
            push.send(b"close")
            deadline = loop.time() + 10
            while not closes and loop.time() < deadline:
                await asyncio.sleep(0.005)
        assert got == [[b"one"], [b"close"]]
        assert closes == [1], "the stream never noticed its socket closed"
        push.close()
    finally:
        ctx.destroy(linger=0)


@pytest.mark.asyncio
async def test_asyncio_a_message_between_a_failed_look_and_the_queue_wakes_the_receiver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rule 1 with ``recv_ready``: its False counts as a failed receive, so nothing may touch
    the socket before the waiter is queued. A message sent right after each failed look must
    still wake the receiver, with the re-check out of the way."""
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_FIRST", 60.0)
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_MAX", 60.0)
    ctx = zmq_async.asyncio.Context()
    try:
        pull = ctx.socket(zmq.PULL)
        pull.bind("inproc://review-s14-asyncio-look")
        push = zmq.Socket(ctx, zmq.PUSH)  # plain: sends without the loop
        push.connect("inproc://review-s14-asyncio-look")
        sent: list[bytes] = []
        looks: list[bool] = []
        recv_ready = zmq_async._reactor.Reactor.recv_ready

        def look_then_send(reactor: zmq_async._reactor.Reactor) -> bool:
            ready = recv_ready(reactor)
            looks.append(ready)
            if not ready and reactor is pull._reactor and len(sent) < 6:
                # inproc: message and command are in the pipe when send returns; the FD
                # signals now, and a touch before the queue would take that edge.
                sent.append(b"%d" % len(sent))
                push.send(sent[-1], zmq.NOBLOCK)
            return ready

        monkeypatch.setattr(zmq_async._reactor.Reactor, "recv_ready", look_then_send)
        first = pull.recv()  # fails and queues: later receives look first
        await asyncio.sleep(0.02)
        push.send(b"start")
        got = [await asyncio.wait_for(first, 5)]
        for _ in range(5):
            got.append(await asyncio.wait_for(pull.recv(), 5))
        assert got == [b"start", *sent[:5]]
        assert looks.count(False) >= 3
        push.close(linger=0)
    finally:
        ctx.destroy(linger=0)
