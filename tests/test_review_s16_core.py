"""Review of the core, asyncio, Tornado and stream layers (session 16): findings the last
round's reviewers left open. Each test fails without the fix it names; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq

import zmq_async.asyncio
from zmq_async import _thread
from zmq_async.asyncio._socket import closes_at_term

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
        if not self.loop.is_closed():
            self.loop.close()

    def stop_at_next_turn_after(self, event: threading.Event) -> None:
        """Start the loop; its first turn waits for ``event``, then stops it (for good)."""

        def wait_then_stop() -> None:
            assert event.wait(WAIT)
            self.loop.stop()

        self.loop.call_soon(wait_then_stop)
        self.start()
        deadline = time.monotonic() + WAIT
        while not self.loop.is_running():
            assert time.monotonic() < deadline
            time.sleep(0.001)


@contextlib.contextmanager
def pull_of_another_thread(
    new_loop: Callable[[], asyncio.AbstractEventLoop], address: str
) -> Iterator[tuple[Any, zmq.Socket[Any]]]:
    """A PULL socket of ours whose loop runs in a thread of its own, and a plain PUSH to it."""
    ctx = zmq_async.asyncio.Context()
    owner = OwnerThread(new_loop)
    try:
        pull = ctx.socket(zmq.PULL)
        pull.bind(address)
        push = ctx.socket(zmq.PUSH, socket_class=zmq.Socket)
        push.connect(address)
        use_on(owner.loop, pull)
        owner.start()
        yield pull, push
    finally:
        owner.stop()
        ctx.destroy(linger=0)


def run_on_new_loop(new_loop: Callable[[], asyncio.AbstractEventLoop], main: Any) -> Any:
    """Run the coroutine ``main`` on a new loop of the test's kind (here: the caller's)."""
    loop = new_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


class TestCrossThreadCancelStorm:
    """A receive handed to the socket's loop, in another thread, and cancelled by its caller
    just as that loop took the message: the message was lost (pyzmq#1925 has the same
    window). It now goes back to the socket, first in line for the next receive."""

    N = 400

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize("kind", ["recv", "recv_multipart", "recv_string", "recv_into"])
    def test_every_message_is_received_once_in_order(
        self, new_loop: Callable[[], asyncio.AbstractEventLoop], kind: str
    ) -> None:
        with pull_of_another_thread(new_loop, "inproc://s16-cancel-storm") as (pull, push):

            def send_all() -> None:
                for i in range(self.N):
                    push.send_multipart(
                        [b"%d" % i, b"tail"] if kind == "recv_multipart" else [b"%d" % i]
                    )

            buffers: dict[int, bytearray] = {}

            def receive() -> Any:
                if kind != "recv_into":
                    return getattr(pull, kind)()
                buf = bytearray(8)
                future = pull.recv_into(buf)
                buffers[id(future)] = buf
                return future

            def number(future: Any) -> int:
                msg = future.result()
                if kind == "recv_multipart":
                    assert msg[1] == b"tail"
                    return int(msg[0])
                if kind == "recv_into":
                    return int(buffers.pop(id(future))[:msg])
                return int(msg)

            rng = random.Random(16)

            async def caller() -> tuple[list[int], int]:
                got: list[int] = []
                cancelled = 0
                sender = threading.Thread(target=send_all)
                sender.start()
                try:
                    while len(got) < self.N:
                        future = receive()
                        for _ in range(rng.randrange(4)):
                            await asyncio.sleep(0)
                        if rng.random() < 0.7 and not future.done():
                            future.cancel()
                        try:
                            await asyncio.wait_for(future, WAIT)
                        except asyncio.CancelledError:
                            cancelled += 1
                            continue
                        got.append(number(future))
                finally:
                    await asyncio.get_running_loop().run_in_executor(None, sender.join, WAIT)
                with pytest.raises(asyncio.TimeoutError):
                    extra = receive()
                    await asyncio.wait_for(extra, 0.2)
                    got.append(number(extra))  # (a message received twice)
                return got, cancelled

            got, cancelled = run_on_new_loop(new_loop, caller())
            assert cancelled > 0
            assert got == list(range(self.N))

    def test_a_handed_recv_into_a_bad_buffer_fails_as_pyzmq_and_takes_nothing(
        self, new_loop: Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        with pull_of_another_thread(new_loop, "inproc://s16-bad-buffer") as (pull, push):
            push.send(b"kept")

            async def caller() -> bytes:
                with pytest.raises(BufferError, match="not writable"):
                    await asyncio.wait_for(pull.recv_into(b"read-only"), WAIT)
                with pytest.raises(ValueError, match="too big"):
                    await asyncio.wait_for(pull.recv_into(bytearray(2), nbytes=3), WAIT)
                return await asyncio.wait_for(pull.recv(), WAIT)  # type: ignore[no-any-return]

            assert run_on_new_loop(new_loop, caller()) == b"kept"


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
        assert await asyncio.wait_for(pull.poll(), WAIT) == zmq.POLLIN  # "3" is there
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
    async def test_they_never_block_a_stream_sharing_the_socket(self, pair: Any) -> None:
        """A stream over our socket shares its reactor; its standing receive takes messages
        from the socket itself: the frames wait behind it (for a receive of ours), and the
        stream goes on receiving."""
        from zmq_async.stream import ZMQStream

        push, pull = pair
        got: list[list[bytes]] = []
        with pytest.warns(RuntimeWarning, match="futures still work"):
            stream = ZMQStream(pull)
        stream.on_recv(got.append)
        await asyncio.sleep(0.01)  # its receive waits
        pull._reactor.give_back([(b"given", False)])
        for index in range(3):
            await push.send(b"%d" % index)
        deadline = asyncio.get_running_loop().time() + WAIT
        while len(got) < 3:
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.01)
        assert got == [[b"0"], [b"1"], [b"2"]]
        stream.stop_on_recv()
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"given"

    @pytest.mark.asyncio
    async def test_close_drops_them(self, pair: Any) -> None:
        _, pull = pair
        reactor = pull._reactor
        await pull.poll(0)
        reactor.give_back([(b"a", False)])
        pull.close(linger=0)
        assert reactor.given is None and not reactor.recvq


#: A green socket waits in a thread that then ends; a new thread is given that thread's ident
#: (the system reuses them) and stays; a third thread uses the socket. Prints the outcome.
REUSED_IDENT = textwrap.dedent("""
import sys
import threading

