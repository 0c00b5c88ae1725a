"""Round 18's review of round 17's library changes: each test replays a fault it found.

A queued receive's Future gives its message back to the socket when the task awaiting it
is cancelled in the tick it completes (tests/test_kept_s17.py). It must do so only when
no one gets the message: not when another task awaiting the same Future gets it, nor when
a user's ``fut.cancel()`` (not a task's cancel) meets a task that once swallowed a
cancellation. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

WAIT = 10.0
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def link(ctx: Any) -> Iterator[tuple[Any, zmq.Socket[Any]]]:
    """``ctx``'s PULL bound on loopback and a plain PUSH connected to it, closed after."""
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    sync_ctx: zmq.Context[Any] = zmq.Context()
    push = sync_ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    yield pull, push
    pull.close(linger=0)
    sync_ctx.destroy(linger=0)


async def no_more(pull: Any) -> None:
    """Nothing is left in ``pull``: no message was given back to arrive twice."""
    assert await pull.poll(100) == 0, await pull.recv_multipart()


@pytest.mark.asyncio
async def test_other_task_awaiting_the_receive_gets_it_and_nothing_goes_back(link: Any) -> None:
    """Two tasks await one receive's Future; one is cancelled in the tick it completes: the
    other gets the message, which must not also go back to the socket (a duplicate)."""
    pull, push = link
    fut = pull.recv()

    async def settled() -> Any:
        return await fut

    cancelled, other = asyncio.ensure_future(settled()), asyncio.ensure_future(settled())
    # Added before the tasks await: runs before their wake-ups, in the completing tick.
    fut.add_done_callback(lambda _: cancelled.cancel())
    await asyncio.sleep(0)
    push.send(b"m")
    assert await asyncio.wait_for(other, WAIT) == b"m"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await no_more(pull)


@pytest.mark.asyncio
async def test_both_tasks_awaiting_the_receive_cancelled_give_it_back_once(link: Any) -> None:
    """Both tasks awaiting one receive's Future cancelled in the tick it completes: neither
    gets the message, so it goes back, once."""
    pull, push = link
    fut = pull.recv_multipart()

    async def settled() -> Any:
        return await fut

    tasks = [asyncio.ensure_future(settled()) for _ in range(2)]
    fut.add_done_callback(lambda _: [task.cancel() for task in tasks])
    await asyncio.sleep(0)
    push.send_multipart([b"a", b"b"])
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"a", b"b"]
    await no_more(pull)


@pytest.mark.asyncio
async def test_a_task_reading_its_given_back_receive_after_the_cancel_gets_no_copy(
    link: Any,
) -> None:
    """A task cancelled in the tick its receive completes catches the CancelledError and
    reads the Future (a salvage some programs try): the message went back to the socket, so
    the Future must not hand it out too (a duplicate); the next receive gets it, once."""
    pull, push = link
    fut = pull.recv()

    async def salvaging() -> Any:
        try:
            return await fut
        except asyncio.CancelledError:
            with pytest.raises(asyncio.CancelledError):
                fut.result()
            return "salvaged nothing"

    task = asyncio.ensure_future(salvaging())
    fut.add_done_callback(lambda _: task.cancel())
    await asyncio.sleep(0)
    push.send(b"m")
    assert await asyncio.wait_for(task, WAIT) == "salvaged nothing"
    assert await asyncio.wait_for(pull.recv(), WAIT) == b"m"
    await no_more(pull)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["recv", "recv_string"])
async def test_user_cancel_of_a_done_receive_awaited_by_a_task_that_swallowed_a_cancel(
    link: Any, kind: str
) -> None:
    """A task swallowed a cancellation earlier (no ``uncancel()``: its ``cancelling()``
    stays 1, as in much pre-3.11 code), then awaits a receive; a user's ``fut.cancel()``
    (a shutdown's, say) on that Future in the tick it completes returns False and the task
    gets the message: nothing may go back to the socket."""
    pull, push = link
    fut = getattr(pull, kind)()
    cancels: list[bool] = []
    fut.add_done_callback(lambda _: cancels.append(fut.cancel()))
    swallowed = asyncio.Event()

    async def receiver() -> Any:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: cancelling() stays 1
            await asyncio.sleep(WAIT)
        swallowed.set()
        return await fut

    task = asyncio.ensure_future(receiver())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(swallowed.wait(), WAIT)
    await asyncio.sleep(0)  # the task awaits the receive
    assert task.cancelling() == 1
    push.send(b"m")
    assert await asyncio.wait_for(task, WAIT) in (b"m", "m")
    assert cancels == [False]
    await no_more(pull)


