"""zmq_async.anyio under hostile conditions, on asyncio, asyncio+uvloop and trio.

Cancellation storms, close and context destroy with pending operations, thread misuse, many
idle sockets, and the trio-specific wait-style rules (one watcher per FD, hand-off).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import zmq

import zmq_async.anyio as za


def _is_closed_error(exc: BaseException) -> bool:
    return isinstance(exc, zmq.ZMQError) and exc.errno == zmq.ENOTSOCK


# -- cancellation never loses a message ----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["recv", "recv_multipart", "recv_json", "poll_then_recv"])
async def test_cancellation_storm_loses_no_message(apair: Any, kind: str) -> None:
    """Receivers cancelled at random moments by scopes: every message is received exactly once."""
    pull, push = apair()
    n_msgs = 400
    rng = random.Random(7)
    got: list[int] = []
    cancelled = 0

    async def receive_one() -> int:
        if kind == "recv":
            return int(await pull.recv())
        if kind == "recv_multipart":
            return int((await pull.recv_multipart())[1])
        if kind == "recv_json":
            return int(await pull.recv_json())
        await pull.poll()
        return int(await pull.recv())

    async def receiver() -> None:
        nonlocal cancelled
        while len(got) < n_msgs:
            with anyio.move_on_after(rng.choice([0, 0.0001, 0.001, 0.01])) as scope:
                got.append(await receive_one())
            cancelled += scope.cancelled_caught

    async def sender() -> None:
        for i in range(n_msgs):
            if kind == "recv_multipart":
                await push.send_multipart([b"n", b"%d" % i])
            elif kind == "recv_json":
                await push.send_json(i)
            else:
                await push.send(b"%d" % i)
            if i % 7 == 0:
                await anyio.sleep(0.0005)

    with anyio.fail_after(40):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(receiver)
            tg.start_soon(sender)
    assert sorted(got) == list(range(n_msgs))
    assert cancelled > 0  # the storm did cancel receives


@pytest.mark.anyio
async def test_fail_after_leaves_the_socket_usable(apair: Any) -> None:
    pull, push = apair()
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await pull.recv()
    with anyio.fail_after(10):
        await push.send(b"next")
        assert await pull.recv() == b"next"


@pytest.mark.anyio
async def test_cancelled_sender_sends_nothing(actx: za.Context) -> None:
    push = actx.socket(zmq.PUSH)  # no peer yet: sends block
    with anyio.move_on_after(0.05) as scope:
        await push.send(b"never")
    assert scope.cancelled_caught
    pull = actx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    with anyio.fail_after(10):
        await push.send(b"sent")
        assert await pull.recv() == b"sent"
        assert await pull.poll(100) == 0  # the cancelled send sent nothing


# -- close and destroy with pending operations ------------------------------------------------


async def _pending_then(
    sock_ops: list[Callable[[], Any]], act: Callable[[], None]
) -> list[BaseException | None]:
    """Start every op, wait until all block, ``act()``; return how each ended (promptly)."""
    outcomes: list[BaseException | None] = []

    async def run(op: Callable[[], Any]) -> None:
        try:
            await op()
        except Exception as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for op in sock_ops:
                tg.start_soon(run, op)
            await anyio.wait_all_tasks_blocked()
            act()
    return outcomes


@pytest.mark.anyio
async def test_close_fails_pending_receivers_senders_and_polls(actx: za.Context) -> None:
    pull = actx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = actx.socket(zmq.PUSH)
    poller = za.Poller()
    poller.register(pull, zmq.POLLIN)
    both = za.Poller()  # on trio, a poll over two FDs has a helper task: it must end too
    both.register(pull, zmq.POLLIN)
    both.register(push, zmq.POLLOUT)
    ops = [pull.recv, pull.recv_multipart, pull.poll, poller.poll, both.poll] * 3
    ops += [lambda: push.send(b"x")] * 3

    def close_both() -> None:
        pull.close()
        push.close()

    outcomes = await _pending_then(ops, close_both)
    assert len(outcomes) == len(ops)
    assert all(exc is not None and _is_closed_error(exc) for exc in outcomes), outcomes


@pytest.mark.anyio
async def test_context_destroy_fails_pending_operations(actx: za.Context) -> None:
    pull = actx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    push = actx.socket(zmq.PUSH)
    ops = [pull.recv, pull.poll, lambda: push.send(b"x")] * 4
    outcomes = await _pending_then(ops, lambda: actx.destroy(linger=0))
    assert len(outcomes) == len(ops)
    assert all(exc is not None and _is_closed_error(exc) for exc in outcomes), outcomes
    with pytest.raises(zmq.ZMQError):
        await pull.recv()


@pytest.mark.anyio
async def test_context_term_from_another_thread_fails_pending_operations_with_eterm(
    actx: za.Context,
) -> None:
    pull = actx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    errors: list[int] = []

    async def receive() -> None:
        try:
            await pull.recv()
        except zmq.ZMQError as exc:
            errors.append(exc.errno)
            pull.close()  # lets term() finish

    term = threading.Thread(target=actx.term)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            term.start()
        await anyio.to_thread.run_sync(term.join, 5)
    assert errors == [zmq.ETERM]
    assert not term.is_alive()


@pytest.mark.anyio
async def test_closing_one_socket_leaves_a_poll_on_others_working(apair: Any) -> None:
    pull, push = apair()
    other = push.context.socket(zmq.PULL)
    other.bind("tcp://127.0.0.1:*")
    poller = za.Poller()
    poller.register(pull, zmq.POLLIN)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_recv_until_closed, other)
            await anyio.wait_all_tasks_blocked()
            other.close()
        await push.send(b"x")
        assert await poller.poll(5000) == [(pull, zmq.POLLIN)]


async def _recv_until_closed(sock: za.Socket) -> None:
    with pytest.raises(zmq.ZMQError) as info:
        await sock.recv()
    assert _is_closed_error(info.value)


# -- threads and loops -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_use_from_another_thread_fails_clearly(apair: Any) -> None:
    pull, push = apair()
    await push.send(b"bind me")  # binds push to this run
    assert await pull.recv() == b"bind me"
    errors: list[BaseException] = []

    def other_thread() -> None:
        for backend in ("asyncio", "trio"):
            try:
                anyio.run(push.send, b"x", backend=backend)
            except RuntimeError as exc:
                errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    while thread.is_alive():
        await anyio.sleep(0.01)  # keep our loop running (and serving) meanwhile
    assert len(errors) == 2
    assert all("another thread" in str(exc) for exc in errors)
    with anyio.fail_after(10):
        await push.send(b"still mine")
        assert await pull.recv() == b"still mine"


def test_use_outside_any_loop_fails_clearly(actx: za.Context) -> None:
    sock = actx.socket(zmq.PUSH)
    with pytest.raises(RuntimeError, match="anyio event loop"):
        sock.send(b"x").send(None)


@pytest.mark.anyio
async def test_close_from_another_thread_happens_in_the_loop(apair: Any) -> None:
    pull, _ = apair()
    outcome: list[BaseException] = []

    async def receive() -> None:
        try:
            await pull.recv()
        except zmq.ZMQError as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            await anyio.to_thread.run_sync(pull.close)
    assert len(outcome) == 1 and _is_closed_error(outcome[0])
    assert pull.closed


# -- scale -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_many_idle_sockets_do_not_starve_an_active_one(apair: Any, actx: za.Context) -> None:
    idle = [actx.socket(zmq.PULL) for _ in range(300)]
    for sock in idle:
        sock.bind("tcp://127.0.0.1:*")
    pull, push = apair()
    threads_before = threading.active_count()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for sock in idle:
                tg.start_soon(sock.recv)
            await anyio.wait_all_tasks_blocked()
            # no thread per socket (one of an earlier test's may have ended meanwhile)
            assert threading.active_count() <= threads_before
            start = anyio.current_time()
            for i in range(500):
                await push.send(b"%d" % i)
                assert await pull.recv() == b"%d" % i
            elapsed = anyio.current_time() - start
            tg.cancel_scope.cancel()
    assert elapsed < 10


@pytest.mark.anyio
async def test_idle_waiting_sockets_cost_no_cpu(actx: za.Context) -> None:
    """50 SUBs each with a pending recv on an idle PUB: the process stays asleep.

    Measures a real second of idleness (the sleep is the measurement, not synchronization).
    """
    pub = actx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    subs = [actx.socket(zmq.SUB) for _ in range(50)]
    for sub in subs:
        sub.subscribe(b"")
        sub.connect(f"tcp://127.0.0.1:{port}")
    got: list[bytes] = []

    async def receive(sub: za.Socket) -> None:
        got.append(await sub.recv())

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for sub in subs:
                tg.start_soon(receive, sub)
            await anyio.sleep(0.2)  # let the connections settle
            cpu, wall = time.process_time(), time.perf_counter()
            await anyio.sleep(1.0)
            used = (time.process_time() - cpu) / (time.perf_counter() - wall)
            assert used < 0.05, f"{used:.3f} s of CPU per idle second"
            assert got == []
            await pub.send(b"wake")
    assert got == [b"wake"] * 50


# -- trio: the wait-style rules ----------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", [pytest.param(("trio", {}), id="trio")])
@pytest.mark.anyio
async def test_trio_one_watcher_per_fd_others_parked(apair: Any) -> None:
    from zmq_async.anyio._driver import TrioDriver

    pull, push = apair()
    got: list[bytes] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(lambda: _append(got, pull.recv()))
            await anyio.wait_all_tasks_blocked()
            driver = pull._trio_driver
            assert isinstance(driver, TrioDriver)
            key = (pull._reactor.fd, False)
            assert driver._watchers[key] is not None
            assert len(driver._parked[key]) == 19  # trio allows one task per FD: one watches
            for i in range(20):
                await push.send(b"%d" % i)
    assert sorted(got) == sorted(b"%d" % i for i in range(20))


@pytest.mark.parametrize("anyio_backend", [pytest.param(("trio", {}), id="trio")])
@pytest.mark.anyio
async def test_trio_cancelled_watcher_hands_its_role_on(apair: Any) -> None:
    pull, push = apair()
    got: list[bytes] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            first = anyio.CancelScope()
            tg.start_soon(_cancellable_recv, first, pull, got)
            await anyio.wait_all_tasks_blocked()
            driver = pull._trio_driver
            key = (pull._reactor.fd, False)
            watcher = driver._watchers[key]
            for _ in range(3):
                tg.start_soon(lambda: _append(got, pull.recv()))
            await anyio.wait_all_tasks_blocked()
            assert driver._watchers[key] is watcher
            first.cancel()  # the watcher goes: a parked task must take over
            await anyio.wait_all_tasks_blocked()
            assert driver._watchers[key] is not watcher
            for i in range(3):
                await push.send(b"%d" % i)
    assert sorted(got) == [b"0", b"1", b"2"]


@pytest.mark.anyio
async def test_a_short_timeout_behind_a_long_wait_fires_on_time(apair: Any) -> None:
    """A deadline added while another task already waits (trio: watches) is honoured."""
    pull, push = apair()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pull.recv)  # waits with no deadline
            await anyio.sleep(0.8)  # the reactor's re-check timer has backed off by now
            pull.rcvtimeo = 50
            start = anyio.current_time()
            with pytest.raises(zmq.Again):
                await pull.recv()
            assert anyio.current_time() - start < 0.3
            pull.rcvtimeo = -1
            await push.send(b"for the first")
    assert await pull.poll(0) == 0


async def _append(into: list[bytes], awaitable: Any) -> None:
    into.append(await awaitable)


async def _cancellable_recv(scope: anyio.CancelScope, sock: za.Socket, into: list[bytes]) -> None:
    with scope:
        into.append(await sock.recv())


# -- errors are not swallowed -------------------------------------------------------------------


@pytest.mark.anyio
async def test_errors_reach_the_caller(apair: Any) -> None:
    pull, push = apair()
    with anyio.fail_after(10):
        with pytest.raises(TypeError):
            await push.send_multipart([b"ok", object()])
        with pytest.raises(IndexError):
            await push.send_multipart([])
        await push.send(b"{not json")
        with pytest.raises(ValueError):
            await pull.recv_json()
        await push.send(b"fine")
        assert await pull.recv() == b"fine"
        with pytest.raises(zmq.ZMQError):
            await pull.send(b"PULL cannot send")
