"""zmq_async.anyio: the behaviour, written once, run on asyncio, asyncio+uvloop and trio.

anyio's pytest plugin runs each ``@pytest.mark.anyio`` test on every ``anyio_backend``
(tests/conftest.py: asyncio, uvloop, trio).
"""

from __future__ import annotations

import json
import os
import socket as stdlib_socket
import time
from typing import Any

import anyio
import pytest
import zmq

import zmq_async.anyio as za

# Every test runs on each backend of tests/conftest.py's anyio_backend fixture.
pytestmark = pytest.mark.anyio

# -- the basics --------------------------------------------------------------------------------


async def test_send_recv_all_forms(apair: Any) -> None:
    pull, push = apair()
    with anyio.fail_after(10):
        await push.send(b"one")
        assert await pull.recv() == b"one"
        await push.send_multipart([b"a", b"b", b"c"])
        assert await pull.recv_multipart() == [b"a", b"b", b"c"]
        await push.send(b"frame")
        frame = await pull.recv(copy=False)
        assert isinstance(frame, zmq.Frame) and frame.bytes == b"frame"
        await push.send(b"into")
        buf = bytearray(10)
        assert await pull.recv_into(buf) == 4 and buf[:4] == b"into"
        tracker = await push.send(b"tracked", copy=False, track=True)
        assert isinstance(tracker, zmq.MessageTracker)
        assert await pull.recv() == b"tracked"


async def test_serialization_helpers(apair: Any) -> None:
    pull, push = apair()
    with anyio.fail_after(10):
        await push.send_json({"a": [1, 2]})
        assert await pull.recv_json() == {"a": [1, 2]}
        await push.send_pyobj({1, 2})
        assert await pull.recv_pyobj() == {1, 2}
        await push.send_string("héllo")
        assert await pull.recv_string() == "héllo"
        await push.send_string("latin", encoding="latin-1")
        assert await pull.recv_string(encoding="latin-1") == "latin"
        await push.send_serialized({"k": 1}, lambda o: [json.dumps(o).encode(), b"end"])
        got = await pull.recv_serialized(lambda frames: (json.loads(frames[0]), frames[1]))
        assert got == ({"k": 1}, b"end")


async def test_reqrep_and_router_dealer(apair: Any) -> None:
    rep, req = apair(zmq.REP, zmq.REQ)
    router, dealer = apair(zmq.ROUTER, zmq.DEALER)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def serve() -> None:
                await rep.send(b"re:" + await rep.recv())

            tg.start_soon(serve)
            await req.send(b"q")
            assert await req.recv() == b"re:q"
        await dealer.send(b"hi")
        ident, msg = await router.recv_multipart()
        assert msg == b"hi"
        await router.send_multipart([ident, b"back"])
        assert await dealer.recv() == b"back"


async def test_noblock_raises_again_at_once(apair: Any) -> None:
    pull, _ = apair()
    with anyio.fail_after(1), pytest.raises(zmq.Again):
        await pull.recv(zmq.NOBLOCK)


async def test_poll(apair: Any) -> None:
    pull, push = apair()
    with anyio.fail_after(10):
        assert await pull.poll(timeout=50) == 0
        assert await pull.poll(timeout=0) == 0
        assert await push.poll(flags=zmq.POLLOUT) == zmq.POLLOUT
        async with anyio.create_task_group() as tg:
            tg.start_soon(push.send, b"x")
            assert await pull.poll() == zmq.POLLIN
        assert await pull.recv() == b"x"  # poll consumed nothing


