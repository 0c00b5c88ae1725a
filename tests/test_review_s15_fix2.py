"""Review of round 15, fix2: FD numbers reused under the asyncio driver; stream close handed
from another thread."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import zmq

import zmq_async._reactor
import zmq_async.asyncio
from zmq_async.stream import ZMQStream

pytestmark = pytest.mark.timeout(30)


def _watch_under_stream(sock: zmq.Socket[Any]) -> Callable[[], object]:
    stream = ZMQStream(sock)
    stream.on_recv(lambda msg: None)
    return stream.close


def _watch_under_poll(sock: zmq.Socket[Any]) -> Callable[[], object]:
    poller = zmq_async.asyncio.Poller()
    poller.register(sock, zmq.POLLIN)
    pending = asyncio.ensure_future(poller.poll())
    return pending.cancel


def _watch_under_wrapper(sock: zmq.Socket[Any]) -> Callable[[], object]:
    wrapper = zmq_async.asyncio.Socket.from_socket(sock)
    # A receive that waited once leaves the wrapper's reactor watching the FD. It is
    # cancelled before the close: a wrapper's shadow of a socket closed elsewhere aliases
    # whatever socket libzmq next allocates at its address (the peer's too), and would
    # take the new socket's message.
    asyncio.ensure_future(wrapper.recv()).cancel()
    return wrapper.close


async def _fd_closed(fd: int) -> None:
    """Wait until libzmq's reaper thread has closed ``fd`` (zmq_close is asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        try:
            os.fstat(fd)
        except OSError:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"fd {fd} still open")


