"""zmq_async.zmq_anyio, the drop-in for zmq-anyio: on asyncio, asyncio+uvloop and trio.

Every ``a*`` method returns an ``anyio.Future``; the socket must be started (``async with``,
``tg.start(sock.start)`` or ``task_group=``). Waits are bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import zmq
from anyio import Future, FutureCancelled, FutureFailed

from zmq_async.zmq_anyio import Poller, Socket

pytestmark = pytest.mark.anyio

PENDING = Future.Status.PENDING
CANCELLED = Future.Status.CANCELLED


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def new(ctx: zmq.Context[Any]) -> Iterator[Any]:
    """``new(socket_type)``: one of our sockets (linger 0), closed after the test."""
    made: list[Socket] = []

    def make(socket_type: int) -> Socket:
        sock = Socket(ctx, socket_type)
        sock.linger = 0
        made.append(sock)
        return sock

    yield make
    for sock in made:  # the context does not know sockets made by Socket(ctx, type)
        sock.close()


@pytest.fixture
def pair(new: Any) -> Any:
    """``pair(bind_type, connect_type)``: two of our sockets, connected over tcp."""

    def make(bind_type: int = zmq.PULL, connect_type: int = zmq.PUSH) -> tuple[Socket, Socket]:
        bound = new(bind_type)
        port = bound.bind_to_random_port("tcp://127.0.0.1")
        connected = new(connect_type)
        connected.connect(f"tcp://127.0.0.1:{port}")
        return bound, connected

    return make


async def test_recv_and_send_methods_return_anyio_futures(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            f = pull.arecv()
            assert isinstance(f, Future) and f.status is PENDING
            sent = push.asend(b"one")
            assert isinstance(sent, Future)
            assert await sent is None
            assert await f == b"one"
            await push.asend_multipart([b"a", b"b"])
            assert await pull.arecv_multipart() == [b"a", b"b"]
            await push.asend(b"frame")
            frame = await pull.arecv(copy=False)
            assert isinstance(frame, zmq.Frame) and frame.bytes == b"frame"
            tracker = await push.asend(b"t", copy=False, track=True)
            assert isinstance(tracker, zmq.MessageTracker)
            assert await pull.arecv() == b"t"


async def test_serialization_helpers(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            await push.asend_json({"a": [1]})
            assert await pull.arecv_json() == {"a": [1]}
            await push.asend_pyobj({1, 2})
            assert await pull.arecv_pyobj() == {1, 2}
            await push.asend_string("héllo")
            assert await pull.arecv_string() == "héllo"
            await push.asend_string("latin", encoding="latin-1")
            assert await pull.arecv_string(encoding="latin-1") == "latin"
            await push.asend_serialized({"k": 1}, lambda o: [json.dumps(o).encode(), b"end"])
            got = await pull.arecv_serialized(lambda fr: (json.loads(fr[0]), fr[1]))
            assert got == ({"k": 1}, b"end")
            with pytest.raises(TypeError):
                push.asend_string(b"bytes")  # type: ignore[arg-type]


async def test_a_decoding_error_fails_the_future_not_the_task_group(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            await push.asend(b"not json")
            f = pull.arecv_json()
            with pytest.raises(FutureFailed):
                await f
            assert isinstance(f.exception, ValueError)
            await push.asend(b"next")
            assert await pull.arecv() == b"next"  # the socket goes on


async def test_receivers_are_served_in_call_order(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            futures = [pull.arecv() for _ in range(20)]
            for i in range(20):
                push.send(b"%d" % i)
            assert [await f for f in futures] == [b"%d" % i for i in range(20)]


async def test_sync_send_before_and_after_start(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        push.send(b"blocking")  # not started: pyzmq's send
        assert pull.recv() == b"blocking"  # sync recv: pyzmq's
        async with pull, push:
            push.send(b"scheduled")
            push.send_multipart([b"x", b"y"])
            push.send_json({"j": 1})  # pyzmq's helpers go through send
            assert await pull.arecv() == b"scheduled"
            assert await pull.arecv_multipart() == [b"x", b"y"]
            assert await pull.arecv_json() == {"j": 1}


async def test_a_send_that_must_wait_is_queued_and_sent_in_order(new: Any) -> None:
    push = new(zmq.PUSH)  # no peer yet: every send waits
    port = push.bind_to_random_port("tcp://127.0.0.1")
    with anyio.fail_after(10):
        async with push:
            first = push.asend(b"1")
            push.send(b"2")  # queued behind the first
            assert first.status is PENDING
            pull = new(zmq.PULL)
            pull.connect(f"tcp://127.0.0.1:{port}")
            async with pull:
                assert await pull.arecv() == b"1"
                assert await pull.arecv() == b"2"
            assert await first is None


async def test_req_rep_receive_waits_for_the_queued_send(new: Any) -> None:
    rep, req = new(zmq.REP), new(zmq.REQ)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    with anyio.fail_after(10):
        async with rep, req:
            req.send(b"ping")  # no peer yet: queued
            reply = req.arecv()  # behind the send: must not fail with EFSM
            await anyio.wait_all_tasks_blocked()
            assert reply.status is PENDING
            req.connect(f"tcp://127.0.0.1:{port}")
            assert await rep.arecv() == b"ping"
            await rep.asend(b"pong")
            assert await reply == b"pong"


async def test_recv_timeout_counts_from_the_call(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            pull.rcvtimeo = 100
            f1 = pull.arecv()
            pull.rcvtimeo = -1
            f2 = pull.arecv()
            with pytest.raises(FutureFailed):
                await f1
            assert isinstance(f1.exception, zmq.Again)
            await push.asend(b"late")
            assert await f2 == b"late"


async def test_dontwait(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            f = pull.arecv(zmq.DONTWAIT)
            assert f.status is Future.Status.FAILED  # answered at once
            assert isinstance(f.exception, zmq.Again)
            await push.asend(b"x")
            assert await pull.apoll(timeout=5000) == zmq.POLLIN
            assert await pull.arecv(zmq.DONTWAIT) == b"x"


async def test_cancelling_a_future_consumes_nothing(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            waiting = [pull.arecv_json(), pull.arecv_multipart(), pull.arecv()]
            await anyio.wait_all_tasks_blocked()  # the first waits in the reactor
            for f in waiting:
                f.cancel()
                assert f.status is CANCELLED
            await push.asend_json({"n": 1})
            await push.asend(b"two")
            with pytest.raises(FutureCancelled):
                await waiting[0]
            assert await pull.arecv_json() == {"n": 1}
            assert await pull.arecv() == b"two"


async def test_cancel_as_the_message_arrives_consumes_nothing(ctx: Any) -> None:
    """zmq-anyio loses this message (its helpers cancel their receive one task switch late)."""
    raw = ctx.socket(zmq.PUSH)
    raw.linger = 0
    pull = Socket(ctx.socket(zmq.PULL))
    pull.linger = 0
    pull.bind("inproc://cancel-race")
    raw.connect("inproc://cancel-race")
    with anyio.fail_after(10):
        async with pull:
            for helper in (pull.arecv_json, pull.arecv_string, pull.arecv_pyobj):
                f = helper()
                await anyio.wait_all_tasks_blocked()
                raw.send(b'{"n": 1}')  # inproc: there at once, before any task switch
                f.cancel()
                assert await pull.arecv() == b'{"n": 1}'
    raw.close()


async def test_cancel_after_the_message_arrived_keeps_it(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            f = pull.arecv()
            await push.asend(b"m")
            await f.wait()
            f.cancel()  # too late: the Future holds the message
            assert f.return_value == b"m"


async def test_close_with_pending_futures_cancels_them(pair: Any, new: Any) -> None:
    pull, _push = pair()
    push = new(zmq.PUSH)  # no peer: every send waits
    with anyio.fail_after(10):
        async with pull, push:
            recvs = [pull.arecv(), pull.arecv_multipart(), pull.apoll()]
            sends = [push.asend(b"1"), push.asend_multipart([b"2"])]
            await anyio.wait_all_tasks_blocked()
            pull.close()
            push.close()
            for f in [*recvs, *sends]:
                assert f.status is CANCELLED
        # leaving async with after close: nothing hangs, every task ended
    assert pull.closed and push.closed
    assert pull.stopped.is_set() and push.stopped.is_set()


async def test_leaving_async_with_closes_and_cancels(pair: Any) -> None:
    pull, _push = pair()
    with anyio.fail_after(10):
        async with pull:
            assert pull.started.is_set()
            f = pull.arecv()
        assert f.status is CANCELLED
        assert pull.closed and pull.stopped.is_set()


async def test_start_in_a_task_group_and_stop(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(pull.start)
            await tg.start(push.start)
            assert pull.started.is_set()
            await push.asend(b"hi")
            assert await pull.arecv() == b"hi"
            f = pull.arecv()
            await pull.stop()
            push.close()
            assert f.status is CANCELLED
        # both start() tasks returned: the task group could exit
        assert pull.closed and pull.stopped.is_set()


async def test_given_task_group(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            pull = Socket(pull, task_group=tg)  # shadowing, with a task group: no start needed
            push2 = Socket(push, task_group=tg)
            await push2.asend(b"via tg")
            assert await pull.arecv() == b"via tg"
            pull.close()
            push2.close()


async def test_shadowing_a_socket(ctx: Any) -> None:
    raw_pull = ctx.socket(zmq.PULL)
    raw_pull.linger = 0
    port = raw_pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(f"tcp://127.0.0.1:{port}")
    pull = Socket(raw_pull)
    assert pull.underlying == raw_pull.underlying and pull.context is ctx
    with anyio.fail_after(10):
        async with pull:
            f = pull.arecv()
            push.send(b"through the shadow")
            assert await f == b"through the shadow"
    assert raw_pull.closed  # closing ours closes what it shadows
    push.close()


async def test_unstarted_use_raises(pair: Any) -> None:
    pull, push = pair()
    message = r"Socket must be used with async context manager \(or `await sock.start\(\)`\)"
    for call in (pull.arecv, pull.arecv_multipart, pull.apoll, lambda: push.asend(b"x")):
        with pytest.raises(RuntimeError, match=message):
            call()
    pull.close()
    push.close()


async def test_use_from_another_thread_raises(pair: Any) -> None:
    pull, _push = pair()
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            pull.arecv()
        except RuntimeError as exc:
            errors.append(exc)

    with anyio.fail_after(10):
        async with pull:
            thread = threading.Thread(target=elsewhere)
            thread.start()
            await anyio.to_thread.run_sync(thread.join)
    assert [str(e) for e in errors] == ["Socket must be used in the same thread"]


async def test_apoll(pair: Any) -> None:
    pull, push = pair()
    with anyio.fail_after(10):
        async with pull, push:
            f = pull.apoll(timeout=0)
            assert f.return_value == 0  # answered at once
            assert await pull.apoll(timeout=10) == 0
            f = pull.apoll(timeout=5000)
            assert f.status is PENDING
            await push.asend(b"p")
            assert await f == zmq.POLLIN
            assert await push.apoll(flags=zmq.POLLOUT) == zmq.POLLOUT
            assert await pull.arecv() == b"p"
            cancelled = pull.apoll()
            cancelled.cancel()
            assert cancelled.status is CANCELLED
    with pytest.raises(RuntimeError):  # closed: stopped, as zmq-anyio
        pull.apoll()


async def test_poller_apoll(pair: Any) -> None:
    pull, push = pair()
    poller = Poller()
    poller.register(pull, zmq.POLLIN)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            assert await poller.apoll(tg, timeout=0) == []
            assert await poller.apoll(tg, timeout=10) == []
            f = poller.apoll(tg)
            assert f.status is PENDING
            push.send_multipart([b"hi", b"there"])  # not started: pyzmq's send
            assert await f == [(pull, zmq.POLLIN)]
            assert pull.recv_multipart() == [b"hi", b"there"]
            f = poller.apoll(tg, timeout=-1)
            f.cancel()  # its task ends: the task group can exit
    pull.close()
    push.close()


async def test_restart_many_times(ctx: Any) -> None:
    with anyio.fail_after(20):
        for _ in range(50):
            sock = Socket(ctx.socket(zmq.DEALER))
            async with sock:
                sock.connect("tcp://127.0.0.1:9")
                sock.linger = 0


def test_signatures_are_zmq_anyios() -> None:
    """Every method zmq-anyio adds to pyzmq's, with its parameter names, kinds and defaults."""
    import inspect

    import zmq_anyio  # the peer, for this comparison only

    def params(func: Any) -> list[tuple[str, Any, Any]]:
        sig = inspect.signature(func)
        return [(p.name, p.default, p.kind) for p in sig.parameters.values()]

    for theirs, ours, base in (
        (zmq_anyio.Socket, Socket, zmq.Socket),
        (zmq_anyio.Poller, Poller, zmq.Poller),
    ):
        names = {n for n in vars(theirs) if not n.startswith("_") and not hasattr(base, n)}
        names |= {"__init__", "__aenter__", "__aexit__", "close"} & set(vars(theirs))
        for name in sorted(names):
            if callable(getattr(theirs, name)):
                assert params(getattr(ours, name)) == params(getattr(theirs, name)), name
            else:  # started, stopped: instance attributes, annotated on the class
                assert name in ours.__annotations__, name


def test_exports_and_repr() -> None:
    import zmq_async.zmq_anyio as za

    assert za.__all__ == ["Poller", "Socket"]
    assert issubclass(za.Socket, zmq.Socket) and issubclass(za.Poller, zmq.Poller)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        sock = za.Socket(ctx, zmq.PUSH)
        assert repr(sock).startswith("<zmq_async.zmq_anyio.Socket(zmq.PUSH) at ")
        sock.close()
    finally:
        ctx.term()
