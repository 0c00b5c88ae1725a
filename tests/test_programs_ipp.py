"""What ipyparallel 9.2.0 does with ZeroMQ, reduced (scripts/programs runs its own tests).

Its Client keeps seven ZMQStreams on a Tornado IOLoop of its own, in an IO thread: the thread
creates the loop (not current) and the streams before the loop starts, the main thread hands
every send to the loop (``io_loop.add_callback``), replies come as frames (``on_recv(copy=
False)``), and ``close()`` stops the loop, joins the thread, which closes the loop with
``all_fds=True``, and then closes the sockets still open. Its test fixture destroys
``zmq.Context.instance()`` after every test, under clients left open, from the main thread
while their IO threads run. An engine registers by polling a plain DEALER socket with
``zmq.asyncio.Poller`` and a timeout, then reads the reply with the blocking socket.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import tornado.ioloop
import zmq

import zmq_async.asyncio
from zmq_async.stream import ZMQStream

pytestmark = pytest.mark.timeout(60)

LOOPBACK = "tcp://127.0.0.1"
WAIT = 20.0  # s: generous, the suite runs on a loaded 2-core machine
KINDS = [zmq.DEALER, zmq.DEALER, zmq.DEALER, zmq.DEALER, zmq.SUB, zmq.SUB, zmq.DEALER]


class IOThread:
    """A Tornado IOLoop in a thread of its own, made and closed as ipyparallel's Client does."""

    def __init__(self, setup: Callable[[tornado.ioloop.IOLoop], Any]) -> None:
        self.setup = setup
        self.made: Any = None
        self.failure: BaseException | None = None
        self.closed_loop = threading.Event()
        started = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(WAIT), "the IO thread did not start"
        assert self.failure is None, self.failure

    def _main(self, started: threading.Event) -> None:
        self.io_loop = tornado.ioloop.IOLoop(make_current=False)
        try:
            self.made = self.setup(self.io_loop)
        except BaseException as exc:
            self.failure = exc
            started.set()
            raise
        started.set()
        try:
            self.io_loop.start()
        finally:
            try:
                self.io_loop.close(all_fds=True)
            except BaseException as exc:
                self.failure = exc
                raise
            self.closed_loop.set()

    def call(self, callback: Callable[..., Any], *args: Any) -> None:
        self.io_loop.add_callback(callback, *args)

    def stop(self) -> None:
        self.io_loop.add_callback(self.io_loop.stop)
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the IO thread did not stop"
        assert self.closed_loop.is_set() and self.failure is None, self.failure


def term_within(ctx: zmq.Context[Any], timeout: float = WAIT) -> None:
    """``ctx.term()`` must return: it hangs while any socket of the context is open."""
    done = threading.Event()

    def term() -> None:
        ctx.term()
        done.set()

    threading.Thread(target=term, daemon=True).start()
    assert done.wait(timeout), "Context.term() hangs: a socket was left open"


def test_client_io_thread_round_trips_then_its_loop_closes_the_sockets() -> None:
    """Sends handed from the main thread arrive in order, replies come as frames, and the
    IO thread's ``IOLoop.close(all_fds=True)`` closes every stream's socket, warning nothing."""
    ctx: zmq.Context[Any] = zmq.Context()
    hub = ctx.socket(zmq.ROUTER)
    port = hub.bind_to_random_port(LOOPBACK)
    hub_socket = hub
    n_streams, n_messages = 4, 50
    replies: list[list[Any]] = [[] for _ in range(n_streams)]
    all_replied = threading.Event()

    def controller(io_loop: tornado.ioloop.IOLoop) -> ZMQStream:
        stream = ZMQStream(hub_socket, io_loop)
        stream.on_recv_stream(lambda s, msg: s.send_multipart(msg))  # echo, identity first
        return stream

    def client(io_loop: tornado.ioloop.IOLoop) -> list[ZMQStream]:
        streams = []
        for i in range(n_streams):
            sock = ctx.socket(zmq.DEALER)
            sock.connect(f"{LOOPBACK}:{port}")

            def dispatch(msg: list[Any], i: int = i) -> None:
                replies[i].append(msg)
                if all(len(r) == n_messages for r in replies):
                    all_replied.set()

            stream = ZMQStream(sock, io_loop)
            stream.on_recv(dispatch, copy=False)
            streams.append(stream)
        return streams

    hub_thread = IOThread(controller)
    io = IOThread(client)
    streams: list[ZMQStream] = io.made
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for n in range(n_messages):
                for i, stream in enumerate(streams):
                    io.call(stream.send_multipart, [b"req", b"%d" % i, b"%d" % n])
            assert all_replied.wait(WAIT), [len(r) for r in replies]
            io.stop()
        assert [str(w.message) for w in caught] == []
        for i, got in enumerate(replies):
            assert all(isinstance(frame, zmq.Frame) for msg in got for frame in msg)
            assert [[f.bytes for f in msg] for msg in got] == [
                [b"req", b"%d" % i, b"%d" % n] for n in range(n_messages)
            ]
        assert all(stream.closed() for stream in streams)
        assert all(stream.socket is None for stream in streams)
    finally:
        hub_thread.stop()
    assert hub_socket.closed
    term_within(ctx)


