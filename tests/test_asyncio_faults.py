"""Behaviour of ``zmq_async.asyncio`` under faults: cancellation, close, lost wakeups, leaks.

These are the places where ``zmq.asyncio`` users get hurt: a cancelled ``recv`` that eats
a message, a close that leaves awaiters hanging, an edge-triggered FD whose edge was
consumed by someone else, timers and futures piling up. Every wait is bounded: a hang is a
failure, never a stuck suite.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import zmq

import zmq_async.asyncio

WAIT = 5.0
LOOPBACK = "tcp://127.0.0.1"

# Every recv form, with how to send a message for it and what it then returns.
RECV_FORMS: dict[
    str, tuple[Callable[..., Awaitable[Any]], Callable[..., Any], Callable[[int], Any]]
] = {
    # name: (send(push, i), recv(pull), expected(i))
    "recv": (
        lambda push, i: push.send(b"%d" % i),
        lambda pull: pull.recv(),
        lambda i: b"%d" % i,
    ),
    "recv_multipart": (
        lambda push, i: push.send_multipart([b"m", b"%d" % i]),
        lambda pull: pull.recv_multipart(),
        lambda i: [b"m", b"%d" % i],
    ),
    "recv_json": (
        lambda push, i: push.send_json({"i": i}),
        lambda pull: pull.recv_json(),
        lambda i: {"i": i},
    ),
    "recv_string": (
        lambda push, i: push.send_string(f"s{i}"),
        lambda pull: pull.recv_string(),
        lambda i: f"s{i}",
    ),
    "recv_pyobj": (
        lambda push, i: push.send_pyobj(("p", i)),
        lambda pull: pull.recv_pyobj(),
        lambda i: ("p", i),
    ),
    "recv_serialized": (
        lambda push, i: push.send_serialized(i, lambda n: [b"z", json.dumps(n).encode()]),
        lambda pull: pull.recv_serialized(lambda frames: json.loads(frames[1])),
        lambda i: i,
    ),
}


async def wait_readable(sock: Any) -> None:
    """Wait (bounded) until ``sock`` has a message, without taking it."""
    assert await asyncio.wait_for(sock.poll(), WAIT) & zmq.POLLIN


async def warm_up(push: Any, pull: Any) -> None:
    """One round trip, so both sockets are registered with the running loop already."""
    await asyncio.wait_for(push.send(b"warm-up"), WAIT)
    assert await asyncio.wait_for(pull.recv(), WAIT) == b"warm-up"


def wait_until(condition: Callable[[], Any], timeout: float = WAIT) -> None:
    """Spin *without yielding to the loop* until ``condition()``; fail after ``timeout``.

    Used to provoke lost wakeups: the reactor must not get a chance to run in between.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.001)


def on_uvloop() -> bool:
    """Whether the test runs on uvloop (which has no selector or timer heap to inspect)."""
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


# =============================================================================================
# Cancellation never loses a message
# =============================================================================================