async def test_poller_mixes_our_sockets_plain_sockets_and_raw_fds(
    apair: Any, actx: za.Context
) -> None:
    pull, push = apair()
    owner = actx.socket(zmq.PULL)  # kept alive: the plain shadow does not own it
    plain = zmq.Socket.shadow(owner.underlying)
    plain_port = plain.bind_to_random_port("tcp://127.0.0.1")
    plain_push = actx.socket(zmq.PUSH)
    plain_push.connect(f"tcp://127.0.0.1:{plain_port}")
    a, b = stdlib_socket.socketpair()
    poller = za.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(plain, zmq.POLLIN)
    poller.register(a.fileno(), zmq.POLLIN)
    try:
        with anyio.fail_after(10):
            assert await poller.poll(50) == []
            async with anyio.create_task_group() as tg:
                tg.start_soon(push.send, b"ours")
                assert await poller.poll() == [(pull, zmq.POLLIN)]
            assert await pull.recv() == b"ours"
            await plain_push.send(b"plain")
            assert await poller.poll(5000) == [(plain, zmq.POLLIN)]
            assert plain.recv() == b"plain"
            b.send(b"raw")
            assert await poller.poll(5000) == [(a.fileno(), zmq.POLLIN)]
    finally:
        a.close()
        b.close()
        plain.close(linger=0)


async def test_poller_wakes_for_any_item_not_just_the_first(actx: za.Context) -> None:
    """On trio a task waits on one FD at a time: the others must be watched all the same."""
    poller = za.Poller()
    plain_pulls = []
    owners = [actx.socket(zmq.PULL) for _ in range(3)]  # alive while their shadows are used
    for owner in owners:
        plain = zmq.Socket.shadow(owner.underlying)
        plain_pulls.append(plain)
        poller.register(plain, zmq.POLLIN)
    a, b = stdlib_socket.socketpair()
    poller.register(a, zmq.POLLIN)
    pushes = []
    for plain in plain_pulls:
        port = plain.bind_to_random_port("tcp://127.0.0.1")
        push = actx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        pushes.append(push)
    try:
        with anyio.fail_after(10):
            for index in (2, 1):
                async with anyio.create_task_group() as tg:

                    async def send_later(i: int = index) -> None:
                        await anyio.sleep(0.05)
                        await pushes[i].send(b"x")

                    tg.start_soon(send_later)
                    start = anyio.current_time()
                    assert await poller.poll(5000) == [(plain_pulls[index], zmq.POLLIN)]
                    assert anyio.current_time() - start < 1.0  # not by a slow re-check
                assert plain_pulls[index].recv() == b"x"
            b.send(b"raw")
            assert await poller.poll(5000) == [(a.fileno(), zmq.POLLIN)]  # as zmq.Poller does
    finally:
        a.close()
        b.close()
        for sock in plain_pulls:
            sock.close(linger=0)


async def test_async_for_yields_multipart_and_ends_on_close(apair: Any) -> None:
    pull, push = apair()
    got: list[list[bytes]] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for msg in pull:
                    got.append(msg)
                    if len(got) == 2:
                        pull.close()

            tg.start_soon(consume)
            await push.send_multipart([b"a", b"1"])
            await push.send(b"b")
    assert got == [[b"a", b"1"], [b"b"]]


async def test_async_with_closes(actx: za.Context) -> None:
    async with actx.socket(zmq.PUSH) as sock:
        assert isinstance(sock, za.Socket) and not sock.closed
    assert sock.closed


async def test_no_task_group_needed_and_socket_is_a_zmq_socket(apair: Any) -> None:
    pull, push = apair()
    assert isinstance(pull, zmq.Socket)
    assert repr(pull).startswith("<zmq_async.anyio.Socket(zmq.PULL)")
    assert pull.get(zmq.TYPE) == zmq.PULL
    with anyio.fail_after(10):
        await push.send(b"x")
        assert await pull.recv() == b"x"


async def test_from_socket_shadows(actx: za.Context) -> None:
    plain = zmq.Context.instance().socket(zmq.PULL)
    try:
        ours = za.Socket.from_socket(plain)
        port = ours.bind_to_random_port("tcp://127.0.0.1")
        push = actx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        with anyio.fail_after(10):
            await push.send(b"shadowed")
            assert await ours.recv() == b"shadowed"
    finally:
        plain.close(linger=0)


# -- timeouts ----------------------------------------------------------------------------------


async def test_rcvtimeo_raises_again_and_consumes_nothing(apair: Any) -> None:
    pull, push = apair()
    pull.rcvtimeo = 50
    with anyio.fail_after(10):
        before = anyio.current_time()
        with pytest.raises(zmq.Again):
            await pull.recv()
        assert anyio.current_time() - before >= 0.04
        pull.rcvtimeo = -1
        await push.send(b"after")
        assert await pull.recv() == b"after"


