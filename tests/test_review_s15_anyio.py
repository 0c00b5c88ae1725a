"""Review of the anyio layer (session 15): cancellation, closing, FD reuse, runs and threads.

On anyio's asyncio, asyncio+uvloop and trio backends; compared with zmq-anyio where it helps.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import zmq

import zmq_async.anyio as za
import zmq_async.zmq_anyio as zmq_anyio
from zmq_async.anyio._socket import YIELD_EVERY

pytestmark = pytest.mark.anyio


# -- a loop of polls that are ready at once still checkpoints ------------------------------------


async def _ready_polls_let_others_run(poll: Any) -> None:
    """``await poll()`` in a loop, always ready: other tasks run and the loop's deadline ends it.

    A poll that never yields would starve the other task and never see its deadline: the loop
    below would only end at its bound, with ``ticks`` still 0.
    """
    ticks = 0
    polls = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0)

    bound = 1000 * YIELD_EVERY  # far more than 0.05 s of polls
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with anyio.move_on_after(0.05):
            while polls < bound:
                assert await poll()
                polls += 1
        tg.cancel_scope.cancel()
    assert ticks >= 1
    assert polls < bound  # the deadline ended the loop


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", [0, 100, None])
async def test_a_socket_poll_loop_that_is_always_ready_yields(apair: Any, timeout: Any) -> None:
    pull, push = apair()
    await push.send(b"ready")
    with anyio.fail_after(10):
        assert await pull.poll(5000)
        await _ready_polls_let_others_run(lambda: pull.poll(timeout))
    assert await pull.recv() == b"ready"  # polls consume nothing


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", [0, 100])
async def test_a_poller_loop_that_is_always_ready_yields(apair: Any, timeout: int) -> None:
    pull, push = apair()
    await push.send(b"ready")
    poller = za.Poller()
    poller.register(pull, zmq.POLLIN)
    with anyio.fail_after(10):
        assert await poller.poll(5000)
        await _ready_polls_let_others_run(lambda: poller.poll(timeout))
    assert await pull.recv() == b"ready"


# -- closing with waiters parked and watching; the FD number reused at once -----------------------


def _closed(exc: BaseException) -> bool:
    return isinstance(exc, zmq.ZMQError) and exc.errno == zmq.ENOTSOCK


@pytest.mark.timeout(60)
async def test_close_with_many_waiters_then_fd_reuse_in_a_loop(actx: Any) -> None:
    """Sockets made, waited on by several tasks (receivers and polls), closed, again and again.

    Each close fails every waiter with ENOTSOCK (never a trio ClosedResourceError or
    BusyResourceError, never a hang), and the next socket, which gets the same FD number,
    works at once: its receive is not parked behind the watcher of the closed one.
    """
    fds: set[int] = set()
    for i in range(60):
        pull = actx.socket(zmq.PULL)
        pull.bind(f"inproc://reuse-{i}")
        push = actx.socket(zmq.PUSH)
        push.connect(f"inproc://reuse-{i}")
        fds.add(pull.FD)
        errors: list[BaseException] = []

        async def wait(call: Any, errors: list[BaseException] = errors) -> None:
            try:
                await call()
            except BaseException as exc:
                errors.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for k in range(4):
                    tg.start_soon(wait, pull.recv if k % 2 else pull.poll)
                cancelled = anyio.CancelScope()

                async def cancelled_waiter(
                    scope: anyio.CancelScope = cancelled, pull: Any = pull
                ) -> None:
                    with scope:
                        await pull.recv()

                tg.start_soon(cancelled_waiter)
                await anyio.wait_all_tasks_blocked()  # all parked or watching
                cancelled.cancel()  # cancelled, not yet run, as the socket closes
                pull.close()
            assert len(errors) == 4 and all(_closed(e) for e in errors), errors
            # The next socket reuses the FD; it must be served at once.
            again = actx.socket(zmq.PULL)
            again.bind(f"inproc://again-{i}")
            sender = actx.socket(zmq.PUSH)
            sender.connect(f"inproc://again-{i}")
            async with anyio.create_task_group() as tg:
                tg.start_soon(sender.send, b"x")
                assert await again.recv() == b"x"
            for s in (push, again, sender):
                s.close()
    assert len(fds) < 60  # FD numbers were reused (else the test proves less)


@pytest.mark.timeout(30)
async def test_destroying_the_context_under_a_zmq_anyio_socket_fails_its_future() -> None:
    """zmq-anyio's usual form, ``Socket(ctx.socket(...))``: ``ctx.destroy()`` closes the plain
    socket under ours. The pending Future fails (ENOTSOCK) and a new socket that reuses the FD
    number works. (zmq-anyio 0.4.1 leaves the Future pending for ever, and the next socket's
    receive fails with BusyResourceError: its reader task still waits on the old FD.)
    """
    ctx: zmq.Context[Any] = zmq.Context()
    plain = ctx.socket(zmq.PULL)
    plain.bind("inproc://destroyed")
    fd = plain.FD
    with anyio.fail_after(10):
        async with zmq_anyio.Socket(plain) as sock:
            future = sock.arecv()
            await anyio.wait_all_tasks_blocked()
            # A loop iteration that polls: uvloop (libuv) applies a new reader registration
            # then, and aborts the process if the FD was closed before (pyzmq's too).
            await anyio.sleep(0.01)
            ctx.destroy(linger=0)
            await future.wait()
            assert future.status is anyio.Future.Status.FAILED
            assert _closed(future.exception)  # type: ignore[arg-type]
        ctx2: zmq.Context[Any] = zmq.Context()
        try:
            pull = ctx2.socket(zmq.PULL)
            pull.bind("inproc://next")
            push = ctx2.socket(zmq.PUSH)
            push.connect("inproc://next")
            reused = fd == pull.FD
            async with zmq_anyio.Socket(pull) as again:
                got = again.arecv()
                await anyio.wait_all_tasks_blocked()
                push.send(b"x")
                await got.wait()
                assert got.return_value == b"x"
        finally:
            ctx2.destroy(linger=0)
    assert reused  # the FD number was reused (else the test proves less)