@pytest.mark.asyncio
@pytest.mark.timeout(10)
class TestCancellationLosesNothing:
    @pytest.mark.parametrize("form", list(RECV_FORMS))
    async def test_cancelled_pending_recv_consumes_nothing(self, pair: Any, form: str) -> None:
        push, pull = pair
        send, recv, expected = RECV_FORMS[form]

        fut = recv(pull)
        assert not fut.done()
        assert fut.cancel()
        await send(push, 1)
        assert await asyncio.wait_for(recv(pull), WAIT) == expected(1)

    @pytest.mark.parametrize("form", list(RECV_FORMS))
    async def test_cancelling_a_recv_whose_message_is_there_loses_nothing(
        self, pair: Any, form: str
    ) -> None:
        """Either the future already holds the message, or the socket still does.

        (pyzmq's recv_json/recv_string/recv_pyobj/recv_serialized drop it here.)
        """
        push, pull = pair
        send, recv, expected = RECV_FORMS[form]

        await send(push, 7)
        await wait_readable(pull)
        fut = recv(pull)
        if fut.cancel():
            assert await asyncio.wait_for(recv(pull), WAIT) == expected(7)
        else:
            assert fut.result() == expected(7)

    async def test_cancelled_task_awaiting_recv_consumes_nothing(self, pair: Any) -> None:
        push, pull = pair

        started = asyncio.Event()

        async def consumer() -> bytes:
            fut = pull.recv()
            started.set()
            return await fut  # type: ignore[no-any-return]

        task = asyncio.create_task(consumer())
        await asyncio.wait_for(started.wait(), WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        await push.send(b"kept")
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"kept"

    async def test_cancelled_waiter_in_the_middle_of_the_queue_is_skipped(self, pair: Any) -> None:
        push, pull = pair

        first, middle, last = pull.recv(), pull.recv(), pull.recv()
        middle.cancel()
        await push.send(b"1")
        await push.send(b"2")
        assert await asyncio.wait_for(asyncio.gather(first, last), WAIT) == [b"1", b"2"]
        assert middle.cancelled()

    async def test_cancelled_pending_send_is_never_sent(self, ctx: Any) -> None:
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK)
        push = ctx.socket(zmq.PUSH)  # no peer yet: sends queue

        fut = push.send(b"cancelled")
        assert not fut.done()
        fut.cancel()
        push.connect(f"{LOOPBACK}:{port}")
        await asyncio.wait_for(push.send(b"after"), WAIT)
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"after"
        assert await pull.poll(100) == 0

    @pytest.mark.parametrize("form", ["recv", "recv_multipart", "recv_json", "recv_string"])
    @pytest.mark.timeout(15)
    async def test_cancellation_storm_delivers_every_message_exactly_once(
        self, pair: Any, form: str
    ) -> None:
        """Receivers keep timing out (= cancelling) while messages stream in."""
        push, pull = pair
        send, recv, expected = RECV_FORMS[form]
        total, receivers = 400, 20
        timeouts = itertools.cycle([0.0005, 0.001, 0.002, 0.003])

        received: list[Any] = []
        cancelled = 0
        all_in = asyncio.Event()

        async def receiver() -> None:
            nonlocal cancelled
            while not all_in.is_set():
                try:
                    msg = await asyncio.wait_for(recv(pull), next(timeouts))
                except asyncio.TimeoutError:
                    cancelled += 1
                    continue
                received.append(msg)
                if len(received) >= total:
                    all_in.set()

        async def sender() -> None:
            for i in range(total):
                await send(push, i)
                if i % 8 == 0:
                    await asyncio.sleep(0.001)  # pace it, so timeouts hit mid-stream

        tasks = [asyncio.create_task(receiver()) for _ in range(receivers)]
        await asyncio.wait_for(sender(), WAIT)
        try:
            await asyncio.wait_for(all_in.wait(), WAIT)
        finally:
            all_in.set()
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        keys = sorted(json.dumps(m, sort_keys=True, default=repr) for m in received)
        wanted = sorted(json.dumps(expected(i), sort_keys=True, default=repr) for i in range(total))
        assert len(received) == total
        assert keys == wanted
        assert cancelled > 0  # the storm did cancel receives
        with pytest.raises(zmq.Again):
            await pull.recv(zmq.DONTWAIT)  # and nothing is left over


# =============================================================================================
# Close with pending operations
# =============================================================================================