import zmq

if sys.argv[1] == "gevent":
    import zmq_async.green as gzmq
else:
    import zmq_async.green.eventlet as gzmq

ctx = gzmq.Context()
pull = ctx.socket(zmq.PULL)
pull.bind("inproc://s16-reused-ident")
push = ctx.socket(zmq.PUSH)
push.connect("inproc://s16-reused-ident")
first = []


def use() -> None:
    first.append(threading.get_ident())
    assert pull.poll(10) == 0  # waits: the socket is this thread's hub's now


t1 = threading.Thread(target=use)
t1.start()
t1.join()
hold = threading.Event()
holders = []
for _ in range(200):  # a new thread given the dead one's ident (the system reuses them)
    seen = []
    holder = threading.Thread(target=lambda: (seen.append(threading.get_ident()), hold.wait(30)))
    holder.start()
    holders.append(holder)
    while not seen:
        pass
    if seen[0] == first[0]:
        break
else:
    print("no reuse")
    sys.exit(3)
errors = []


def third() -> None:
    try:
        assert pull.poll(10) == 0  # waits: moves the socket to this thread's hub
        push.send(b"x")
        assert pull.recv() == b"x"
    except Exception as exc:
        errors.append(exc)


t3 = threading.Thread(target=third)
t3.start()
t3.join(30)
hold.set()
for holder in holders:
    holder.join(30)