async def cancelled_in_its_tick(fut: Any) -> asyncio.Task[Any]:
    """A task awaiting the queued receive ``fut`` is cancelled in the tick ``fut`` completes
    (before the task's wake-up); returned, it raises CancelledError."""

    async def settled() -> Any:
        return await fut

    task = asyncio.ensure_future(settled())
    fut.add_done_callback(lambda _: task.cancel())
    await asyncio.sleep(0)  # the task awaits the receive
    return task


@pytest.mark.asyncio
async def test_recv_into_cancelled_as_it_completes_gives_the_message_back(link: Any) -> None:
    """A queued ``recv_into()`` whose task is cancelled in the tick it completes: the message
    (the first frame of two) goes back, whole, as a ``recv()``'s does; it was lost (the peer
    loses it too)."""
    pull, push = link
    buffer = bytearray(8)
    fut = pull.recv_into(buffer)
    assert not fut.done()
    task = await cancelled_in_its_tick(fut)
    push.send_multipart([b"head", b"tail"])
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert bytes(buffer[:4]) == b"head"  # (received into it, as the peer does)
    again = bytearray(8)
    assert await asyncio.wait_for(pull.recv_into(again), WAIT) == 4
    assert bytes(again[:4]) == b"head"
    assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"tail"]
    await no_more(pull)


@pytest.mark.asyncio
async def test_queued_recv_into_a_bad_buffer_fails_at_once_and_takes_nothing(link: Any) -> None:
    """A ``recv_into()`` of a read-only buffer behind another receive fails with BufferError
    at once, as one that does not queue does, not once a message comes (or never); no
    message is taken for it."""
    pull, push = link
    first = pull.recv()
    bad = pull.recv_into(b"read-only")
    assert bad.done()  # it waited for a message, to fail then
    with pytest.raises(BufferError):
        bad.result()
    push.send(b"one")
    push.send(b"two")
    assert await asyncio.wait_for(first, WAIT) == b"one"
    assert await asyncio.wait_for(pull.recv(), WAIT) == b"two"
    await no_more(pull)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("end", ["handed to the loop", "left to the re-check"])
def test_shadow_waiting_in_another_threads_loop_never_reads_the_next_socket_made_there(
    end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shadow's receive waits in a loop running in another thread; its socket is closed in
    this thread, which may not touch that loop's watches, and a new socket gets the freed
    address (libzmq reuses it), then a message. The close is handed to that loop (its wait
    cancelled, as a close cancels it); for a driver that cannot be handed a call (as
    gevent's and eventlet's hubs in other threads) the loop's re-check must not read the new
    socket for the stale waiter (it waited on, and took the message): the waiter fails, by
    the re-check's bound, and the message is the new socket's."""
    import threading

    import zmq_async.asyncio
    from zmq_async.asyncio._driver import AsyncioDriver

    if end == "left to the re-check":
        monkeypatch.delattr(AsyncioDriver, "call_soon_threadsafe")

    ctx = zmq_async.asyncio.Context()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    held: list[Any] = []
    try:
        sock = ctx.socket(zmq.PULL)
        sock.bind("inproc://review-s18-stale-old")
        shadow = zmq_async.asyncio.Socket.shadow(sock.underlying)

        async def receive() -> Any:
            return await shadow.recv()

        waiting = asyncio.run_coroutine_threadsafe(receive(), loop)
        deadline = time.monotonic() + WAIT
        while not shadow._reactor.recvq:  # queued in the loop's thread
            assert time.monotonic() < deadline
            time.sleep(0.01)
        address = sock.underlying
        sock.close(linger=0)
        deadline = time.monotonic() + 3
        while True:  # until libzmq reuses the address (its reaper thread frees it soon)
            new = ctx.socket(zmq.PULL)
            held.append(new)
            if new.underlying == address:
                break
            if time.monotonic() > deadline:
                pytest.skip("libzmq did not reuse the freed socket's address")
            time.sleep(0.005)
        if end == "left to the re-check":
            with pytest.raises(zmq.ZMQError) as caught:
                waiting.result(WAIT)  # at the re-check (within its 2 s bound), message or not
            assert caught.value.errno == zmq.ENOTSOCK
        else:
            with pytest.raises(concurrent.futures.CancelledError):
                waiting.result(WAIT)
        new.bind("inproc://review-s18-stale-new")
        push = ctx.socket(zmq.PUSH)
        held.append(push)
        push.connect("inproc://review-s18-stale-new")
        zmq.Socket.shadow(push.underlying).send(b"for the new socket")
        plain: zmq.Socket[Any] = zmq.Socket.shadow(new.underlying)
        assert plain.poll(3000) == zmq.POLLIN
        assert plain.recv() == b"for the new socket"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        for s in held:
            s.close(linger=0)
        ctx.destroy(linger=0)
        loop.close()