@pytest.mark.asyncio
@pytest.mark.timeout(10)
class TestCloseWithPendingOperations:
    async def test_close_cancels_pending_recv_and_send_at_once(self, pair: Any, ctx: Any) -> None:
        _push, pull = pair
        lonely = ctx.socket(zmq.PUSH)  # no peer: its sends stay pending

        recvs = [pull.recv(), pull.recv_multipart()]
        sends = [lonely.send(b"x"), lonely.send_multipart([b"y", b"z"])]
        assert not any(f.done() for f in recvs + sends)
        pull.close()
        lonely.close()
        assert all(f.cancelled() for f in recvs + sends)
        for fut in recvs + sends:
            with pytest.raises(asyncio.CancelledError):
                await fut

    @pytest.mark.parametrize(
        "form", ["recv_json", "recv_string", "recv_pyobj", "recv_serialized", "recv_into"]
    )
    async def test_close_cancels_every_recv_form(self, pair: Any, form: str) -> None:
        _push, pull = pair

        recv = RECV_FORMS[form][1] if form in RECV_FORMS else lambda s: s.recv_into(bytearray(8))
        fut = recv(pull)
        pull.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(fut, 2)

    async def test_close_cancels_pending_poll(self, pair: Any) -> None:
        _push, pull = pair

        fut = pull.poll()
        assert not fut.done()
        pull.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(fut, 2)

    async def test_close_ends_a_task_awaiting_recv(self, pair: Any) -> None:
        _push, pull = pair

        started = asyncio.Event()

        async def consumer() -> None:
            fut = pull.recv()
            started.set()
            await fut

        task = asyncio.create_task(consumer())
        await asyncio.wait_for(started.wait(), WAIT)
        pull.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)

    async def test_closing_a_polled_socket_ends_the_poller_poll(self, pair: Any) -> None:
        """The peer cancels it. (A blocking zmq.Poller reports a bogus ``(0, POLLIN)``.)"""
        _push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        fut = poller.poll()
        pull.close()
        assert fut.cancelled()
        # polling it again is a clear error, not pyzmq's made-up (0, POLLIN)
        with pytest.raises(zmq.ZMQError) as info:
            await asyncio.wait_for(poller.poll(10), 2)
        assert info.value.errno == zmq.ENOTSOCK

    async def test_context_destroy_cancels_pending_operations(self, pair: Any, ctx: Any) -> None:
        _push, pull = pair
        lonely = ctx.socket(zmq.PUSH)

        recv, send, poll = pull.recv(), lonely.send(b"x"), pull.poll()
        ctx.destroy(linger=0)
        assert recv.cancelled()
        assert send.cancelled()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(poll, 2)
        assert pull.closed and lonely.closed

    async def test_close_from_a_done_callback_of_its_own_recv(self, pair: Any) -> None:
        """Re-entrant close while the reactor is delivering: the next waiter is cancelled."""
        push, pull = pair

        first, second = pull.recv(), pull.recv()
        first.add_done_callback(lambda _: pull.close())
        await push.send(b"only")
        assert await asyncio.wait_for(first, WAIT) == b"only"
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(second, 2)
        assert pull.closed

    async def test_poll_after_close_raises_zmq_error(self, pair: Any) -> None:
        _push, pull = pair

        await pull.poll(0)
        pull.close()
        with pytest.raises(zmq.ZMQError):
            await pull.poll()
        with pytest.raises(zmq.ZMQError):
            await pull.poll(10)

    @pytest.mark.parametrize("method", ["recv", "recv_multipart", "send", "send_multipart"])
    async def test_io_after_close_raises_enotsock(self, pair: Any, method: str) -> None:
        push, pull = pair
        sock = pull if method.startswith("recv") else push

        await warm_up(push, pull)
        sock.close()
        args: tuple[Any, ...] = ()
        if method == "send":
            args = (b"x",)
        elif method == "send_multipart":
            args = ([b"x"],)
        with pytest.raises(zmq.ZMQError) as info:
            await asyncio.wait_for(getattr(sock, method)(*args), 2)
        assert info.value.errno == zmq.ENOTSOCK

    async def test_close_unregisters_the_fd_from_the_loop(self, pair: Any) -> None:
        if on_uvloop():
            pytest.skip("inspects the default loop's selector")
        _push, pull = pair
        fd = pull.FD
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        fut = pull.recv()
        assert fd in selector.get_map(), "a pending recv should watch the socket's FD"
        pull.close()
        assert fut.cancelled()
        assert fd not in selector.get_map()

    async def test_new_socket_reusing_a_closed_fd_number_works(self, pair: Any, ctx: Any) -> None:
        """The OS reuses FD numbers: a stale registration must not hijack the new socket."""
        _push, pull = pair

        pull.recv()  # registered, pending
        pull.close()
        for _ in range(3):
            new_pull = ctx.socket(zmq.PULL)
            port = new_pull.bind_to_random_port(LOOPBACK)
            new_push = ctx.socket(zmq.PUSH)
            new_push.connect(f"{LOOPBACK}:{port}")
            fut = new_pull.recv()
            await new_push.send(b"fresh")
            assert await asyncio.wait_for(fut, WAIT) == b"fresh"
            pending = new_pull.recv()
            new_pull.close()
            new_push.close()
            assert pending.cancelled()