async def test_sndtimeo_raises_again(actx: za.Context) -> None:
    push = actx.socket(zmq.PUSH)  # no peer: sends block
    push.sndtimeo = 50
    with anyio.fail_after(10), pytest.raises(zmq.Again):
        await push.send(b"x")


# -- many waiters on one socket --------------------------------------------------------------


async def test_a_hundred_tasks_on_one_pull_get_every_message_exactly_once(apair: Any) -> None:
    pull, push = apair()
    n_tasks, n_msgs = 100, 3000
    got: list[bytes] = []

    async def receive() -> None:
        while True:
            msg = await pull.recv()
            if msg == b"end":
                return
            got.append(msg)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(n_tasks):
                tg.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            for i in range(n_msgs):
                await push.send(b"%d" % i)
            for _ in range(n_tasks):
                await push.send(b"end")
    assert len(got) == n_msgs
    assert sorted(got) == sorted(b"%d" % i for i in range(n_msgs))


async def test_receivers_are_served_in_fifo_order(apair: Any) -> None:
    pull, push = apair()
    order: list[tuple[int, bytes]] = []

    async def receive(i: int) -> None:
        order.append((i, await pull.recv()))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(receive, i)
                await anyio.wait_all_tasks_blocked()
            for i in range(5):
                await push.send(b"%d" % i)
    assert sorted(order) == [(i, b"%d" % i) for i in range(5)]  # task i got message i


async def test_pollers_and_receivers_share_one_socket(apair: Any) -> None:
    pull, push = apair()
    polled: list[Any] = []
    got: list[bytes] = []

    async def poll_socket() -> None:
        polled.append(await pull.poll())

    async def poll_poller() -> None:
        poller = za.Poller()
        poller.register(pull, zmq.POLLIN)
        polled.append(await poller.poll())

    async def receive() -> None:
        got.append(await pull.recv())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(poll_socket)
                tg.start_soon(poll_poller)
            for _ in range(3):
                tg.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            # The receivers take three; the fourth stays, for the polls to see.
            for i in range(4):
                await push.send(b"%d" % i)
    assert len(got) == 3 and set(got) < {b"0", b"1", b"2", b"3"}
    assert sorted(polled, key=repr) == sorted(
        [zmq.POLLIN] * 3 + [[(pull, zmq.POLLIN)]] * 3, key=repr
    )


async def test_senders_and_receivers_wait_on_one_socket_together(apair: Any) -> None:
    a, b = apair(zmq.PAIR, zmq.PAIR, SNDHWM=1, RCVHWM=1)
    got: list[bytes] = []

    async def send_all() -> None:
        for i in range(200):
            await b.send(b"%d" % i)

    async def echo_back() -> None:
        for _ in range(200):
            await a.send(await a.recv())

    async def drain() -> None:
        for _ in range(200):
            got.append(await b.recv())

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_all)
            tg.start_soon(echo_back)
            tg.start_soon(drain)
    assert got == [b"%d" % i for i in range(200)]


# -- checkpoints -------------------------------------------------------------------------------


async def test_each_call_checks_for_cancellation_before_consuming(apair: Any) -> None:
    pull, push = apair()
    with anyio.fail_after(10):
        await push.send(b"kept")
        assert await pull.poll(5000) == zmq.POLLIN
        with anyio.CancelScope() as scope:
            scope.cancel()
            await pull.recv()
            pytest.fail("a cancelled scope must cancel recv")  # pragma: no cover
        assert await pull.recv() == b"kept"


async def test_a_message_consumed_for_a_cancelled_asyncio_task_is_returned(
    actx: za.Context, anyio_backend_name: str
) -> None:
    """asyncio's ``Task.cancel()`` (anyio's scopes wait while the Future is done) can reach a
    waiting receive whose message the reactor has just consumed: it returns the message."""
    if anyio_backend_name != "asyncio":
        pytest.skip("asyncio's Task.cancel()")
    import asyncio

    pull = actx.socket(zmq.PULL)
    push = zmq.Socket(actx, zmq.PUSH)
    try:
        pull.bind("inproc://kept-on-cancel")
        push.connect("inproc://kept-on-cancel")
        with anyio.fail_after(10):
            task = asyncio.get_running_loop().create_task(pull.recv())
            while not pull._reactor.recvq:
                await anyio.sleep(0)
            push.send(b"kept")
            pull._reactor.dispatch()  # what the FD's callback runs: consumes it for the waiter
            task.cancel()
            assert await task == b"kept"
    finally:
        push.close(linger=0)
        pull.close()