print(repr(errors[0]) if errors else "ok")
ctx.destroy(linger=0)
""")


def hold_a_reused_ident(dead: int, hold: threading.Event) -> bool:
    """Start threads (each waiting for ``hold``) until one has the ident ``dead``; False if
    none got it in 200 tries."""
    for _ in range(200):
        seen: list[int] = []

        def wait(seen: list[int] = seen) -> None:
            seen.append(threading.get_ident())
            hold.wait(WAIT)

        threading.Thread(target=wait).start()
        while not seen:
            pass
        if seen[0] == dead:
            return True
    return False


class TestThreadIdentReused:
    """A thread's ident is reused by a later thread: a socket last used by a thread that
    ended, then used from a third thread while a new unrelated one holds the dead one's
    ident, failed with "used by greenlets of another thread". Liveness is now asked of a
    per-thread token that dies with its thread (``_thread.current``)."""

    @pytest.mark.timeout(60)
    def test_a_dead_thread_is_not_alive_whoever_has_its_ident(self) -> None:
        tokens: list[Any] = []
        idents: list[int] = []
        first = threading.Thread(
            target=lambda: (tokens.append(_thread.current()), idents.append(_thread.get_ident()))
        )
        first.start()
        first.join(WAIT)
        hold = threading.Event()
        try:
            if not hold_a_reused_ident(idents[0], hold):
                pytest.skip("no new thread was given the dead thread's ident")
            assert not _thread.alive(tokens[0])
        finally:
            hold.set()
        here = _thread.current()
        assert here is _thread.current() and _thread.alive(here)
        assert here().ident == _thread.get_ident()  # type: ignore[union-attr]

    @pytest.mark.timeout(120)
    @pytest.mark.parametrize("flavour", ["gevent", "eventlet"])
    def test_a_green_socket_moves_from_a_dead_thread_whose_ident_was_reused(
        self, flavour: str
    ) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        done = subprocess.run(
            [sys.executable, "-c", REUSED_IDENT, flavour],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
        )
        if done.returncode == 3:
            pytest.skip("no new thread was given the dead thread's ident")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "ok"


class TestDroppedShadowWithAPendingOperation:
    """A shadow dropped without ``close()`` while an operation of it was pending kept its
    reactor (and its FD callback, run at every wakeup of the FD) for ever once that
    operation was served: only idle dropped shadows were stopped. It now stops when its
    last waiter goes: served, cancelled or timed out."""

    @pytest.mark.parametrize("ending", ["served", "cancelled", "timed-out"])
    @pytest.mark.parametrize("kind", ["asyncio", "tornado"])
    @pytest.mark.asyncio
    async def test_it_stops_once_its_last_waiter_goes(self, kind: str, ending: str) -> None:
        import gc
        import weakref

        import zmq_async.tornado

        shadow_of = {"asyncio": zmq_async.asyncio.Socket, "tornado": zmq_async.tornado.Socket}
        ctx = zmq_async.asyncio.Context()
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        try:
            pull.bind("inproc://s16-dropped-pending")
            push.connect("inproc://s16-dropped-pending")
            refs = []
            for index in range(3):
                shadow = shadow_of[kind].shadow(pull.underlying)
                if ending == "timed-out":
                    shadow.rcvtimeo = 300  # (long enough to see it kept first)
                pending = [shadow.recv(), shadow.recv_multipart()]  # two waiters
                refs.append(weakref.ref(shadow._reactor))
                del shadow
                gc.collect()
                for _ in range(3):  # the stop handed to the loop runs (and keeps it)
                    await asyncio.sleep(0)
                if not any(future.done() for future in pending):  # (timed out: under load)
                    assert not refs[-1]().closed  # type: ignore[union-attr]
                if ending == "served":
                    await push.send(b"%d" % index)
                    await push.send(b"%d" % index)
                    assert await asyncio.wait_for(pending[0], WAIT) == b"%d" % index
                    assert await asyncio.wait_for(pending[1], WAIT) == [b"%d" % index]
                elif ending == "cancelled":
                    for future in pending:
                        future.cancel()
                else:
                    for future in pending:
                        with pytest.raises(zmq.Again):
                            await asyncio.wait_for(future, WAIT)
                del pending
                for _ in range(3):
                    await asyncio.sleep(0)
            gc.collect()
            live = [ref() for ref in refs if ref() is not None and not ref().closed]  # type: ignore[union-attr]
            assert not live, f"{len(live)} of 3 dropped shadows still watch the FD"
            await push.send(b"after")  # the socket they shadowed is untouched
            assert await asyncio.wait_for(pull.recv(), WAIT) == b"after"
        finally:
            ctx.destroy(linger=0)


class TestPlainTermAfterACloseHandedToAStoppedLoop:
    """A stream or socket of zmq_async over a plain ``zmq.Context``'s socket, closed from
    another thread while its loop runs (the close is handed to that loop), the loop then
    stopping before it carried the close out: ``ctx.term()`` of the plain context waited
    for ever on that socket (ours finished such closes, the plain one runs none of our
    code). A careful user expects what the peer gives, whose close is immediate: term()
    returns. The plain context's ``term`` now finishes such closes first."""

    @pytest.mark.parametrize("wrapper", ["stream", "from_socket"])
    def test_term_returns(
        self, new_loop: Callable[[], asyncio.AbstractEventLoop], wrapper: str
    ) -> None:
        from zmq_async.stream import ZMQStream

        ctx: zmq.Context[Any] = zmq.Context()
        plain = ctx.socket(zmq.PULL)
        plain.bind("inproc://s16-plain-term")
        owner = OwnerThread(new_loop)
        made: list[Any] = []

        async def make() -> None:
            if wrapper == "stream":
                made.append(ZMQStream(plain))
                made[0].on_recv(lambda msg: None)  # it watches the FD
            else:
                made.append(zmq_async.asyncio.Socket.from_socket(plain))
                assert await made[0].poll(0) == 0

        owner.loop.run_until_complete(make())
        closing = threading.Event()
        terminator = threading.Thread(target=lambda: ctx.term(), daemon=True)
        try:
            # The loop's next turn waits for the close to be handed over, then stops the
            # loop: asyncio runs no callback left at its stop.
            owner.stop_at_next_turn_after(closing)
            made[0].close(linger=0)  # handed to the owner, which is running
            closing.set()
            owner.thread.join(WAIT)
            assert not owner.thread.is_alive()
            terminator.start()
            terminator.join(WAIT)
            if terminator.is_alive():
                import traceback

                stack = traceback.format_stack(sys._current_frames()[terminator.ident or 0])
                pytest.fail("ctx.term() hung on the socket never closed, in:\n" + "".join(stack))
            assert plain.closed
        finally:
            closing.set()
            owner.stop()
            if terminator.is_alive() and not plain.closed:
                plain.close(linger=0)  # (let the hung term() end)


