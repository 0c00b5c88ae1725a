"""Review of the asyncio layer, zmq_async.tornado and ZMQStream (session 15): faults the
earlier tests did not cover. Each test fails without the fix it names; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from zmq_async.stream import ZMQStream

WAIT = 10.0
LOG = "zmq_async.stream"

pytestmark = pytest.mark.timeout(30)


async def until(condition: Callable[[], Any], timeout: float = WAIT) -> None:
    """Let the loop run until ``condition()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def plain_push_pull(ctx: Any) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    """A connected plain (blocking) PUSH -> PULL pair over tcp on loopback."""
    pull = ctx.socket(zmq.PULL, socket_class=zmq.Socket)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH, socket_class=zmq.Socket)
    push.connect(f"tcp://127.0.0.1:{port}")
    return push, pull


def run_on_new_loop(new_loop: Callable[[], Any], main: Any) -> Any:
    """Run the coroutine ``main`` on a new loop of the test's kind; close the loop after."""
    loop = new_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def use_on(loop: Any, sock: Any) -> None:
    """Use ``sock`` on ``loop`` (a poll), which makes it the socket's loop."""

    async def use() -> None:
        assert await sock.poll(0) == 0

    loop.run_until_complete(use())


class TestStreamSendFailures:
    @pytest.mark.asyncio
    async def test_a_queued_message_whose_send_raises_is_dropped_and_logged(
        self, ctx: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A queued message whose send raises something other than a ZMQError (a
        non-contiguous buffer: BufferError) is logged and dropped, as the peer's stream
        does, and the messages behind it go out. It used to stay at the head of the queue,
        the send waiter re-armed and failed again at every turn of the loop: the stream sent
        nothing more and kept the loop busy."""
        push, pull = plain_push_pull(ctx)
        stream = ZMQStream(push)
        sent: list[list[Any]] = []
        stream.on_send(lambda msg, status: sent.append(msg))  # every send is queued
        with caplog.at_level(logging.ERROR, logger=LOG):
            stream.send(b"1")
            stream.send(memoryview(b"abcdef")[::2])  # passes the buffer check, fails to send
            stream.send(b"3")
            await until(lambda: not stream.sending())
        assert sent == [[b"1"], [b"3"]]
        assert [pull.recv() for _ in range(2)] == [b"1", b"3"]
        errors = [r for r in caplog.records if r.name == LOG]
        assert len(errors) == 1 and "contiguous" in errors[0].getMessage(), errors
        stream.close(linger=0)
        pull.close(linger=0)


class _Scanned:
    """Counts the entries that ``remove()`` calls scan in a reactor's queues."""

    count = 0


class _CountingDeque(deque):  # type: ignore[type-arg]
    def remove(self, value: Any) -> None:
        _Scanned.count += len(self)
        super().remove(value)


class _CountingList(list):  # type: ignore[type-arg]
    def remove(self, value: Any) -> None:
        _Scanned.count += len(self)
        super().remove(value)


def counting_queues(sock: Any) -> None:
    """Replace the (still empty) queues of ``sock``'s reactor by counting ones."""
    reactor = sock._reactor
    assert not (reactor.recvq or reactor.sendq or reactor.pollq)
    reactor.recvq, reactor.sendq, reactor.pollq = (
        _CountingDeque(),
        _CountingDeque(),
        _CountingList(),
    )
    _Scanned.count = 0


class TestManyTimedWaiters:
    """Thousands of waiters with a deadline (RCVTIMEO, a poll timeout): each one served or
    cancelled used to be looked for in every queue (its deadline's cleanup), so serving or
    cancelling N of them scanned about N * N / 2 entries: 4 s of loop stall at 20,000
    receivers (0.14 s without RCVTIMEO)."""

    N = 2000

    @pytest.mark.asyncio
    async def test_serving_queued_receivers_with_rcvtimeo_is_linear(self, socket_pair: Any) -> None:
        pull, push = socket_pair(zmq.PULL, zmq.PUSH, transport="inproc")
        pull.rcvtimeo = 100_000
        counting_queues(pull)
        futures = [pull.recv() for _ in range(self.N)]
        for i in range(self.N):
            await push.send(b"%d" % i)
        results = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
        assert results == [b"%d" % i for i in range(self.N)]
        assert _Scanned.count < 10 * self.N, _Scanned.count

    @pytest.mark.asyncio
    async def test_cancelling_timed_polls_newest_first_is_linear(self, socket_pair: Any) -> None:
        pull, push = socket_pair(zmq.PULL, zmq.PUSH, transport="inproc")
        counting_queues(pull)
        futures = [pull.poll(100_000) for _ in range(self.N)]
        for future in reversed(futures):
            future.cancel()
        await asyncio.sleep(0)  # the done callbacks run
        await asyncio.sleep(0)
        assert _Scanned.count < 10 * self.N, _Scanned.count
        # Nothing armed is left behind, and the socket still works.
        assert all(w.timer is None for w in pull._reactor.pollq)
        await push.send(b"after")
        assert await asyncio.wait_for(pull.poll(1000), WAIT) == zmq.POLLIN
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"after"


class TestStreamClosedFromAnotherThread:
    @pytest.mark.parametrize("during", ["callback", "receive"])
    @pytest.mark.asyncio
    async def test_no_receive_callback_starts_after_close_returns(
        self, ctx: Any, during: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``close()`` from another thread while the loop drains a batch of messages: no
        ``on_recv`` callback starts once it has returned (the stream's contract). The drain
        used to go on delivering the rest of its batch (up to 64 messages) until the loop
        carried out the handed-over close."""
        import threading

        import zmq_async.stream._stream as stream_module

        push, pull = plain_push_pull(ctx)
        for i in range(10):
            push.send(b"%d" % i)
        stream = ZMQStream(pull)
        closed = threading.Event()
        late: list[bytes] = []
        calls = 0

        def close_from_another_thread() -> None:
            thread = threading.Thread(target=lambda: (stream.close(), closed.set()))
            thread.start()
            thread.join(WAIT)  # the loop's thread waits: close() returns meanwhile
            assert closed.is_set()

        real_recv = stream_module._recv

        def recv(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if during == "receive" and calls == 2:  # between two callbacks of one batch
                close_from_another_thread()
            return real_recv(*args)

        def on_recv(msg: list[bytes]) -> None:
            if closed.is_set():
                late.append(msg[0])
            elif during == "callback":
                close_from_another_thread()

        monkeypatch.setattr(stream_module, "_recv", recv)
        # Wait until the messages are there: one wakeup then drains them as one batch.
        await until(lambda: pull.poll(0) and True)
        stream.on_recv(on_recv)
        await until(lambda: stream.socket is None)  # the loop carried out the close
        assert calls >= (2 if during == "receive" else 1)  # the close came mid-batch
        assert late == []


class TestLoopClosedUnderWaiters:
    def test_reading_events_after_the_loop_closed_under_waiters(
        self, new_loop: Any, socket_pair: Any
    ) -> None:
        """A loop closed while a receive and a poll wait on a socket; reading EVENTS then
        (outside any loop) returns them, as the peer's does. It raised RuntimeError ("Event
        loop is closed"): the read schedules a re-check of the waiters on their loop. The
        socket still works on a new loop."""
        pull, push = socket_pair(zmq.PULL, zmq.PUSH, transport="inproc")

        async def wait() -> tuple[Any, Any]:
            pending = pull.recv(), pull.poll(10_000)
            await asyncio.sleep(0.01)
            return pending

        recv, poll = run_on_new_loop(new_loop, wait())
        assert not recv.done() and not poll.done()
        assert pull.get(zmq.EVENTS) == 0
        assert pull.getsockopt(zmq.EVENTS) == 0

        async def receive() -> bytes:
            await push.send(b"after")
            return await asyncio.wait_for(pull.recv(), WAIT)  # type: ignore[no-any-return]

        assert run_on_new_loop(new_loop, receive()) == b"after"


class TestHandedOffWhenTheOwnerStops:
    """An operation handed to the socket's loop (running in another thread) by a caller on
    another loop, and that loop stopping and closing before it served it: the caller's
    Future hung for ever. It now moves to the caller's loop, as the socket does."""

    @pytest.mark.parametrize("when", ["queued", "not-started"])
    def test_the_operation_moves_to_the_callers_loop(
        self, new_loop: Any, socket_pair: Any, when: str
    ) -> None:
        import threading

        pull, push = socket_pair(zmq.PULL, zmq.PUSH, transport="inproc")
        owner = new_loop()
        handed = threading.Event()

        use_on(owner, pull)  # the socket is the owner's now

        def block_then_stop() -> None:
            # The owner's thread, in a callback: the hand-off arrives meanwhile, and the
            # owner stops before its next turn (not-started), or after it (queued).
            assert handed.wait(WAIT)
            owner.stop()

        if when == "not-started":
            owner.call_soon(block_then_stop)
        else:
            handed.set()  # (already: a plain run, stopped from the caller below)

        def run_owner() -> None:
            owner.run_forever()
            owner.close()

        thread = threading.Thread(target=run_owner)
        thread.start()

        async def caller() -> bytes:
            while not owner.is_running():
                await asyncio.sleep(0.001)
            future = pull.recv()  # handed to the owner
            handed.set()
            if when == "queued":
                await asyncio.sleep(0.05)  # served into the owner's queue: no message yet
                owner.call_soon_threadsafe(owner.stop)
            await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT)
            assert owner.is_closed()
            await push.send(b"moved")
            return await asyncio.wait_for(future, WAIT)  # type: ignore[no-any-return]

        try:
            assert run_on_new_loop(new_loop, caller()) == b"moved"
        finally:
            thread.join(WAIT)


class TestCloseHandedToALoopThatStops:
    @pytest.mark.parametrize("framework", ["asyncio", "tornado"])
    def test_term_completes_a_close_the_stopped_loop_never_carried_out(
        self, new_loop: Any, framework: str
    ) -> None:
        """``close()`` from another thread is handed to the socket's loop; that loop stopping
        before its next turn dropped it (asyncio runs no callback after the stopping turn):
        the socket stayed open and ``ctx.term()`` hung for ever. ``term()`` now carries out
        such a close itself once the loop has stopped."""
        import threading

        import zmq_async.asyncio
        import zmq_async.tornado

        module = zmq_async.asyncio if framework == "asyncio" else zmq_async.tornado
        ctx = module.Context()
        pull = ctx.socket(zmq.PULL)
        pull.bind("inproc://s15-handed-close")
        owner = new_loop()

        use_on(owner, pull)  # the socket is the owner's now
        closing = threading.Event()

        def block_then_stop() -> None:
            assert closing.wait(WAIT)  # the close is handed over meanwhile
            owner.stop()

        owner.call_soon(block_then_stop)

        def run_owner() -> None:
            owner.run_forever()
            owner.close()

        thread = threading.Thread(target=run_owner)
        thread.start()
        try:
            deadline = time.monotonic() + WAIT
            while not owner.is_running():
                assert time.monotonic() < deadline
                time.sleep(0.001)
            pull.close(linger=0)  # handed to the owner, which is running
            closing.set()
            thread.join(WAIT)
            assert not thread.is_alive()
            terminator = threading.Thread(target=ctx.term, daemon=True)
            terminator.start()
            terminator.join(WAIT)
            assert not terminator.is_alive(), "ctx.term() hung on the socket never closed"
            assert pull.closed
        finally:
            closing.set()
            thread.join(WAIT)

    @pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
    @pytest.mark.parametrize("framework", ["asyncio", "tornado"])
    def test_term_in_a_forked_child_touches_no_inherited_socket(self, framework: str) -> None:
        """``destroy()`` (so ``term()``) of an inherited context in a forked child still
        works: looking for handed closes must not use the parent's sockets (any use of one
        raises RuntimeError there)."""
        import subprocess
        import sys

        program = f"""
import asyncio, os, zmq, zmq_async.{framework} as module
ctx = module.Context()
sock = ctx.socket(zmq.PULL)
sock.bind("inproc://s15-fork")
async def bind():
    await sock.poll(0)
asyncio.run(bind())
pid = os.fork()
if pid == 0:
    try:
        ctx.destroy(linger=0)
        print("child ok", flush=True)
    finally:
        os._exit(0)
os.waitpid(pid, 0)
ctx.destroy(linger=0)
print("parent ok", flush=True)
"""
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=WAIT * 3
        )
        assert done.stdout.split() == ["child", "ok", "parent", "ok"], done.stdout + done.stderr


class TestReceivingOnASendOnlySocket:
    @pytest.mark.parametrize("socket_type", ["PUB", "PUSH"])
    @pytest.mark.asyncio
    async def test_on_recv_waits_quietly_instead_of_retrying(
        self,
        ctx: Any,
        socket_type: str,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """``on_recv`` on a stream over a socket that cannot receive (PUB, PUSH): the peer
        receives only once EVENTS shows POLLIN, which such a socket never does, so it does
        nothing. Ours retried the receive (ENOTSUP) at every turn of the loop: a CPU spent
        and some 30,000 "receive error" log records a second."""
        import zmq_async.stream._stream as stream_module

        attempts = 0
        real_recv = stream_module._recv

        def recv(*args: Any) -> Any:
            nonlocal attempts
            attempts += 1
            return real_recv(*args)

        monkeypatch.setattr(stream_module, "_recv", recv)
        sock = ctx.socket(getattr(zmq, socket_type), socket_class=zmq.Socket)
        sock.bind("tcp://127.0.0.1:0")
        stream = ZMQStream(sock)
        with caplog.at_level(logging.ERROR, logger=LOG):
            stream.on_recv(lambda msg: None)
            await asyncio.sleep(0.3)  # (measures: what the stream does meanwhile)
        assert attempts <= 2, attempts
        assert [r.getMessage() for r in caplog.records if r.name == LOG] == []
        assert stream.receiving()
        stream.close(linger=0)


class TestTermOnTheSocketsLoop:
    def test_term_on_the_loops_own_thread_completes_a_close_handed_to_it(
        self, new_loop: Any
    ) -> None:
        """A close handed to the socket's loop by another thread, then ``ctx.term()`` called
        on that loop's own thread (in a callback) before the loop's next turn: the loop could
        never carry the close out while term() waited for it. term() now does it there."""
        import threading

        import zmq_async.asyncio

        ctx = zmq_async.asyncio.Context()
        pull = ctx.socket(zmq.PULL)
        pull.bind("inproc://s15-term-on-loop")
        owner = new_loop()

        use_on(owner, pull)  # the socket is the owner's now
        closing = threading.Event()
        termed = threading.Event()

        def close_then_term() -> None:
            thread = threading.Thread(target=pull.close, kwargs={"linger": 0})
            thread.start()
            thread.join(WAIT)  # handed to this loop, which runs this callback
            closing.set()
            ctx.term()
            termed.set()
            owner.stop()

        owner.call_soon(close_then_term)
        runner = threading.Thread(target=owner.run_forever, daemon=True)
        runner.start()
        try:
            assert closing.wait(WAIT)
            assert termed.wait(WAIT), "ctx.term() on the loop's thread waited for ever"
            assert pull.closed
        finally:
            runner.join(WAIT)
            if not runner.is_alive():
                owner.close()


class TestHandOffCancelledWhileStarting:
    def test_a_cancel_while_the_owner_starts_the_operation_consumes_nothing(
        self, new_loop: Any
    ) -> None:
        """The caller cancels a handed-off receive while the owner's loop is starting it:
        the operation must not stay queued and take the next message for no one."""
        import threading

        import zmq_async.asyncio

        owner_thread: list[threading.Thread] = []
        gate = threading.Event()
        starting = threading.Event()

        class SlowToStart(zmq_async.asyncio.Socket):
            def _submit(self, *args: Any, **kwargs: Any) -> Any:
                # (What a receive handed to the owner runs there.)
                if owner_thread and threading.current_thread() is owner_thread[0]:
                    starting.set()
                    assert gate.wait(WAIT)
                return super()._submit(*args, **kwargs)

        ctx = zmq_async.asyncio.Context()
        try:
            pull = ctx.socket(zmq.PULL, socket_class=SlowToStart)
            pull.bind("inproc://s15-cancel-starting")
            push = ctx.socket(zmq.PUSH)
            push.connect("inproc://s15-cancel-starting")
            owner = new_loop()

            use_on(owner, pull)  # the socket is the owner's now
            thread = threading.Thread(target=owner.run_forever)
            owner_thread.append(thread)
            thread.start()

            async def caller() -> bytes:
                loop = asyncio.get_running_loop()
                future = pull.recv()  # handed to the owner, which starts it slowly
                assert await loop.run_in_executor(None, starting.wait, WAIT)
                future.cancel()
                for _ in range(3):
                    await asyncio.sleep(0)  # the cancel's callbacks run here
                gate.set()
                await asyncio.sleep(0.05)  # the owner queues the receive meanwhile
                await push.send(b"for the next one")
                return await asyncio.wait_for(pull.recv(), WAIT)  # type: ignore[no-any-return]

            try:
                assert run_on_new_loop(new_loop, caller()) == b"for the next one"
            finally:
                gate.set()
                owner.call_soon_threadsafe(owner.stop)
                thread.join(WAIT)
                owner.close()
        finally:
            ctx.destroy(linger=0)


class TestCallbackRaisingBaseException:
    @pytest.mark.asyncio
    async def test_the_stream_goes_on_after_a_callback_raises_cancelled_error(
        self, ctx: Any
    ) -> None:
        """A callback raising what ``except Exception`` does not catch (``CancelledError``,
        say from the ``result()`` of a cancelled task): it propagates, as from the peer's
        stream, and the loop logs it and goes on. The stream's standing send (or receive)
        was lost with it: later sends waited for ever (the peer's stream goes on sending)."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the propagated error
        push, pull = plain_push_pull(ctx)
        sender, receiver = ZMQStream(push), ZMQStream(pull)
        sent: list[bytes] = []
        got: list[bytes] = []

        def on_send(msg: list[bytes], status: Any) -> None:
            sent.append(msg[0])
            if msg[0] == b"s1":
                raise asyncio.CancelledError

        def on_recv(msg: list[bytes]) -> None:
            got.append(msg[0])
            if msg[0] == b"s1":
                raise asyncio.CancelledError

        sender.on_send(on_send)
        receiver.on_recv(on_recv)
        for i in range(4):
            sender.send(b"s%d" % i)
            await until(lambda n=i + 1: len(sent) == n and len(got) == n)
        assert sent == got == [b"s0", b"s1", b"s2", b"s3"]
        sender.close(linger=0)
        receiver.close(linger=0)