@pytest.mark.asyncio
@pytest.mark.parametrize("watcher", [_watch_under_stream, _watch_under_poll, _watch_under_wrapper])
async def test_a_new_socket_reusing_the_fd_of_one_closed_under_the_loop_is_woken(
    watcher: Callable[[zmq.Socket[Any]], Callable[[], object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain socket is closed while the driver watches its FD; a new socket gets the same
    FD number. The new socket's wait must be served by its FD, not by the slow re-check."""
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip("libuv aborts the process when a watched FD is closed under it")
    # Only the FD can serve the new socket in time: the re-check is pushed out of reach.
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_FIRST", 60.0)
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_MAX", 60.0)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        old = ctx.socket(zmq.PULL)
        old.linger = 0
        fd = old.FD
        undo = watcher(old)
        await asyncio.sleep(0.01)  # the watcher waits, the driver watches fd
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the late unregister warns, as the peer's
            old.close()
            await _fd_closed(fd)
            plain = ctx.socket(zmq.PULL)
            assert fd == plain.FD, "the new socket did not reuse the fd (test premise)"
            pull = zmq_async.asyncio.Socket.from_socket(plain)
            pull.linger = 0
            push = ctx.socket(zmq.PUSH)
            push.linger = 0
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            push.connect(f"tcp://127.0.0.1:{port}")
            receiving = asyncio.ensure_future(pull.recv())
            await asyncio.sleep(0.05)  # queued, watching fd
            push.send(b"hello")
            assert await asyncio.wait_for(receiving, 5) == b"hello"
            undo()
            await asyncio.sleep(0)
            pull.close()
            plain.close()
            push.close()
    finally:
        ctx.destroy(linger=0)


@pytest.mark.asyncio
async def test_a_reused_fd_number_watched_both_ways_before_is_watched_again() -> None:
    """An FD watched for reading and writing is closed; a new FD with its number is watched
    for reading: renewing that side makes the selector drop the stale FD as a whole, and the
    writing side must be registered again (not lost, nor the watch failing with OSError)."""
    loop = asyncio.get_running_loop()
    if type(loop).__module__.startswith("uvloop"):
        pytest.skip("libuv aborts the process when a watched FD is closed under it")
    from zmq_async.asyncio._driver import driver_for

    driver = driver_for(loop)
    old, old_peer = socket.socketpair()
    new, new_peer = socket.socketpair()
    fd = old.fileno()
    readable = asyncio.Event()
    writable = asyncio.Event()
    stale_read = lambda: None  # noqa: E731
    driver.watch(fd, stale_read)
    driver.watch(fd, writable.set, writable=True)
    await asyncio.wait_for(writable.wait(), 5)
    try:
        os.dup2(new.fileno(), fd)  # closes the watched FD, reusing its number for the new one
        driver.watch(fd, readable.set)
        new_peer.send(b"x")
        await asyncio.wait_for(readable.wait(), 5)
        writable.clear()
        await asyncio.wait_for(writable.wait(), 5)  # the writing side is still watched
    finally:
        driver.unwatch(fd, readable.set)
        driver.unwatch(fd, stale_read)
        driver.unwatch(fd, writable.set, writable=True)
        for sock in (old, old_peer, new, new_peer):
            sock.close()
    assert not any(key[0] == fd for key in driver._callbacks)


WAIT = 10.0


class _LastTurn:
    """Runs ``owner`` in a thread, blocked in its last turn until :meth:`stop` (then the
    loop stops and closes): what is handed to it meanwhile is queued behind the stop, which
    asyncio never runs (uvloop does)."""

    def __init__(self, owner: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self._stopping = threading.Event()
        in_last_turn = threading.Event()

        def block_then_stop() -> None:
            in_last_turn.set()
            assert self._stopping.wait(WAIT)
            owner.stop()

        def run_owner() -> None:
            owner.run_forever()
            owner.close()

        owner.call_soon(block_then_stop)
        self.thread = threading.Thread(target=run_owner)
        self.thread.start()
        assert in_last_turn.wait(WAIT)

    def stop(self) -> None:
        """Let the loop finish its last turn; wait until it has stopped and closed."""
        self._stopping.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


def _stop_with_a_close_handed_in_its_last_turn(
    owner: asyncio.AbstractEventLoop, stream: ZMQStream
) -> None:
    """Close ``stream`` from here during its loop's last turn (see :class:`_LastTurn`)."""
    last_turn = _LastTurn(owner)
    try:
        stream.close(linger=0)  # handed to the owner, which is running
        assert stream.closed()
    finally:
        last_turn.stop()


def _receiving_plain_stream(
    owner: asyncio.AbstractEventLoop,
) -> tuple[zmq.Context[Any], zmq.Socket[Any], ZMQStream]:
    """A new plain context, and a receiving stream on ``owner`` over a plain socket of it."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:0")
    stream = ZMQStream(sock, owner)
    stream.on_recv(lambda msg: None)
    return ctx, sock, stream


def _terminates(ctx: zmq.Context[Any]) -> bool:
    terminator = threading.Thread(target=ctx.term, daemon=True)
    terminator.start()
    terminator.join(WAIT)
    return not terminator.is_alive()


@pytest.mark.parametrize("framework", ["asyncio", "tornado"])
def test_term_completes_a_stream_close_the_stopped_loop_never_carried_out(
    new_loop: Callable[[], asyncio.AbstractEventLoop], framework: str
) -> None:
    """A stream over a zmq_async socket, closed from another thread during its loop's last
    turn: the close was dropped with the loop, and ``ctx.term()`` hung for ever. ``term()``
    carries it out, as it does a socket's own handed close."""
    import zmq_async.tornado

    module = zmq_async.asyncio if framework == "asyncio" else zmq_async.tornado
    ctx = module.Context()
    owner = new_loop()
    sock = ctx.socket(zmq.PULL)
    sock.bind("inproc://s15-fix2-stream-close")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the shadow's warning, as the peer's
        stream = ZMQStream(sock, owner)
    stream.on_recv(lambda msg: None)
    _stop_with_a_close_handed_in_its_last_turn(owner, stream)
    try:
        assert _terminates(ctx), "ctx.term() hung on the stream's socket never closed"
        assert sock.closed
    finally:
        if not sock.closed:
            sock.close(linger=0)  # the loop is gone: let the hung term() end


def test_a_plain_sockets_stream_closed_again_after_its_loop_stopped_closes_it(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """Over a plain socket, pyzmq's ``term()`` runs none of our code, so the dropped close
    cannot be carried out there; ``stream.close()`` again, once the loop has stopped, does
    it (and ``term()`` then returns)."""
    ctx, sock, stream = _receiving_plain_stream(owner := new_loop())
    _stop_with_a_close_handed_in_its_last_turn(owner, stream)
    try:
        if not sock.closed:  # (uvloop runs what was queued before its stop: closed)
            # pyzmq's term() would wait for ever here.
            stream.close()
            assert sock.closed
        assert stream.socket is None
        assert _terminates(ctx)
    finally:
        if not sock.closed:
            sock.close(linger=0)


def test_a_stream_close_handed_to_a_loop_that_stops_at_once_is_carried_out_by_the_caller(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """The loop stops (and closes) while ``close()`` hands the close to it: finding it
    stopped, the caller closes the socket itself, so pyzmq's ``term()`` does not hang."""
    ctx, sock, stream = _receiving_plain_stream(owner := new_loop())
    real_hand_off = stream._hand_off

    def hand_off_then_stop(method: Callable[..., Any], *args: Any) -> None:
        real_hand_off(method, *args)
        last_turn.stop()  # before the turn that would have run it

    stream._hand_off = hand_off_then_stop  # type: ignore[method-assign]
    last_turn = _LastTurn(owner)
    try:
        stream.close(linger=0)
        assert sock.closed
        assert stream.socket is None
        assert _terminates(ctx)
    finally:
        last_turn.stop()
        if not sock.closed:
            sock.close(linger=0)


def test_a_second_close_from_another_thread_leaves_the_socket_to_the_running_loop(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """``close()`` twice from another thread while the loop runs: the second found the
    stream closed and closed the socket there and then, unwatching the FD from the wrong
    thread while the loop may be polling it; it is the loop's to do, as the first handed."""
    ctx, sock, stream = _receiving_plain_stream(owner := new_loop())
    release = threading.Event()
    blocked = threading.Event()
    closes: list[bool] = []

    def block() -> None:
        blocked.set()
        assert release.wait(WAIT)

    def close_callback() -> None:
        closes.append(threading.current_thread() is thread)
        owner.stop()

    stream.set_close_callback(close_callback)
    owner.call_soon(block)
    thread = threading.Thread(target=owner.run_forever)
    thread.start()
    try:
        assert blocked.wait(WAIT)
        stream.close(linger=0)
        stream.close(linger=0)
        assert not sock.closed, "the second close() closed the socket outside its loop"
    finally:
        release.set()
        thread.join(WAIT)
    try:
        assert closes == [True]  # closed by the loop's thread
        assert sock.closed
    finally:
        owner.close()
        ctx.destroy(linger=0)


def test_a_send_handed_to_a_loop_that_stopped_first_is_sent_by_a_flush(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """A send from another thread during the loop's last turn was queued behind the stop
    and dropped with the loop, yet still counted in ``send_queue_size`` for ever. As with
    the peer (whose queue is the stream's), ``flush()`` once the loop has stopped sends it."""
    ctx: zmq.Context[Any] = zmq.Context()
    owner = new_loop()
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    try:
        sending = ZMQStream(push, owner)
        sending.connect(f"tcp://127.0.0.1:{port}")
        last_turn = _LastTurn(owner)
        sending.send(b"late")  # handed to the owner, which is running
        assert sending.send_queue_size == 1
        last_turn.stop()
        sending.flush()
        assert sending.send_queue_size == 0
        assert pull.poll(WAIT * 1000)
        assert pull.recv() == b"late"
        sending.close(linger=0)
    finally:
        ctx.destroy(linger=0)