async def test_the_cancellation_check_sees_outer_scopes_and_shields(apair: Any) -> None:
    pull, push = apair()
    with anyio.fail_after(10):
        await push.send(b"kept")
        assert await pull.poll(5000) == zmq.POLLIN
        with anyio.CancelScope() as outer:
            with anyio.CancelScope():
                outer.cancel()
                with anyio.CancelScope(shield=True):  # the outer cancel does not reach here
                    assert await pull.recv() == b"kept"
                    await push.send(b"kept")
                    assert await pull.poll(5000) == zmq.POLLIN
                await pull.recv()
                pytest.fail("a cancelled outer scope must cancel recv")  # pragma: no cover

        async def other_task() -> None:  # another task on the same socket, then this one
            assert await pull.recv() == b"kept"

        async with anyio.create_task_group() as tg:
            tg.start_soon(other_task)
        await push.send(b"again")
        assert await pull.recv() == b"again"
        with anyio.CancelScope() as scope:
            scope.cancel()
            await pull.recv()
            pytest.fail("a cancelled scope must cancel recv")  # pragma: no cover


async def test_a_receiver_that_never_waits_still_lets_others_run(actx: za.Context) -> None:
    pull = actx.socket(zmq.PULL)
    pull.bind("inproc://never-waits")
    push = actx.socket(zmq.PUSH)
    push.connect("inproc://never-waits")
    n = 640  # ten times YIELD_EVERY
    for _ in range(n):
        await push.send(b"x")  # inproc: every message is in the pipe at once
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.sleep(0)
            ticks = 0
            for _ in range(n):
                await pull.recv()
            tg.cancel_scope.cancel()
    assert ticks >= 5  # about one per YIELD_EVERY receives


# -- successive runs, FDs ---------------------------------------------------------------------


def test_same_socket_across_successive_runs_is_rebound(actx: za.Context) -> None:
    """A socket used in one run works in the next, on either backend (it is rebound)."""
    pull = actx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = actx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")

    async def roundtrip(payload: bytes) -> bytes:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(push.send, payload)
                return await pull.recv()  # type: ignore[no-any-return]

    # Several runs one after another, of either backend: the plugin gives a test only one.
    for backend in ("asyncio", "trio", "asyncio", "trio", "trio"):
        assert anyio.run(roundtrip, backend.encode(), backend=backend) == backend.encode()


def test_fd_count_is_stable(actx: za.Context) -> None:
    """Sockets with waiters on every backend, closed: no FD is left behind."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")

    async def main() -> None:
        socks = [actx.socket(zmq.PULL) for _ in range(20)]
        for s in socks:
            s.bind("tcp://127.0.0.1:*")
        async with anyio.create_task_group() as tg:
            for s in socks:
                tg.start_soon(_recv_until_closed, s)
            await anyio.wait_all_tasks_blocked()
            for s in socks:
                s.close(linger=0)

    def run_all() -> None:  # every backend in turn, in one test: the plugin gives one run
        for backend, options in (("asyncio", {}), ("asyncio", {"use_uvloop": True}), ("trio", {})):
            anyio.run(main, backend=backend, backend_options=options)

    run_all()  # warm up: loops, selectors and trio's internals allocate FDs once
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        run_all()  # 180 sockets, each with a pending receive when closed
    # libzmq's reaper thread closes a socket's FDs shortly after zmq_close: wait for it.
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/fd")) > before + 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(os.listdir("/proc/self/fd")) <= before + 5


async def _recv_until_closed(sock: za.Socket) -> None:
    with pytest.raises(zmq.ZMQError) as info:
        await sock.recv()
    assert info.value.errno == zmq.ENOTSOCK