class TestFramesGivenBackCostNothingIdle:
    @pytest.mark.asyncio
    async def test_no_busy_loop_while_they_wait_for_a_receive(
        self, ctx: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Frames given back with no one receiving, while the socket's FD signals: the
        marker's turn in a dispatch must re-arm the FD (read EVENTS), or the loop calls the
        dispatch again at once, for ever (5,255 times in 0.5 s, measured)."""
        from zmq_async._reactor import Reactor

        calls = [0]
        dispatch = Reactor.dispatch

        def counting(self: Reactor) -> None:
            calls[0] += 1
            dispatch(self)

        monkeypatch.setattr(Reactor, "dispatch", counting)  # (bound by reactors made now)
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        waiting = pull.recv()  # the reactor watches the FD
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0.01)
        pull._reactor.give_back([(b"given", False)])
        for index in range(3):
            await push.send(b"%d" % index)  # the FD signals
        await asyncio.sleep(0.05)
        before = calls[0]
        await asyncio.sleep(0.5)
        assert calls[0] - before < 100, f"{calls[0] - before} dispatches in 0.5 s idle"
        assert pull._reactor._rechecker is None  # nothing to re-check: it left the re-check
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"given"
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"0"


#: A close handed to a loop that stopped, then fork(): the plain context's term() in the
#: child must not touch the parent's socket (any use of it raises there).
FORKED_TERM = """
import asyncio, os, zmq
import zmq_async.asyncio as za
from zmq_async.asyncio._socket import closes_at_term
ctx = zmq.Context()
plain = ctx.socket(zmq.PULL)
plain.bind("inproc://s16-fork")
wrapper = za.Socket.from_socket(plain)
async def bind():
    await wrapper.poll(0)
asyncio.run(bind())
wrapper._handed_close = (0,)  # as a close handed to a loop that stopped
closes_at_term(ctx, wrapper)
pid = os.fork()
if pid == 0:
    try:
        ctx.term()
        print("child ok", flush=True)
    except BaseException as exc:
        print("child", repr(exc), flush=True)
    finally:
        os._exit(0)
os.waitpid(pid, 0)
ctx.term()
print("parent ok", plain.closed, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_plain_term_in_a_forked_child_touches_no_inherited_socket() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKED_TERM], capture_output=True, text=True, timeout=WAIT * 3
    )
    assert done.stdout.split() == ["child", "ok", "parent", "ok", "True"], done.stdout + done.stderr