class TestLoopClosedUnderPendingOperations:
    """Explicit loops: each test closes one under a pending recv; the plugin's outlives a test."""

    def test_close_after_its_loop_closed_is_quiet(self, new_loop: Any, pair: Any) -> None:
        push, pull = pair

        async def leave_pending() -> Any:
            await warm_up(push, pull)
            return pull.recv()  # never awaited; its loop closes under it

        loop = new_loop()
        try:
            fut = loop.run_until_complete(leave_pending())
        finally:
            loop.close()
        assert not fut.done()
        pull.close()  # must neither raise nor hang
        push.close()
        assert pull.closed

    def test_recv_left_pending_in_a_closed_loop_does_not_swallow_messages(
        self, new_loop: Any, pair: Any
    ) -> None:
        """A future of a closed loop can never be awaited: delivering to it loses data."""
        push, pull = pair

        async def leave_pending() -> Any:
            await warm_up(push, pull)
            return pull.recv()

        async def use_again() -> bytes:
            fut = pull.recv()
            await push.send(b"for the new loop")
            return await asyncio.wait_for(fut, WAIT)  # type: ignore[no-any-return]

        first = new_loop()
        try:
            first.run_until_complete(leave_pending())
        finally:
            first.close()
        second = new_loop()
        try:
            assert second.run_until_complete(use_again()) == b"for the new loop"
        finally:
            second.close()


# =============================================================================================
# Lost wakeups: someone else consumed the FD's edge
# =============================================================================================


@pytest.mark.asyncio
@pytest.mark.timeout(10)
class TestLostWakeups:
    @pytest.mark.parametrize("how", ["get", "getsockopt", "events_attribute"])
    async def test_reading_events_does_not_strand_a_pending_recv(self, pair: Any, how: str) -> None:
        push, pull = pair
        read_events = {
            "get": lambda: pull.get(zmq.EVENTS),
            "getsockopt": lambda: pull.getsockopt(zmq.EVENTS),
            "events_attribute": lambda: pull.events,
        }[how]

        await warm_up(push, pull)
        fut = pull.recv()
        await push.send(b"edge")
        wait_until(lambda: fut.done() or read_events() & zmq.POLLIN)
        # That read consumed the FD's edge; the socket must notice at once (within a
        # couple of loop turns), not only when its slow re-check timer fires.
        for _ in range(3):
            await asyncio.sleep(0)
        assert fut.done()
        assert fut.result() == b"edge"

    async def test_reading_events_does_not_strand_a_pending_poll(self, pair: Any) -> None:
        push, pull = pair

        await warm_up(push, pull)
        fut = pull.poll()
        await push.send(b"edge")
        wait_until(lambda: fut.done() or pull.get(zmq.EVENTS) & zmq.POLLIN)
        assert await asyncio.wait_for(fut, WAIT) == zmq.POLLIN

    @pytest.mark.parametrize("how", ["shadow_poll", "sync_poller"])
    async def test_polling_a_shadow_does_not_strand_a_pending_recv(
        self, pair: Any, how: str
    ) -> None:
        """A blocking shadow of the same libzmq socket consumes the edge behind our back."""
        push, pull = pair
        shadow = zmq.Socket.shadow(pull.underlying)
        if how == "shadow_poll":

            def readable() -> bool:
                return bool(shadow.poll(0) & zmq.POLLIN)

        else:
            poller = zmq.Poller()
            poller.register(shadow, zmq.POLLIN)

            def readable() -> bool:
                return bool(poller.poll(0))

        await warm_up(push, pull)
        fut = pull.recv()
        await push.send(b"behind your back")
        wait_until(lambda: fut.done() or readable())
        assert await asyncio.wait_for(fut, WAIT) == b"behind your back"

    async def test_reading_events_does_not_strand_a_pending_send(self, socket_pair: Any) -> None:
        """The writable edge, too: a send blocked by the HWM must resume."""
        opts = {zmq.SNDHWM: 1, zmq.RCVHWM: 1}
        pull, push = socket_pair(
            zmq.PULL, zmq.PUSH, transport="inproc", bind_opts=opts, connect_opts=opts
        )
        shadow_pull = zmq.Socket.shadow(pull.underlying)

        sent = 0
        while (fut := push.send(b"%d" % sent)).done():
            fut.result()
            sent += 1
            assert sent < 100, "the HWM never pushed back"
        # fut is blocked on the HWM; drain behind the reactor's back, then read EVENTS
        drained = [shadow_pull.recv(zmq.NOBLOCK) for _ in range(sent)]
        assert drained == [b"%d" % i for i in range(sent)]
        wait_until(lambda: fut.done() or push.get(zmq.EVENTS) & zmq.POLLOUT)
        await asyncio.wait_for(fut, WAIT)
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"%d" % sent

    async def test_dealer_pending_recv_survives_many_sends_to_a_router_echo(
        self, socket_pair: Any
    ) -> None:
        """Sending on the socket processes its commands (and its edge) while a recv waits."""
        router, dealer = socket_pair(zmq.ROUTER, zmq.DEALER)
        total = 1000

        async def echo() -> None:
            while True:
                await router.send_multipart(await router.recv_multipart())

        async def collect() -> list[list[bytes]]:
            return [await dealer.recv_multipart() for _ in range(total)]

        async def request() -> None:
            for i in range(total):
                await dealer.send_multipart([b"req", b"%d" % i])

        echoing = asyncio.create_task(echo())
        collecting = asyncio.create_task(collect())
        try:
            await asyncio.wait_for(request(), WAIT)
            replies = await asyncio.wait_for(collecting, WAIT)
        finally:
            echoing.cancel()
            collecting.cancel()
        assert replies == [[b"req", b"%d" % i] for i in range(total)]

    async def test_sync_recv_on_a_shadow_then_async_recv(self, pair: Any) -> None:
        """Mixing blocking access (via a shadow) and async access keeps both consistent."""
        push, pull = pair
        shadow = zmq.Socket.shadow(pull.underlying)

        await warm_up(push, pull)
        await push.send(b"sync")
        await push.send(b"async")
        wait_until(lambda: shadow.poll(0) & zmq.POLLIN)
        assert shadow.recv(zmq.NOBLOCK) == b"sync"
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"async"
        fut = pull.recv()
        await push.send(b"later")
        assert await asyncio.wait_for(fut, WAIT) == b"later"


