"""Review (session 15) of the framework-free core: reactor, re-check, poller, socket base."""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import zmq

import zmq_async.anyio
import zmq_async.asyncio
from zmq_async._poller import PollWait
from zmq_async.asyncio._driver import driver_for

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    """An asyncio context, destroyed (every socket closed) after the test."""
    context: zmq.Context[Any] = zmq_async.asyncio.Context()
    yield context
    context.destroy(linger=0)


def plain_pair(ctx: zmq.Context[Any], name: str) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    """Two connected plain PAIR sockets of ``ctx``; a poller waits on the first."""
    a = ctx.socket(zmq.PAIR, socket_class=zmq.Socket)
    a.bind(f"inproc://s15-{name}")
    b = ctx.socket(zmq.PAIR, socket_class=zmq.Socket)
    b.connect(f"inproc://s15-{name}")
    return a, b


def skip_on_uvloop() -> None:
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip("libuv aborts the process when a watched FD is closed under it")


# -- timeouts set through another object of the same libzmq socket ---------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("through", ["original", "shadow"])
@pytest.mark.parametrize("option", ["rcvtimeo", "sndtimeo"])
async def test_a_timeout_set_through_the_wrapped_socket_after_a_wait_is_honoured(
    ctx: zmq.Context[Any], through: str, option: str
) -> None:
    """``Socket.from_socket(plain)``, one wait, then RCVTIMEO (SNDTIMEO) set on ``plain``
    or on a plain shadow of it: the next wait fails with Again after it, as zmq.asyncio's
    does (it reads the option at each wait). A cached value made it wait for ever."""
    # A PULL with no message, a PUSH with no peer: each operation waits.
    plain = ctx.socket(zmq.PULL if option == "rcvtimeo" else zmq.PUSH, socket_class=zmq.Socket)
    sock = zmq_async.asyncio.Socket.from_socket(plain)

    def wait() -> asyncio.Future[Any]:
        return sock.recv() if option == "rcvtimeo" else sock.send(b"m")

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(wait(), 0.05)  # a wait: the option (-1) was read
    other = plain if through == "original" else zmq.Socket.shadow(plain.underlying)
    setattr(other, option, 100)
    try:
        with pytest.raises(zmq.Again):
            await asyncio.wait_for(wait(), 3)
    finally:
        sock.close(linger=0)


# -- Poller: a poll that cannot start, or cannot watch again, leaves nothing behind ---------


@pytest.mark.asyncio
async def test_a_poll_refused_for_a_bad_fd_leaves_no_waiter_in_the_sockets(
    ctx: zmq.Context[Any],
) -> None:
    """A closed ``socket.socket`` (fileno -1) in a Poller: ``poll()`` raises ValueError, as
    zmq.asyncio's does; the poll waiters it had queued in our sockets' reactors must go with
    it (they stayed live for ever: the socket was re-checked for ever, its dispatch took the
    slow path, and the orphan later raised in a loop callback), and so must the watch of a
    plain socket's FD."""
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://s15-badfd")
    plain = ctx.socket(zmq.PULL, socket_class=zmq.Socket)
    a, b = socket.socketpair()
    a.close()
    poller = zmq_async.asyncio.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(plain, zmq.POLLIN)
    poller.register(a, zmq.POLLIN)
    with pytest.raises(ValueError):
        await poller.poll(1000)
    b.close()
    assert [w for w in pull._reactor.pollq if not w.completion.done()] == []
    assert pull._recv_futures == []
    # nor in the loop's driver: the FD it failed to watch is not recorded as watched, and
    # the plain socket's FD is watched no more
    watched = driver_for(asyncio.get_running_loop())._callbacks
    assert (-1, False) not in watched
    assert (plain.FD, False) not in watched


@pytest.mark.asyncio
async def test_a_pending_poll_whose_raw_socket_closed_fails_on_its_next_look() -> None:
    """A raw socket closed under a pending poll (no timeout), then a wake that finds nothing
    ready (its look is one ``zmq_poll``, which skips fd -1): watching again cannot work, and
    the poll must fail with that error; it raised in a loop callback and hung for ever."""
    skip_on_uvloop()
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    future: asyncio.Future[Any] = loop.create_future()
    items = [(a, zmq.POLLIN)]
    wait = PollWait(
        driver_for(loop), items, lambda: zmq.zmq_poll(items, 0), lambda item: None, future
    )
    assert wait.begin(None)
    a.close()
    wait.set_result(zmq.POLLIN)  # a wake, as a reactor or an FD callback gives
    with pytest.raises(ValueError):
        await asyncio.wait_for(future, 5)
    b.close()


# -- Poller: plain zmq sockets are re-checked like ours (rule 1) ----------------------------