def test_instance_context_destroyed_under_a_running_io_thread() -> None:
    """``ctx.destroy()`` from the main thread, under streams that another thread's loop runs:
    each stream closes itself once (its close callback runs), the loop goes on, and stopping
    and closing it afterwards (``all_fds=True``) fails nothing."""
    ctx: zmq.Context[Any] = zmq.Context()
    peers = {zmq.DEALER: ctx.socket(zmq.ROUTER), zmq.SUB: ctx.socket(zmq.PUB)}
    addresses = {kind: f"{LOOPBACK}:{s.bind_to_random_port(LOOPBACK)}" for kind, s in peers.items()}
    closes: list[int] = []
    all_closed = threading.Event()
    still_running = threading.Event()

    def client(io_loop: tornado.ioloop.IOLoop) -> list[ZMQStream]:
        streams = []
        for i, kind in enumerate(KINDS):
            sock = ctx.socket(kind)
            sock.connect(addresses[kind])
            if kind == zmq.SUB:
                sock.subscribe(b"")
            stream = ZMQStream(sock, io_loop)
            stream.on_recv(lambda msg: None)

            def closed(i: int = i) -> None:
                closes.append(i)
                if len(closes) == len(KINDS):
                    all_closed.set()

            stream.set_close_callback(closed)
            streams.append(stream)
        return streams

    # Unregistering a watched FD after libzmq closed it warns, as the peer does when it sees
    # the closed socket; the program closed the sockets under the streams, not us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        io = IOThread(client)
        streams: list[ZMQStream] = io.made
        ctx.destroy(linger=0)
        assert all_closed.wait(WAIT), f"closed: {sorted(closes)}"
        io.call(still_running.set)
        assert still_running.wait(WAIT), "the IO loop stopped serving callbacks"
        io.stop()
    assert sorted(closes) == list(range(len(KINDS)))  # once each
    assert all(stream.closed() for stream in streams)


@pytest.mark.asyncio
async def test_engine_registration_polls_a_plain_socket_with_a_timeout() -> None:
    """The controller is slow to reply: the poll returns [] after its timeout (neither at once
    nor never). Then it replies: the poll reports the plain socket, whose blocking receive
    reads the reply; then the context terminates (the poll left nothing open)."""
    ctx: zmq.Context[Any] = zmq.Context()
    loop = asyncio.get_running_loop()
    hub = ctx.socket(zmq.ROUTER)
    reg = ctx.socket(zmq.DEALER)
    try:
        reg.connect(f"{LOOPBACK}:{hub.bind_to_random_port(LOOPBACK)}")
        reg.send(b"registration_request")
        poller = zmq_async.asyncio.Poller()
        poller.register(reg, zmq.POLLIN)
        start = loop.time()
        assert await asyncio.wait_for(poller.poll(timeout=300), WAIT) == []
        assert loop.time() - start >= 0.25

        request = await asyncio.wait_for(loop.run_in_executor(None, hub.recv_multipart), WAIT)
        assert request[1:] == [b"registration_request"]
        polled = poller.poll(timeout=int(WAIT * 1000))
        hub.send_multipart([request[0], b"registration_reply"])
        assert await asyncio.wait_for(polled, WAIT) == [(reg, zmq.POLLIN)]
        assert reg.recv_multipart(zmq.NOBLOCK) == [b"registration_reply"]
    finally:
        hub.close(linger=0)
        reg.close(linger=0)
    term_within(ctx)