# =============================================================================================
# Resource hygiene: nothing piles up
# =============================================================================================

TIMER_SLACK = 10  # handles the test itself may hold (its own wait_for, sleeps, ...)
# Healthy runs grow by 20-160 KB (this library and pyzmq alike); one leaked Future per
# operation would add ~800 KB over 5,000 operations, so 512 KB is generous but still bites.
MEMORY_SLACK = 512 * 1024
ROUNDS, BATCH = 100, 50  # 5,000 operations, 50 at a time


async def settle_timers() -> None:
    """On the default loop, wait (bounded) until the scheduled timers drain, and check it."""
    if on_uvloop():
        return
    loop = asyncio.get_running_loop()
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2.0
    while len(scheduled) > TIMER_SLACK and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # let the expired timers pass
    assert len(scheduled) <= TIMER_SLACK, f"{len(scheduled)} timers left on the loop"


class MemoryGrowth:
    """Traced memory growth between ``start()`` and ``stop()``, after a full collection."""

    def start(self) -> None:
        gc.collect()
        tracemalloc.start()
        self.before = tracemalloc.get_traced_memory()[0]

    def stop(self) -> int:
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return after - self.before


async def assert_rounds_leave_nothing(batch: Callable[[], Awaitable[None]]) -> None:
    """Run ``batch`` once to warm caches, then ROUNDS times: memory must not grow."""
    await batch()
    memory = MemoryGrowth()
    memory.start()
    try:
        for _ in range(ROUNDS):
            await batch()
        await settle_timers()
    finally:
        growth = memory.stop()
    assert growth < MEMORY_SLACK, f"memory grew by {growth} bytes"


