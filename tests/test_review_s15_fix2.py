"""Review of round 15, fix2: FD numbers reused under the asyncio driver; stream close handed
from another thread."""

from __future__ import annotations

import asyncio
import os
import socket
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
