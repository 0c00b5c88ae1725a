"""Review of the core, asyncio, Tornado and stream layers (session 16): findings the last
round's reviewers left open. Each test fails without the fix it names; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import zmq

import zmq_async.asyncio

WAIT = 10.0

pytestmark = pytest.mark.timeout(60)


def use_on(loop: asyncio.AbstractEventLoop, sock: Any) -> None:
    """Use ``sock`` on ``loop`` (a poll), which makes it the socket's loop."""

    async def use() -> None:
        assert await sock.poll(0) in (0, zmq.POLLIN)

    loop.run_until_complete(use())


class OwnerThread:
    """A loop running in a thread of its own, owning the sockets used on it first."""

    def __init__(self, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self.loop = new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
        self.loop.close()


class TestCrossThreadCancelStorm:
    """A receive handed to the socket's loop, in another thread, and cancelled by its caller
    just as that loop took the message: the message was lost (pyzmq#1925 has the same
    window). It now goes back to the socket, first in line for the next receive."""

    N = 400

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize("kind", ["recv", "recv_multipart", "recv_string"])
    def test_every_message_is_received_once_in_order(
        self, new_loop: Callable[[], asyncio.AbstractEventLoop], kind: str
    ) -> None:
        ctx = zmq_async.asyncio.Context()
        owner = OwnerThread(new_loop)
        try:
            pull = ctx.socket(zmq.PULL)
            pull.bind("inproc://s16-cancel-storm")
            push = ctx.socket(zmq.PUSH, socket_class=zmq.Socket)
            push.connect("inproc://s16-cancel-storm")
            use_on(owner.loop, pull)
            owner.start()

            def send_all() -> None:
                for i in range(self.N):
                    push.send_multipart(
                        [b"%d" % i, b"tail"] if kind == "recv_multipart" else [b"%d" % i]
                    )

            def number(msg: Any) -> int:
                if kind == "recv_multipart":
                    assert msg[1] == b"tail"
                    return int(msg[0])
                return int(msg)

            rng = random.Random(16)

            async def caller() -> tuple[list[int], int]:
                got: list[int] = []
                cancelled = 0
                sender = threading.Thread(target=send_all)
                sender.start()
                try:
                    while len(got) < self.N:
                        future = getattr(pull, kind)()
                        for _ in range(rng.randrange(4)):
                            await asyncio.sleep(0)
                        if rng.random() < 0.7 and not future.done():
                            future.cancel()
                        try:
                            msg = await asyncio.wait_for(future, WAIT)
                        except asyncio.CancelledError:
                            cancelled += 1
                            continue
                        got.append(number(msg))
                finally:
                    await asyncio.get_running_loop().run_in_executor(None, sender.join, WAIT)
                with pytest.raises(asyncio.TimeoutError):
                    extra = await asyncio.wait_for(getattr(pull, kind)(), 0.2)
                    got.append(number(extra))  # (a message received twice)
                return got, cancelled

            loop = new_loop()
            try:
                got, cancelled = loop.run_until_complete(caller())
            finally:
                loop.close()
            assert cancelled > 0
            assert got == list(range(self.N))
        finally:
            owner.stop()
            ctx.destroy(linger=0)


class TestFramesGivenBack:
    """The reactor's side of the fix above: frames given back (``Reactor.give_back``) are
    what the next receives get, of every kind, before what the socket holds."""

    @pytest.mark.asyncio
    async def test_each_kind_of_receive_takes_them_first(self, pair: Any) -> None:
        push, pull = pair
        await push.send_multipart([b"2", b"tail"])
        await push.send(b"3")
        assert await asyncio.wait_for(pull.poll(), WAIT) == zmq.POLLIN
        reactor = pull._reactor
        reactor.give_back([(b"0", False), (b"1", False)])
        assert await pull.recv(zmq.NOBLOCK) == b"0"  # DONTWAIT too: it came first
        frame = await pull.recv(copy=False)
        assert isinstance(frame, zmq.Frame) and frame.bytes == b"1"
        assert reactor.given is None
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"2", b"tail"]
        reactor.give_back([(b"x", True)])  # its message goes on in the socket ("3" here)
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"x", b"3"]
        buf = bytearray(2)
        reactor.give_back([(zmq.Frame(b"abc"), False)])
        assert await pull.recv_into(buf) == 3 and buf == b"ab"
        reactor.give_back([(b'{"a": 1}', False)])
        assert await pull.recv_json() == {"a": 1}
        assert pull._recv_futures == []

    @pytest.mark.asyncio
    async def test_a_waiting_receive_and_a_waiting_poll_get_them(self, pair: Any) -> None:
        _, pull = pair
        poll = pull.poll(WAIT * 1000)
        first, second = pull.recv(), pull.recv_string()
        await asyncio.sleep(0.01)
        assert not (poll.done() or first.done() or second.done())
        pull._reactor.give_back([(b"a", False), (b"b", False), (b"c", False)])
        assert await asyncio.wait_for(poll, WAIT) == zmq.POLLIN
        assert (await first, await second) == (b"a", "b")
        assert await pull.poll(0) == zmq.POLLIN  # "c" still waits
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"c"
        assert await pull.poll(0) == 0

    @pytest.mark.asyncio
    async def test_close_drops_them(self, pair: Any) -> None:
        _, pull = pair
        reactor = pull._reactor
        await pull.poll(0)
        reactor.give_back([(b"a", False)])
        pull.close(linger=0)
        assert reactor.given is None and not reactor.recvq