@pytest.mark.asyncio
@pytest.mark.timeout(60)
class TestResourceHygiene:
    @pytest.mark.parametrize("style", ["rcvtimeo", "wait_for"])
    async def test_timed_out_receives_leave_nothing_behind(self, pair: Any, style: str) -> None:
        push, pull = pair

        async def batch() -> None:
            if style == "rcvtimeo":
                futs = [pull.recv() for _ in range(BATCH)]
            else:
                futs = [asyncio.wait_for(pull.recv(), 0.001) for _ in range(BATCH)]
            results = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), WAIT)
            expected = zmq.Again if style == "rcvtimeo" else asyncio.TimeoutError
            assert all(isinstance(r, expected) for r in results), results[:3]

        if style == "rcvtimeo":
            pull.rcvtimeo = 1
        await assert_rounds_leave_nothing(batch)
        pull.rcvtimeo = -1
        fut = pull.recv()
        await push.send(b"still works")
        assert await asyncio.wait_for(fut, WAIT) == b"still works"

    async def test_cancelled_socket_polls_leave_nothing_behind(self, pair: Any) -> None:
        push, pull = pair

        async def batch() -> None:
            futs = [pull.poll() for _ in range(BATCH)]
            for fut in futs:
                fut.cancel()
            results = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), WAIT)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)

        await assert_rounds_leave_nothing(batch)
        poll = pull.poll(WAIT * 1000)
        await push.send(b"still works")
        assert await asyncio.wait_for(poll, WAIT) == zmq.POLLIN
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"still works"

    async def test_short_poller_polls_leave_nothing_behind(self, pair: Any) -> None:
        push, pull = pair
        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)

        async def batch() -> None:
            results = await asyncio.wait_for(
                asyncio.gather(*(poller.poll(1) for _ in range(BATCH))), WAIT
            )
            assert results == [[]] * BATCH

        await assert_rounds_leave_nothing(batch)
        fut = poller.poll(WAIT * 1000)
        await push.send(b"still works")
        assert await asyncio.wait_for(fut, WAIT) == [(pull, zmq.POLLIN)]
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"still works"

    async def test_cancelled_receives_do_not_accumulate(self, pair: Any) -> None:
        """5,000 recvs cancelled before any message: the next message still goes to a live one."""
        push, pull = pair

        memory = MemoryGrowth()
        memory.start()
        try:
            for _ in range(ROUNDS):
                futs = [pull.recv() for _ in range(BATCH)]
                for fut in futs:
                    fut.cancel()
                await asyncio.gather(*futs, return_exceptions=True)
            await settle_timers()
        finally:
            growth = memory.stop()
        assert growth < MEMORY_SLACK, f"memory grew by {growth} bytes"
        fut = pull.recv()
        await push.send(b"live")
        assert await asyncio.wait_for(fut, WAIT) == b"live"


def test_a_loop_without_add_reader_gets_a_clear_error(ctx: Any) -> None:
    """Like Windows' proactor loop: no FD watching. The error says what to do."""

    class NoReaderLoop(asyncio.SelectorEventLoop):
        def add_reader(self, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError

    pull = ctx.socket(zmq.PULL)
    pull.bind_to_random_port("tcp://127.0.0.1")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="add_reader"):
            await asyncio.wait_for(pull.recv(), 5)
        assert not pull._reactor.recvq  # nothing left queued that could never complete

    loop = NoReaderLoop()  # a loop class of its own: not one of the plugin's loop factories
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_close_from_another_thread_cancels_pending_operations_on_the_loop(pair: Any) -> None:
    """The close is handed to the loop's thread, which releases the waiters and unregisters
    the FD before closing it (uvloop aborts the process if a watched FD is closed under it)."""
    _push, pull = pair

    pending = pull.recv()
    closer = threading.Thread(target=pull.close, kwargs={"linger": 0})
    closer.start()
    closer.join(WAIT)
    assert not closer.is_alive()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pending, WAIT)
    assert pull.closed


@pytest.mark.timeout(10)
@pytest.mark.asyncio
async def test_idle_waiting_sockets_cost_no_cpu(ctx: Any) -> None:
    """50 SUBs each with a pending recv on an idle PUB: the process stays asleep.

    Measures a real second of idleness (the sleep is the measurement, not synchronization).
    """
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    subs = []
    for _ in range(50):
        sub = ctx.socket(zmq.SUB)
        sub.subscribe(b"")
        sub.connect(f"tcp://127.0.0.1:{port}")
        subs.append(sub)

    pending = [sub.recv() for sub in subs]
    await asyncio.sleep(0.2)  # let the connections settle
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(1.0)
    used = (time.process_time() - cpu) / (time.perf_counter() - wall)
    assert used < 0.05, f"{used:.3f} s of CPU per idle second"
    assert not any(fut.done() for fut in pending)
    await pub.send(b"wake")
    assert await asyncio.wait_for(asyncio.gather(*pending), WAIT) == [b"wake"] * 50
