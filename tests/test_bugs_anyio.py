"""Fault scenarios drawn from real bug reports: zmq-anyio, anyio and trio with ZeroMQ, and the
pyzmq core misuse the async layers must survive.

Each test names the report it reduces (``owner/repo#N``) and replays the reported scenario
against zmq_async, on the layer the reporter used: anyio (on its asyncio and trio backends) or
asyncio. The list of reports and their status is in the project's notes
(``banyio-reports.md``). Every wait is bounded; the whole file runs in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import socket as stdlib_socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import zmq

import zmq_async.anyio as za
import zmq_async.asyncio as zaio
import zmq_async.zmq_anyio as zmq_anyio
from zmq_async._reactor import SWEEP_MIN

pytestmark = pytest.mark.timeout(30)

#: Bound on anything that should be prompt; generous for a loaded 2-core machine.
PROMPT = 5.0


@pytest.fixture(
    params=[pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("trio", {}), id="trio")]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """anyio tests here run on asyncio and trio (uvloop adds time and no scenario)."""
    return request.param


async def _outcomes_while(
    waits: list[Callable[[], Awaitable[Any]]],
    act: Callable[[list[Any]], Awaitable[None]],
) -> list[Any]:
    """Start each of ``waits`` in a task; once they wait, ``act(outcomes)``. Returns what
    ended each wait, in that order: its result, or the ZMQError it raised. Bounded by PROMPT.
    """
    outcomes: list[Any] = []

    async def wait(op: Callable[[], Awaitable[Any]]) -> None:
        try:
            outcomes.append(await op())
        except zmq.ZMQError as exc:
            outcomes.append(exc)

    with anyio.fail_after(PROMPT):
        async with anyio.create_task_group() as tg:
            for op in waits:
                tg.start_soon(wait, op)
            await anyio.sleep(0.05)
            await act(outcomes)
    return outcomes


def _queued(sock: Any) -> tuple[int, int]:
    """(live, held): the waiters the socket's reactor serves, and all it still holds (dead
    ones are swept lazily, so ``held`` stays under :data:`SWEEP_MIN` plus twice ``live``)."""
    reactor = getattr(sock, "_reactor", None)
    if reactor is None:
        return 0, 0
    held = [*reactor.recvq, *reactor.sendq, *reactor.pollq]
    return sum(not w.completion.done() for w in held), len(held)


def _no_leak(*socks: Any) -> bool:
    """No live waiter is left, and the dead ones held are bounded (not one per call)."""
    return all(_queued(s)[0] == 0 and _queued(s)[1] <= SWEEP_MIN for s in socks)


# -- lost wakeups: the edge-triggered FD ----------------------------------------------------


def _read_events_until_pollin(sock: Any) -> None:
    """Read EVENTS, as the reports' programs did, without letting the loop run: the read
    that shows POLLIN consumes the FD's edge before any dispatch could see it."""
    deadline = time.monotonic() + PROMPT
    while not sock.get(zmq.EVENTS) & zmq.POLLIN and time.monotonic() < deadline:
        time.sleep(0.001)


@pytest.mark.anyio
@pytest.mark.parametrize("reader", ["the socket", "a plain shadow"])
async def test_events_read_while_a_recv_waits_does_not_strand_it(apair: Any, reader: str) -> None:
    """zeromq/pyzmq#2173, aio-libs/aiozmq#157, oxen-io/oxen-mq#88: reading ``zmq.EVENTS``
    consumes the FD's edge; a receive pending meanwhile must still complete. Through a
    plain shadow, a touch we cannot see, it is served by the re-check (within its bound)."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    events_reader = pull if reader == "the socket" else zmq.Socket.shadow(pull.underlying)

    async def send_and_read_events(_: object) -> None:
        await push.send(b"x")
        _read_events_until_pollin(events_reader)

    assert await _outcomes_while([pull.recv], send_and_read_events) == [b"x"]


@pytest.mark.anyio
async def test_router_echo_with_sends_in_spawned_tasks_loses_nothing(apair: Any) -> None:
    """zeromq/pyzmq#1203 (and #1085, #1065, #1106): a ROUTER replies from spawned tasks while
    a DEALER sends and receives concurrently; receives stopped resolving after a while."""
    router, dealer = apair(zmq.ROUTER, zmq.DEALER)
    n = 1500
    replies: list[int] = []

    async def server(tg: Any) -> None:
        for _ in range(n):
            ident, msg = await router.recv_multipart()
            tg.start_soon(router.send_multipart, [ident, msg])

    async def client_recv() -> None:
        while len(replies) < n:
            replies.append(int(await dealer.recv()))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server, tg)
            tg.start_soon(client_recv)
            for i in range(n):
                await dealer.send(b"%d" % i)
    assert sorted(replies) == list(range(n))


@pytest.mark.anyio
async def test_inproc_receive_pending_before_the_peer_binds(actx: za.Context) -> None:
    """zeromq/libzmq#1434: ZMQ_FD with inproc signals only after pending commands are
    processed; a receive waiting before the binding peer exists must see its message."""
    addr = f"inproc://bugs-anyio-late-bind-{id(actx)}"
    pull = actx.socket(zmq.PULL)
    pull.connect(addr)

    async def bind_and_send(_: object) -> None:
        push = actx.socket(zmq.PUSH)
        push.bind(addr)
        await push.send(b"late")

    assert await _outcomes_while([pull.recv], bind_and_send) == [b"late"]


# -- cancellation and timeouts ----------------------------------------------------------------


@pytest.mark.anyio
async def test_rcvtimeo_racing_cancellation_loses_no_message(apair: Any) -> None:
    """zeromq/pyzmq#1925 and #918: ``recv_string`` with a tiny RCVTIMEO, cancelled as its
    timeout fires: no error is left unretrieved and no message is lost."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    pull.rcvtimeo = 1
    n = 200
    got: list[str] = []

    async def receiver() -> None:
        while len(got) < n:
            with anyio.move_on_after(0.001), contextlib.suppress(zmq.Again):
                got.append(await pull.recv_string())

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            for i in range(n):
                await push.send_string(str(i))
                if i % 10 == 0:
                    await anyio.sleep(0.002)
    assert sorted(got, key=int) == [str(i) for i in range(n)]