class _HandedClose:
    """Stands for a socket whose close was handed to a loop (finish_handed_close is a no-op)."""

    def finish_handed_close(self) -> None:
        pass


class _Owner:
    """An object that destroys its context in ``__del__``, as jupyter_client's managers do."""

    context: zmq.Context[Any]

    def __del__(self) -> None:
        self.context.destroy(linger=0)


def test_a_hooked_plain_context_destroyed_by_the_cyclic_collector_is_terminated() -> None:
    """jupyter_client's test_multikernelmanager.py on ZMQ_ASYNC_INSTALL=1: a plain context
    whose term() is hooked (a close of one of its sockets was handed to a loop), collected in
    a cycle with an owner whose __del__ destroys it. The collector clears weak references
    before it runs finalizers: a hook holding the context weakly did nothing, the context was
    never terminated, and pyzmq warned 'Unclosed context' (an error in their suite)."""
    owner = _Owner()  # made first: the collector finalizes it before its context
    context = owner.context = zmq.Context()
    closes_at_term(context, _HandedClose())
    cycle: list[Any] = [owner]
    cycle.append(cycle)
    owner.cycle = cycle  # type: ignore[attr-defined]
    del owner, cycle, context
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    unclosed = [str(w.message) for w in caught if "Unclosed context" in str(w.message)]
    assert not unclosed, unclosed


@pytest.mark.timeout(20)
def test_a_context_destroyed_under_a_stream_close_handed_to_its_loop_does_not_warn(
    new_loop: Callable[[], asyncio.AbstractEventLoop], caplog: pytest.LogCaptureFixture
) -> None:
    """ipykernel's test_kernelapp.py::test_trio_loop (its MockKernel.destroy): streams closed
    from the main thread while their loop runs in another (each close handed to that loop),
    then ``context.destroy()``, which closes the sockets before the loop carries the closes
    out. The user did call ``stream.close()``: no 'Unregistering FD ... after closing socket'
    warning is due (raised from term(), it failed their test; from the loop, it was logged)."""
    from zmq_async.stream import ZMQStream

    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("inproc://s16-destroy-under-handed-close")
    owner = OwnerThread(new_loop)
    streams: list[Any] = []

    async def make() -> None:
        streams.append(ZMQStream(sock))
        streams[0].on_recv(lambda msg: None)  # it watches the FD

    owner.loop.run_until_complete(make())
    release = threading.Event()
    owner.loop.call_soon(lambda: release.wait(WAIT))  # its next turn waits: destroy() is first
    owner.start()
    timer = threading.Timer(0.2, release.set)
    try:
        streams[0].close()  # handed to the owner loop
        timer.start()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ctx.destroy(linger=0)  # closes the socket; term() waits for the handed close
        assert streams[0].closed()
    finally:
        release.set()
        timer.cancel()
        owner.stop()
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failed, failed