@pytest.mark.asyncio
async def test_a_pending_poll_on_a_plain_socket_survives_an_edge_its_program_eats(
    ctx: zmq.Context[Any],
) -> None:
    """A message arrives for a plain PAIR socket under a pending poll, and the program sends
    on that socket before the loop looks (the send processes libzmq's commands and takes the
    FD's edge): the re-check must find the message, as for our own sockets. The poll hung for
    ever (zmq.asyncio's does too)."""
    a, b = plain_pair(ctx, "plain-edge")
    poller = zmq_async.asyncio.Poller()
    poller.register(a, zmq.POLLIN)
    future = poller.poll()
    await asyncio.sleep(0.05)  # waiting: the FD is watched
    b.send(b"m")
    a.send(b"touch")  # eats the edge the message made, before the loop sees it
    assert await asyncio.wait_for(future, 10) == [(a, zmq.POLLIN)]


@pytest.mark.asyncio
async def test_a_plain_socket_closed_under_a_pending_poll_fails_it(
    ctx: zmq.Context[Any],
) -> None:
    """The program closes a plain socket that a pending poll (no timeout) watches: the poll
    fails with ENOTSOCK, as a new poll over it does, instead of waiting for ever."""
    skip_on_uvloop()
    a = ctx.socket(zmq.PULL, socket_class=zmq.Socket)
    poller = zmq_async.asyncio.Poller()
    poller.register(a, zmq.POLLIN)
    future = poller.poll()
    await asyncio.sleep(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the late unregister of its FD may warn
        a.close()
        with pytest.raises(zmq.ZMQError) as info:
            await asyncio.wait_for(future, 10)
    assert info.value.errno == zmq.ENOTSOCK


@pytest.mark.anyio
async def test_a_pending_poll_on_a_plain_socket_survives_an_edge_its_program_eats_anyio(
    ctx: zmq.Context[Any],
) -> None:
    """As above, on anyio's backends (trio's wait-style FD watching included)."""
    a, b = plain_pair(ctx, "plain-edge-anyio")
    poller = zmq_async.anyio.Poller()
    poller.register(a, zmq.POLLIN)
    result: list[Any] = []

    async def poll() -> None:
        result.extend(await poller.poll())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            await anyio.sleep(0.05)  # waiting: the FD is watched
            b.send(b"m")
            a.send(b"touch")  # eats the edge the message made, before the loop sees it
    assert result == [(a, zmq.POLLIN)]


# -- a deadline and a message at the same moment: exactly one outcome -----------------------


@pytest.mark.asyncio
async def test_a_deadline_and_a_message_at_the_same_moment_have_one_outcome(
    ctx: zmq.Context[Any],
) -> None:
    """RCVTIMEO runs out as the message arrives (sent from a timer due at the waiter's
    deadline, a little before or after it): the receive either gets it or fails with Again,
    and then the message is still there for the next receive: never both, never neither."""
    loop = asyncio.get_running_loop()
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://s15-deadline")
    push = ctx.socket(zmq.PUSH, socket_class=zmq.Socket)
    push.connect("inproc://s15-deadline")
    pull.rcvtimeo = 30
    outcomes = []
    for i, skew in enumerate([-0.002, -0.001, 0.0, 0.0, 0.0, 0.001, 0.002] * 3):
        future = pull.recv()
        loop.call_at(loop.time() + 0.03 + skew, push.send, b"%d" % i)
        try:
            got = await asyncio.wait_for(future, 5)
            outcomes.append("served")
        except zmq.Again:
            got = await asyncio.wait_for(pull.recv(), 5)  # it was not consumed
            outcomes.append("timed out")
        assert got == b"%d" % i
    assert await pull.poll(0) == 0  # nothing left over, nothing received twice
    assert set(outcomes) <= {"served", "timed out"}, outcomes


@pytest.mark.asyncio
async def test_a_plain_socket_unregistered_then_closed_under_a_pending_poll_is_left_out(
    ctx: zmq.Context[Any],
) -> None:
    """pyzmq#1114's program, with plain sockets: while one task polls, another unregisters a
    socket and closes it. The poll goes on over the others, as zmq.asyncio's does (its look
    reads the registrations), instead of failing with ENOTSOCK."""
    skip_on_uvloop()
    gone = ctx.socket(zmq.PULL, socket_class=zmq.Socket)
    a, b = plain_pair(ctx, "unregistered")
    poller = zmq_async.asyncio.Poller()
    poller.register(gone, zmq.POLLIN)
    poller.register(a, zmq.POLLIN)
    future = poller.poll()
    await asyncio.sleep(0.05)  # waiting on both
    poller.unregister(gone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the late unregister of its FD may warn
        gone.close()
        await asyncio.sleep(0.2)  # the re-check finds it closed
    b.send(b"m")
    assert await asyncio.wait_for(future, 10) == [(a, zmq.POLLIN)]