@pytest.mark.anyio
async def test_cancelled_polls_leave_no_waiter_behind(apair: Any) -> None:
    """zeromq/pyzmq#1888: polls cancelled before any event stayed in the socket's queue."""
    pull, _push = apair(zmq.PULL, zmq.PUSH)
    for _ in range(3 * SWEEP_MIN):
        with anyio.move_on_after(0):
            await pull.poll()
        with anyio.move_on_after(0.001):
            await pull.recv()
    await anyio.sleep(0.01)
    assert _no_leak(pull)


@pytest.mark.anyio
async def test_poller_timeouts_on_several_sockets_leave_no_waiter(apair: Any) -> None:
    """zeromq/pyzmq#968 and #1361: ``Poller.poll(timeout)`` over sockets whose events never
    arrive grew every socket's list of futures without bound."""
    a, _ = apair(zmq.PULL, zmq.PUSH)
    b, _ = apair(zmq.PULL, zmq.PUSH)
    poller = za.Poller()
    poller.register(a, zmq.POLLIN)
    poller.register(b, zmq.POLLIN)
    with anyio.fail_after(PROMPT):
        for _ in range(3 * SWEEP_MIN):
            assert await poller.poll(timeout=0.001) == []
    assert _no_leak(a, b)


@pytest.mark.anyio
async def test_rcvtimeo_timer_does_not_keep_the_received_message(apair: Any) -> None:
    """zeromq/pyzmq#1526: the RCVTIMEO timer of a receive that succeeded kept the received
    message alive until the timeout passed (big messages piled up)."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    pull.rcvtimeo = 60_000

    async def send(_: object) -> None:  # (the receive waits, with its timer)
        await push.send(b"big" * 1000)

    frames = await _outcomes_while([lambda: pull.recv(copy=False)], send)
    ref = weakref.ref(frames.pop())
    gc.collect()
    assert ref() is None


@pytest.mark.anyio
async def test_noblock_multipart_on_full_socket_is_atomic(apair: Any) -> None:
    """zeromq/pyzmq#104, #891, #921: ``send_multipart(flags=NOBLOCK)`` on a full socket raises
    ``zmq.Again`` at once and sends no part; ``recv_multipart(NOBLOCK)`` likewise."""
    pull, push = apair(zmq.PULL, zmq.PUSH, SNDHWM=1, RCVHWM=1)
    sent = 0
    with anyio.fail_after(PROMPT):
        with pytest.raises(zmq.Again):
            while True:
                await push.send_multipart([b"a", b"%d" % sent], flags=zmq.NOBLOCK)
                sent += 1
                if sent > 100_000:
                    break
        got = []
        while len(got) < sent:
            got.append(await pull.recv_multipart())
    assert got == [[b"a", b"%d" % i] for i in range(sent)]
    with pytest.raises(zmq.Again):
        await pull.recv_multipart(zmq.NOBLOCK)


# -- close, term and destroy with pending operations -------------------------------------------


@pytest.mark.anyio
async def test_close_while_poll_pending_ends_it_with_a_catchable_error(apair: Any) -> None:
    """zeromq/pyzmq#1305, #904: closing a socket while a task polls it raised an uncatchable
    error (or hung); the poll must end promptly with an error the task can catch."""
    pull, _ = apair(zmq.PULL, zmq.PUSH)

    async def close(_: object) -> None:
        pull.close()

    errors = await _outcomes_while([pull.poll], close)
    assert [e.errno for e in errors] == [zmq.ENOTSOCK]


@pytest.mark.anyio
async def test_closing_an_unregistered_socket_leaves_the_poller_working(apair: Any) -> None:
    """zeromq/pyzmq#1114: closing a socket (unregistered first) while a Poller polls broke
    the polling coroutine beyond catching. The poll in flight may end with a clear error
    (zmq_poll's own rule: a closed socket in the set), which the loop catches; the poller
    then serves the sockets still registered."""
    s1, _ = apair(zmq.PULL, zmq.PUSH)
    s2, push2 = apair(zmq.PULL, zmq.PUSH)
    poller = za.Poller()
    poller.register(s1, zmq.POLLIN)
    poller.register(s2, zmq.POLLIN)
    result: list[Any] = []

    async def poll_loop() -> None:
        while not result:
            try:
                result.extend(await poller.poll(timeout=PROMPT * 1000))
            except zmq.ZMQError as exc:
                assert exc.errno == zmq.ENOTSOCK

    with anyio.fail_after(PROMPT * 2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll_loop)
            await anyio.sleep(0.05)
            poller.unregister(s1)
            s1.close()
            await anyio.sleep(0.05)
            await push2.send(b"still here")
    assert result == [(s2, zmq.POLLIN)]
    assert await s2.recv() == b"still here"


@pytest.mark.anyio
async def test_close_from_another_thread_while_recv_pending(apair: Any) -> None:
    """zeromq/pyzmq#1443, #233: closing a socket from another thread while it is in a receive
    crashed the interpreter; here the receive ends with a clear error, promptly."""
    pull, _ = apair(zmq.PULL, zmq.PUSH)

    async def close_in_a_thread(_: object) -> None:
        await anyio.to_thread.run_sync(pull.close)

    errors = await _outcomes_while([pull.recv], close_in_a_thread)
    assert [e.errno for e in errors] == [zmq.ENOTSOCK]
    assert pull.closed


@pytest.mark.anyio
async def test_destroy_from_another_thread_while_sockets_wait(actx: za.Context) -> None:
    """zeromq/pyzmq#139: ``term``/``destroy`` in one thread closing sockets that wait in
    another; every waiter ends with a clear error and destroy returns."""
    a = actx.socket(zmq.PULL)
    a.bind("tcp://127.0.0.1:*")
    b = actx.socket(zmq.REQ)
    b.set(zmq.IMMEDIATE, 1)  # no pipe until a peer answers: the send waits
    b.connect("tcp://127.0.0.1:1")

    async def destroy_in_a_thread(_: object) -> None:
        await anyio.to_thread.run_sync(lambda: actx.destroy(linger=0))

    errors = await _outcomes_while([a.recv, lambda: b.send(b"never")], destroy_in_a_thread)
    assert len(errors) == 2
    assert actx.closed


@pytest.mark.anyio
async def test_term_from_another_thread_wakes_waiters_with_eterm(actx: za.Context) -> None:
    """zeromq/pyzmq#991, #139 (term blocks until every socket is closed): ``ctx.term()`` in
    another thread while tasks wait; each wait ends with ContextTerminated, the task closes
    its socket (the documented pattern), and term returns."""
    pull = actx.socket(zmq.PULL)
    pull.bind_to_random_port("tcp://127.0.0.1")
    sub = actx.socket(zmq.SUB)
    sub.connect("tcp://127.0.0.1:1")
    ended: list[str] = []

    async def wait_then_close(sock: Any, name: str) -> None:
        try:
            await sock.recv()
        except zmq.ContextTerminated:
            ended.append(name)
            sock.close()

    termed = threading.Event()
    with anyio.fail_after(PROMPT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_then_close, pull, "pull")
            tg.start_soon(wait_then_close, sub, "sub")
            await anyio.sleep(0.05)
            threading.Thread(target=lambda: (actx.term(), termed.set()), daemon=True).start()
        assert await anyio.to_thread.run_sync(termed.wait, PROMPT)
    assert sorted(ended) == ["pull", "sub"]


@pytest.mark.anyio
async def test_destroy_in_loop_with_unsent_messages_does_not_hang(actx: za.Context) -> None:
    """zeromq/pyzmq#102, #991, jupyter/jupyter_client#771: term hung on unsent messages (a
    REQ to nowhere); ``destroy(linger=0)`` from the loop, with a receive of the same
    context pending in another task, returns and ends the receive."""
    req = actx.socket(zmq.REQ)
    req.connect("tcp://127.0.0.1:1")
    dealer = actx.socket(zmq.DEALER)
    dealer.connect("tcp://127.0.0.1:1")
    await dealer.send(b"queued, never sent")  # sits in the pipe

    async def destroy(_: object) -> None:
        actx.destroy(linger=0)

    assert len(await _outcomes_while([dealer.recv], destroy)) == 1
    assert actx.closed


@pytest.mark.anyio
async def test_fd_reused_after_close_is_not_read_by_old_waiter(actx: za.Context) -> None:
    """python-trio/trio#661 and #3520, agronholm/anyio#896: a task woken for an FD that was
    closed meanwhile read from whatever the FD number now named. Close a socket whose
    receive waits, open another that reuses the FD at once: each sees only its own."""
    old = actx.socket(zmq.PULL)
    old.bind_to_random_port("tcp://127.0.0.1")
    old_fd = old.get(zmq.FD)

    async def close_and_reuse(_: object) -> None:
        old.close()
        new = actx.socket(zmq.PULL)  # likely at old_fd: libzmq reuses the number
        new_port = new.bind_to_random_port("tcp://127.0.0.1")
        push = actx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{new_port}")
        await push.send(b"for the new one")
        assert await new.recv() == b"for the new one"

    errors = await _outcomes_while([old.recv], close_and_reuse)
    assert [e.errno for e in errors] == [zmq.ENOTSOCK]
    assert isinstance(old_fd, int)


# -- peers that go away, ROUTER_MANDATORY, REQ state ---------------------------------------------


@pytest.mark.anyio
async def test_req_after_lost_reply_fails_clearly_then_recovers_relaxed(actx: za.Context) -> None:
    """The lazy-pirate problem (REQ stuck after its server restarts; zeromq/pyzmq reports of
    'Operation cannot be accomplished in current state'): a REQ whose reply never comes
    times out with ``zmq.Again``, a second send fails at once with EFSM (never hangs), and
    with REQ_RELAXED it can ask a restarted server again."""
    rep = actx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req = actx.socket(zmq.REQ)
    req.rcvtimeo = 200
    req.linger = 0
    req.connect(f"tcp://127.0.0.1:{port}")
    with anyio.fail_after(PROMPT):
        await req.send(b"1")
        assert await rep.recv() == b"1"
        rep.close(linger=0)  # the server dies before replying
        with pytest.raises(zmq.Again):
            await req.recv()
        with pytest.raises(zmq.ZMQError) as info:
            await req.send(b"2")
        assert info.value.errno == zmq.EFSM
        req.close(linger=0)

        relaxed = actx.socket(zmq.REQ)
        relaxed.set(zmq.REQ_RELAXED, 1)
        relaxed.set(zmq.REQ_CORRELATE, 1)
        relaxed.rcvtimeo = 200
        relaxed.linger = 0
        rep = actx.socket(zmq.REP)
        port = rep.bind_to_random_port("tcp://127.0.0.1")
        relaxed.connect(f"tcp://127.0.0.1:{port}")
        await relaxed.send(b"3")
        assert await rep.recv() == b"3"
        rep.close(linger=0)
        with pytest.raises(zmq.Again):
            await relaxed.recv()
        rep = actx.socket(zmq.REP)  # the server restarts on the same port
        rep.bind(f"tcp://127.0.0.1:{port}")
        relaxed.rcvtimeo = int(PROMPT * 1000)
        await relaxed.send(b"4")
        assert await rep.recv() == b"4"
        await rep.send(b"reply 4")
        assert await relaxed.recv() == b"reply 4"


@pytest.mark.anyio
async def test_router_mandatory_unknown_peer_fails_at_once(apair: Any) -> None:
    """ROUTER_MANDATORY (zeromq/libzmq's EHOSTUNREACH reports): a send to an unknown identity
    fails with EHOSTUNREACH, neither hanging nor dropping silently; a known one goes."""
    router, dealer = apair(zmq.ROUTER, zmq.DEALER)
    router.set(zmq.ROUTER_MANDATORY, 1)
    with anyio.fail_after(PROMPT):
        with pytest.raises(zmq.ZMQError) as info:
            await router.send_multipart([b"nobody", b"hello"])
        assert info.value.errno == zmq.EHOSTUNREACH
        await dealer.send(b"hi")
        ident, _ = await router.recv_multipart()
        await router.send_multipart([ident, b"back"])
        assert await dealer.recv() == b"back"


@pytest.mark.anyio
async def test_rep_reply_to_a_vanished_req_does_not_hang(actx: za.Context) -> None:
    """zeromq/pyzmq#527: a REP replying to a REQ that closed meanwhile hung at random; the
    reply is dropped (zmq's rule) and the next REQ is served."""
    rep = actx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    with anyio.fail_after(PROMPT):
        req = actx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        await req.send(b"q1")
        assert await rep.recv() == b"q1"
        req.close(linger=0)
        await anyio.sleep(0.05)
        await rep.send(b"to nobody")
        req = actx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        await req.send(b"q2")
        assert await rep.recv() == b"q2"
        await rep.send(b"a2")
        assert await req.recv() == b"a2"


@pytest.mark.anyio
async def test_router_mandatory_send_to_a_full_peer_waits_without_spinning(
    actx: za.Context,
) -> None:
    """zeromq/libzmq#2037 and #1155 (ROUTER_MANDATORY: a send to a peer at its HWM fails with
    EAGAIN): EVENTS shows POLLOUT (another peer is writable) while the send to the full one
    cannot proceed. The send must wait without spinning the CPU, and go once the peer reads."""
    addr = f"inproc://bugs-anyio-mandatory-{id(actx)}"
    router = actx.socket(zmq.ROUTER)
    router.set(zmq.ROUTER_MANDATORY, 1)
    router.sndhwm = 1
    router.bind(addr)
    peers = {}
    for name in (b"full", b"idle"):
        dealer = peers[name] = actx.socket(zmq.DEALER)
        dealer.identity = name
        dealer.rcvhwm = 1
        dealer.connect(addr)
        await dealer.send(b"hello")
    with anyio.fail_after(PROMPT):
        for _ in peers:
            await router.recv_multipart()
        sent = 0
        with pytest.raises(zmq.Again):
            while sent < 100:
                await router.send_multipart([b"full", b"%d" % sent], flags=zmq.NOBLOCK)
                sent += 1
        assert router.get(zmq.EVENTS) & zmq.POLLOUT  # (the idle peer could take one)
        cpu = time.process_time()
        with anyio.move_on_after(0.3) as scope:
            await router.send_multipart([b"full", b"blocked"])
        assert scope.cancelled_caught
        assert time.process_time() - cpu < 0.15, "the waiting send spun"
        got: list[bytes] = []

        async def read_all() -> None:
            while len(got) < sent + 1:
                got.append(await peers[b"full"].recv())

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_all)
            await router.send_multipart([b"full", b"last"])
    assert got == [b"%d" % i for i in range(sent)] + [b"last"]


# -- zero-copy, trackers, recv_into -------------------------------------------------------------


@pytest.mark.anyio
async def test_copy_false_returns_frames_and_track_gives_a_tracker(apair: Any) -> None:
    """ipython/ipykernel#1278 (copy=False must give ``zmq.Frame``), zeromq/pyzmq#1364
    (``send(copy=False, track=True)`` must give a working ``MessageTracker``)."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    with anyio.fail_after(PROMPT):
        tracker = await push.send(b"z" * 100_000, copy=False, track=True)
        assert isinstance(tracker, zmq.MessageTracker)
        frame = await pull.recv(copy=False)
        assert isinstance(frame, zmq.Frame) and frame.bytes == b"z" * 100_000
        while not tracker.done:
            await anyio.sleep(0.01)
        await push.send_multipart([b"a", b"b"])
        frames = await pull.recv_multipart(copy=False)
    assert [type(f) for f in frames] == [zmq.Frame, zmq.Frame]


@pytest.mark.anyio
async def test_tracked_zero_copy_send_that_waits_on_hwm(actx: za.Context) -> None:
    """zeromq/pyzmq#1364 (MessageTracker of ``send(copy=False, track=True)``), when the send
    has to wait on a full socket: one cancelled while it waits is never sent; one served
    gives a tracker that completes once the message is taken."""
    pull, push = actx.socket(zmq.PULL), actx.socket(zmq.PUSH)
    for sock in (pull, push):
        sock.sndhwm = sock.rcvhwm = 1
    pull.bind("inproc://bugs-anyio-tracked-wait")
    push.connect("inproc://bugs-anyio-tracked-wait")

    async def fill() -> int:
        sent = 0
        with contextlib.suppress(zmq.Again):
            while sent < 100:
                await push.send(b"fill", flags=zmq.NOBLOCK)
                sent += 1
        return sent

    with anyio.fail_after(PROMPT):
        queued = await fill()  # (nothing read yet: no credit can come back and make room)
        with anyio.move_on_after(0.05) as scope:
            await push.send(bytearray(b"never"), copy=False, track=True)
        assert scope.cancelled_caught
        assert [await pull.recv() for _ in range(queued)] == [b"fill"] * queued
        with pytest.raises(zmq.Again):
            await pull.recv(zmq.NOBLOCK)
        queued = await fill()
    payload = bytearray(b"Z" * 100_000)

    async def receive_all(_: object) -> None:
        for _ in range(queued + 1):
            assert await pull.recv() in (b"fill", payload)

    [tracker] = await _outcomes_while(
        [lambda: push.send(payload, copy=False, track=True)], receive_all
    )
    assert isinstance(tracker, zmq.MessageTracker)
    with anyio.fail_after(PROMPT):
        while not tracker.done:
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_frame_received_without_copy_outlives_its_socket_and_context() -> None:
    """zeromq/pyzmq#87 (a buffer from ``recv(copy=False)`` freed early and overwritten): a
    Frame received by our layer stays intact after its socket closes and its context is
    destroyed, and after more messages reuse the socket's memory."""
    ctx = za.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.bind("inproc://bugs-anyio-frame-lifetime")
    push.connect("inproc://bugs-anyio-frame-lifetime")
    with anyio.fail_after(PROMPT):
        await push.send(b"A" * 70_000)
        frame = await pull.recv(copy=False)
        view = frame.buffer
        for _ in range(20):
            await push.send(b"B" * 70_000)
            await pull.recv(copy=False)
    ctx.destroy(linger=0)
    gc.collect()
    assert bytes(view) == b"A" * 70_000 and frame.bytes == b"A" * 70_000


@pytest.mark.anyio
async def test_recv_into_truncates_like_pyzmq_and_cancel_consumes_nothing(apair: Any) -> None:
    """zeromq/pyzmq#2057, #2081: ``recv_into`` returns the frame's size (truncating into a
    small buffer, as pyzmq does); a cancelled one consumes nothing."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    buf = bytearray(4)
    with anyio.fail_after(PROMPT):
        with anyio.move_on_after(0.02):
            await pull.recv_into(buf)
        await push.send(b"abcdefgh")
        assert await pull.recv_into(buf) == 8
        assert bytes(buf) == b"abcd"
        await push.send(b"xy")
        assert await pull.recv_into(buf, nbytes=2) == 2
    assert bytes(buf) == b"xycd"


# -- loops, threads, scale, signals --------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_socket_made_before_any_loop_works_in_anyio_run(apair: Any, backend: str) -> None:
    """zeromq/pyzmq#1558, #1547, #985: a socket made outside (before) the running loop hung
    in ``poll``/``recv``; made before ``anyio.run``, it works inside it, on each backend."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    poller = za.Poller()
    poller.register(pull, zmq.POLLIN)

    async def main() -> list[Any]:
        with anyio.fail_after(PROMPT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(push.send, b"x")
                events = await poller.poll()
            return [events, await pull.recv()]

    assert anyio.run(main, backend=backend) == [[(pull, zmq.POLLIN)], b"x"]


@pytest.mark.timeout(30)
def test_socket_outlives_runs_of_both_backends_and_a_run_ended_mid_recv(apair: Any) -> None:
    """zeromq/pyzmq#1002, #1003 (a timeout ended the loop with a receive pending, and the
    program hung), #1558: one socket used by successive ``anyio.run`` on asyncio and trio,
    some ended by a timeout while a receive waited: each next run is served."""
    pull, push = apair(zmq.PULL, zmq.PUSH)

    async def round_trip(i: int) -> bytes:
        with anyio.fail_after(PROMPT):
            await push.send(b"%d" % i)
            return bytes(await pull.recv())

    async def ended_mid_recv() -> None:
        with anyio.fail_after(0.05):
            await pull.recv()

    for i, backend in enumerate(["asyncio", "trio", "asyncio", "trio"]):
        with pytest.raises(TimeoutError):
            anyio.run(ended_mid_recv, backend=backend)
        assert anyio.run(round_trip, i, backend=backend) == b"%d" % i


@pytest.mark.timeout(30)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_socket_of_a_loop_in_another_thread_refuses_clearly(apair: Any, backend: str) -> None:
    """zeromq/pyzmq#2043, #1443 (one socket used from two threads crashed libzmq): while a
    run in one thread waits on a socket, a run in another thread using it gets a clear
    RuntimeError, and the first run's receive is still served."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    waiting = threading.Event()
    got: list[bytes] = []

    async def owner() -> None:
        with anyio.fail_after(PROMPT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _append(got, pull.recv()))
                await anyio.sleep(0.05)
                waiting.set()

    thread = threading.Thread(target=anyio.run, args=(owner,), kwargs={"backend": backend})
    thread.start()
    assert waiting.wait(PROMPT)

    async def intruder() -> None:
        with anyio.fail_after(PROMPT), pytest.raises(RuntimeError, match="another thread"):
            await pull.recv()

    anyio.run(intruder, backend=backend)
    anyio.run(push.send, b"for the owner", backend=backend)
    thread.join(PROMPT * 2)
    assert got == [b"for the owner"]


async def _append(into: list[Any], awaitable: Any) -> None:
    into.append(await awaitable)


@pytest.mark.anyio
async def test_too_many_sockets_is_a_clear_error_and_the_rest_still_work() -> None:
    """zeromq/pyzmq#234, #570 (and QCG-PilotJob#41): past MAX_SOCKETS libzmq refuses a socket;
    that must be a ``ZMQError`` (not an abort), and the sockets made work on."""
    ctx = za.Context()
    ctx.set(zmq.MAX_SOCKETS, 12)
    try:
        socks = []
        with pytest.raises(zmq.ZMQError) as info:
            for _ in range(20):
                socks.append(ctx.socket(zmq.PAIR))
        assert info.value.errno == errno.EMFILE
        assert len(socks) == 12
        a, b = socks[0], socks[1]
        a.bind("inproc://bugs-anyio-max-sockets")
        b.connect("inproc://bugs-anyio-max-sockets")
        with anyio.fail_after(PROMPT):
            await a.send(b"fine")
            assert await b.recv() == b"fine"
    finally:
        ctx.destroy(linger=0)


@pytest.mark.anyio
async def test_many_idle_waiting_sockets_one_is_served_promptly(actx: za.Context) -> None:
    """davidbrochart's zmq-anyio (ipython/ipykernel#1291: a select thread per waiting socket):
    hundreds of sockets wait at once; the one that gets a message is served promptly, and
    cancelling all of them leaves nothing queued."""
    n = 300
    socks = [actx.socket(zmq.PULL) for _ in range(n)]
    # inproc, not random tcp ports: a PUSH another test left reconnecting to a port one of
    # these 300 binds reused slipped its message in (b"x" for b"one", under load)
    for i, s in enumerate(socks):
        s.bind(f"inproc://many-idle-{i}")
    got: list[bytes] = []

    async def receive(sock: Any) -> None:
        got.append(await sock.recv())

    push = actx.socket(zmq.PUSH)
    push.connect(f"inproc://many-idle-{n // 2}")
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for s in socks:
                tg.start_soon(receive, s)
            await anyio.sleep(0.1)
            await push.send(b"one")
            while not got:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert got == [b"one"]
    assert _no_leak(*socks)


@pytest.mark.anyio
async def test_signal_during_pending_recv_is_handled_and_recv_completes(apair: Any) -> None:
    """zeromq/pyzmq#746, #679 (EINTR): a signal with a Python handler arriving while a receive
    waits runs the handler and the receive goes on to get its message."""
    pull, push = apair(zmq.PULL, zmq.PUSH)
    fired: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))

    async def signal_then_send(_: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        while not fired:
            await anyio.sleep(0.01)
        await push.send(b"after the signal")

    try:
        got = await _outcomes_while([pull.recv], signal_then_send)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert fired == [signal.SIGALRM] and got == [b"after the signal"]


@pytest.mark.anyio
async def test_poller_raw_fd_readable_returns_before_the_timeout() -> None:
    """zeromq/pyzmq#1865, #332: an async Poller with a raw fd returned its event only after
    the whole timeout; it must return as the fd turns readable. An empty Poller sleeps its
    timeout (zeromq/pyzmq#718), neither spinning nor hanging."""
    a, b = stdlib_socket.socketpair()
    try:
        poller = za.Poller()
        poller.register(a.fileno(), zmq.POLLIN)
        start = time.monotonic()
        with anyio.fail_after(PROMPT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, lambda: (time.sleep(0.05), b.send(b"!")))
                events = await poller.poll(timeout=20_000)
        assert events == [(a.fileno(), zmq.POLLIN)]
        assert time.monotonic() - start < PROMPT
        start = time.monotonic()
        assert await za.Poller().poll(timeout=100) == []
        assert 0.08 < time.monotonic() - start < PROMPT
    finally:
        a.close()
        b.close()


# -- zmq-anyio's own API -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_zmq_anyio_stop_with_pending_futures_does_not_hang() -> None:
    """ipython/ipykernel#1377 ('Stop zmq sockets'), jupyter/jupyter_client#1046: a started
    zmq-anyio socket with a pending ``arecv`` is closed: the future ends (cancelled, as the
    peer does), the task group exits, nothing hangs."""
    ctx = zmq.Context()
    try:
        pull = zmq_anyio.Socket(ctx.socket(zmq.PULL))
        pull.bind("inproc://bugs-anyio-zmq-anyio-stop")
        with anyio.fail_after(PROMPT):
            async with pull:
                future = pull.arecv()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(future.wait)
                    await anyio.sleep(0.05)
                    pull.close()
        assert future.status is future.Status.CANCELLED
    finally:
        ctx.destroy(linger=0)


@pytest.mark.anyio
async def test_zmq_anyio_socket_whose_task_group_ended_refuses_every_call() -> None:
    """jupyter-server/jupyverse#468: a zmq-anyio socket started in a task group that has
    ended; ``apoll``/``arecv`` raised RuntimeError (a 500 error in jupyverse). Every later
    call must raise too: the first one left its operation queued with no task to run it,
    so the next calls returned Futures that never completed, messages or not."""
    ctx = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.bind("inproc://bugs-anyio-ended-group")
        async with anyio.create_task_group() as tg:
            pull = zmq_anyio.Socket(ctx.socket(zmq.PULL), task_group=tg)
            pull.connect("inproc://bugs-anyio-ended-group")
            await pull.start()
        for _ in range(3):
            with pytest.raises(RuntimeError, match="not active"):
                pull.arecv()
        with pytest.raises(RuntimeError, match="not active"):
            pull.apoll(1000)
        push.send(b"now there is one")
        with anyio.fail_after(PROMPT):
            while not pull.poll(0):
                await anyio.sleep(0.01)
        future = pull.arecv()  # tried at once: it completes, no task needed
        assert future.return_value == b"now there is one"
        pull.close()
    finally:
        ctx.destroy(linger=0)


@pytest.mark.anyio
async def test_zmq_anyio_wrapped_socket_closed_ends_pending_future() -> None:
    """ipython/ipykernel#1291 (zmq-anyio wraps the kernel's plain sockets, which its
    shutdown closes): the plain socket closed while an ``arecv`` waits. zmq-anyio 0.4.1
    leaves that Future pending for ever (reproduced); ours cancels it at once."""
    ctx = zmq.Context()
    try:
        plain = ctx.socket(zmq.PULL)
        plain.bind("inproc://bugs-anyio-wrapped-closed")
        with anyio.fail_after(PROMPT):
            async with zmq_anyio.Socket(plain) as pull:
                future = pull.arecv()
                await anyio.sleep(0.02)
                plain.close()
                await future.wait()
        assert future.status is future.Status.CANCELLED and pull.closed
    finally:
        ctx.destroy(linger=0)


# -- the asyncio layer, where those reporters were ---------------------------------------------


@pytest.mark.asyncio
async def test_asyncio_events_read_while_recv_pending(socket_pair: Any) -> None:
    """zeromq/pyzmq#2173 on zmq.asyncio's drop-in: EVENTS read by the user mid-wait."""
    pull, push = socket_pair(zmq.PULL, zmq.PUSH)
    fut = pull.recv()
    await asyncio.sleep(0.05)
    await push.send(b"x")
    _read_events_until_pollin(pull)
    assert await asyncio.wait_for(fut, PROMPT) == b"x"


@pytest.mark.asyncio
async def test_asyncio_poll_future_cancelled_is_removed(socket_pair: Any) -> None:
    """zeromq/pyzmq#1888, verbatim shape: ``socket.poll()`` futures cancelled at once."""
    pull, _ = socket_pair(zmq.PULL, zmq.PUSH)
    for _ in range(3 * SWEEP_MIN):
        future = pull.poll(flags=zmq.POLLIN)
        future.cancel()
        await asyncio.sleep(0)
    assert _no_leak(pull)


@pytest.mark.asyncio
async def test_asyncio_send_from_a_thread_without_loop(socket_pair: Any) -> None:
    """zeromq/pyzmq#1967 (PUBHandler logging from ``asyncio.to_thread``): a send from a
    thread with no event loop must work or fail clearly, never hang or vanish."""
    pull, push = socket_pair(zmq.PULL, zmq.PUSH)
    outcome: list[Any] = []

    def in_thread() -> None:
        try:
            outcome.append(push.send(b"from a thread"))
        except (RuntimeError, RuntimeWarning, zmq.ZMQError) as exc:  # pyzmq: RuntimeError
            outcome.append(exc)

    await asyncio.to_thread(in_thread)
    assert len(outcome) == 1
    if not isinstance(outcome[0], BaseException):
        assert await asyncio.wait_for(pull.recv(), PROMPT) == b"from a thread"


def test_asyncio_context_manager_with_open_socket_and_error_does_not_hang() -> None:
    """zeromq/pyzmq#1757, #1167: ``with Context()`` left by an error with a socket open (a
    receive pending on it) hung in term; it must exit and cancel the receive."""

    async def main() -> None:
        with pytest.raises(ValueError), zaio.Context() as ctx:
            sock = ctx.socket(zmq.DEALER)
            sock.connect("tcp://127.0.0.1:1")
            pending = sock.recv()
            await asyncio.sleep(0.01)
            raise ValueError
        assert sock.closed
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(pending, PROMPT)

    done = threading.Event()

    def run() -> None:
        asyncio.run(main())
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PROMPT * 2)
    assert done.is_set()


# -- one libzmq socket, several Python sockets: closing one ends the others' waits ----------------


@pytest.mark.anyio
@pytest.mark.parametrize("closer", ["original", "shadow"])
async def test_closing_one_handle_ends_the_waits_of_its_shadows(
    actx: za.Context, closer: str
) -> None:
    """zeromq/pyzmq#1443, ipython/ipykernel#1291 (zmq-anyio wraps a socket others hold):
    one libzmq socket behind two of our sockets (``Socket.shadow``), one waits in a receive
    while the other is closed. The waiter must end at once with ENOTSOCK: left behind, it
    watched a closed FD and held a freed socket address, so the next socket made (which
    may get both) had its messages taken by the stale waiter (seen on asyncio)."""
    original = actx.socket(zmq.PULL)
    original.bind_to_random_port("tcp://127.0.0.1")
    shadow = za.Socket.shadow(original.underlying)
    waiting, closing = (shadow, original) if closer == "original" else (original, shadow)

    async def close_the_other(errors: list[Any]) -> None:
        closing.close()
        for _ in range(5):
            await anyio.sleep(0)
        assert [e.errno for e in errors] == [zmq.ENOTSOCK], "the wait goes on"

    await _outcomes_while([waiting.recv], close_the_other)
    with anyio.fail_after(PROMPT):
        for i in range(10):  # new sockets, likely at the closed one's FD and address
            pull, push = actx.socket(zmq.PULL), actx.socket(zmq.PUSH)
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            push.connect(f"tcp://127.0.0.1:{port}")
            await push.send(b"%d" % i)
            assert await pull.recv() == b"%d" % i


@pytest.mark.asyncio
@pytest.mark.parametrize("closer", ["original", "shadow"])
async def test_asyncio_closing_one_handle_cancels_its_shadows_futures(
    ctx: zaio.Context, closer: str
) -> None:
    """The same on zmq_async.asyncio, where the stale Future of the shadow took the message
    of the next socket made (whose own receive then timed out)."""
    original = ctx.socket(zmq.PULL)
    original.bind_to_random_port("tcp://127.0.0.1")
    shadow = zaio.Socket.shadow(original.underlying)
    waiting, closing = (shadow, original) if closer == "original" else (original, shadow)
    future = waiting.recv()
    await asyncio.sleep(0.05)
    closing.close()
    await asyncio.sleep(0)
    assert future.cancelled(), "the receive of the closed socket still waits"
    for i in range(10):
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        await push.send(b"%d" % i)
        assert await asyncio.wait_for(pull.recv(), PROMPT) == b"%d" % i


def _socket_at(ctx: Any, handle: int) -> Any:
    """A new PULL socket of ``ctx`` at libzmq address ``handle`` (freed: libzmq reuses it)."""
    made = []
    for _ in range(50):
        sock = ctx.socket(zmq.PULL)
        if sock.underlying == handle:
            for other in made:
                other.close()
            return sock
        made.append(sock)
    pytest.skip("libzmq did not reuse the freed socket's address")


@pytest.mark.anyio
async def test_shadow_of_a_socket_closed_behind_our_back_ends_when_its_address_is_reused(
    actx: za.Context,
) -> None:
    """jupyter/jupyter_client#771 and zeromq/pyzmq#1003's shape (a plain context destroyed
    under async sockets), with ours shadowing a plain socket by address: pyzmq closes the
    plain one, which we cannot see. The stale wait was left to the re-check, which then read
    the new socket libzmq made at the same address: it waited for ever, or took that
    socket's messages. A new socket of ours at that address now ends it (ENOTSOCK)."""
    plain_ctx: zmq.Context[Any] = zmq.Context()
    plain = plain_ctx.socket(zmq.PULL)
    plain.bind_to_random_port("tcp://127.0.0.1")
    handle = plain.underlying
    stale = za.Socket.shadow(handle)

    async def destroy_then_reuse(outcomes: list[Any]) -> None:
        plain_ctx.destroy(linger=0)
        new = _socket_at(actx, handle)
        for _ in range(5):
            await anyio.sleep(0)
        assert [e.errno for e in outcomes] == [zmq.ENOTSOCK], "the stale wait goes on"
        port = new.bind_to_random_port("tcp://127.0.0.1")
        push = actx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        await push.send(b"for the new one")
        assert await new.recv() == b"for the new one"

    await _outcomes_while([stale.recv], destroy_then_reuse)


@pytest.mark.asyncio
async def test_asyncio_shadow_of_a_socket_closed_behind_our_back_is_cancelled_on_reuse(
    ctx: zaio.Context,
) -> None:
    """The same on zmq_async.asyncio: the stale Future is cancelled (as a close cancels)."""
    plain_ctx: zmq.Context[Any] = zmq.Context()
    plain = plain_ctx.socket(zmq.PULL)
    plain.bind_to_random_port("tcp://127.0.0.1")
    handle = plain.underlying
    stale = zaio.Socket.shadow(handle)
    future = stale.recv()
    await asyncio.sleep(0.05)
    plain_ctx.destroy(linger=0)
    new = _socket_at(ctx, handle)
    await asyncio.sleep(0)
    assert future.cancelled(), "the stale receive still waits"
    port = new.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    await push.send(b"for the new one")
    assert await asyncio.wait_for(new.recv(), PROMPT) == b"for the new one"
