"""The drop-in surface as code that does not know about us sees it: peer beside ours (round 16).

Each check runs on the peer and on ours alike: what the peer does is what is expected. The
names a program reaches through the peer module, what ``poll()`` answers, the stream's
callbacks as programs read them, subclasses, and a whole program written for pyzmq, run
plain and under ``ZMQ_ASYNC_INSTALL=1`` with the same output.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import importlib
import os
import pickle
import subprocess
import sys
import textwrap
import types
from typing import Any

import pytest
import zmq

#: (peer module, ours): the layers ``zmq_async.install()`` swaps (green: tests/green).
PAIRS = [
    ("zmq.asyncio", "zmq_async.asyncio"),
    ("zmq.eventloop.future", "zmq_async.tornado"),
    ("zmq.eventloop.zmqstream", "zmq_async.stream"),
    ("zmq_anyio", "zmq_async.zmq_anyio"),
]

#: What the peer modules import for their own use: no program reaches these through them.
IMPORTED_FOR_THEIR_OWN_USE = {
    "annotations",
    "Any",
    "Awaitable",
    "Callable",
    "Literal",
    "Sequence",
    "TYPE_CHECKING",
    "overload",
    "Queue",
    "WeakKeyDictionary",
    "POLLIN",
    "POLLOUT",
}


def _public_names(module: types.ModuleType) -> set[str]:
    """The names ``dir(module)`` shows without underscore, submodules and imported helpers."""
    return {
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
        and name not in IMPORTED_FOR_THEIR_OWN_USE
    }


@pytest.mark.parametrize(("peer", "ours"), PAIRS)
def test_every_name_a_program_reaches_through_the_peer_module_is_there(peer, ours):
    """Not only ``__all__``: ``zmq.asyncio.Future``, ``zmqstream.IOLoop.instance()`` are in use."""
    theirs, mine = importlib.import_module(peer), importlib.import_module(ours)
    assert sorted(name for name in _public_names(theirs) if not hasattr(mine, name)) == []


def test_those_names_are_the_same_things():
    import tornado.ioloop
    import zmq.asyncio
    import zmq.eventloop.future
    import zmq.eventloop.zmqstream

    import zmq_async.asyncio
    import zmq_async.stream
    import zmq_async.tornado

    assert zmq_async.asyncio.Future is zmq.asyncio.Future is asyncio.Future
    assert zmq_async.asyncio.SelectorEventLoop is zmq.asyncio.SelectorEventLoop
    assert issubclass(zmq_async.asyncio.ProactorSelectorThreadWarning, RuntimeWarning)
    assert zmq_async.tornado.Future is zmq.eventloop.future.Future  # Tornado's is asyncio's
    assert zmq_async.tornado.IOLoop is zmq.eventloop.future.IOLoop is tornado.ioloop.IOLoop
    assert zmq_async.stream.IOLoop is zmq.eventloop.zmqstream.IOLoop
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = zmq_async.stream.no_such_name
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = zmq_async.tornado.no_such_name


# -- poll() answers a plain int, as the peers' (and zmq.Socket.poll) do --------------------------

FUTURE_LAYERS = ["zmq.asyncio", "zmq_async.asyncio", "zmq.eventloop.future", "zmq_async.tornado"]


def _connected(ctx: Any) -> tuple[Any, Any]:
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    b.connect(f"tcp://127.0.0.1:{a.bind_to_random_port('tcp://127.0.0.1')}")
    return a, b


@pytest.mark.timeout(30)
@pytest.mark.asyncio
@pytest.mark.parametrize("layer", FUTURE_LAYERS)
async def test_socket_poll_answers_a_plain_int(layer):
    """Not a ``zmq.PollEvent`` (what ``EVENTS & flags=zmq.POLLIN`` makes): its repr differs,
    and ``type(events) is int`` fails; the answer of a waiting poll was an int already."""
    ctx = importlib.import_module(layer).Context()
    a, b = _connected(ctx)
    try:
        nothing = await a.poll(0)
        assert (nothing, type(nothing)) == (0, int)
        waiting = a.poll(10_000)
        await b.send(b"x")
        woken = await asyncio.wait_for(waiting, 10)
        assert (woken, type(woken)) == (zmq.POLLIN, int)
        at_once = await a.poll(10_000)
        assert (at_once, type(at_once)) == (zmq.POLLIN, int)
        writable = await a.poll(0, zmq.POLLOUT)
        assert (writable, type(writable)) == (zmq.POLLOUT, int)
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
@pytest.mark.anyio
async def test_anyio_and_zmq_anyio_poll_answer_a_plain_int_too():
    """``zmq_async.anyio`` has zmq.asyncio's semantics; ``zmq_anyio``'s ``apoll(0)``
    answers what its Poller does, an int."""
    import zmq_async.anyio
    import zmq_async.zmq_anyio

    ctx = zmq_async.anyio.Context()
    a, b = _connected(ctx)
    try:
        await b.send(b"x")
        ready = await a.poll(10_000)
        assert (ready, type(ready)) == (zmq.POLLIN, int)
        async with zmq_async.zmq_anyio.Socket(a) as wrapped:
            at_once = wrapped.apoll(0).return_value
            assert (at_once, type(at_once)) == (zmq.POLLIN, int)
    finally:
        ctx.destroy(linger=0)


# -- the stream's callbacks, as programs read them ----------------------------------------------

STREAMS = ["zmq.eventloop.zmqstream", "zmq_async.stream"]


@pytest.mark.timeout(30)
@pytest.mark.asyncio
@pytest.mark.parametrize("module", STREAMS)
async def test_a_program_chains_its_callback_in_front_of_the_registered_one(module):
    """As a Jupyter server extension does with a kernel's activity stream: read
    ``stream._recv_callback``, register a callback that sees each message, then calls it."""
    stream_class = importlib.import_module(module).ZMQStream
    ctx = zmq.Context()
    pull, push = _connected(ctx)
    stream = stream_class(pull)
    try:
        loop = asyncio.get_running_loop()
        first = loop.create_future()
        stream.on_recv(first.set_result)
        previous = stream._recv_callback
        seen: list[Any] = []
        stream.on_recv(lambda msg: (seen.append(msg), previous(msg)))
        push.send(b"x")
        assert await asyncio.wait_for(first, 10) == [b"x"]
        assert seen == [[b"x"]]

        with_stream: list[Any] = []
        stream.on_recv_stream(lambda s, msg: with_stream.append((s, msg)))
        stream._recv_callback([b"direct"])  # on_recv_stream's callback, given the message only
        assert with_stream == [(stream, [b"direct"])]
        stream.stop_on_recv()
        assert stream._recv_callback is None

        def on_send(msg: Any, status: Any) -> None:
            pass

        assert stream._send_callback is None
        stream.on_send(on_send)
        assert stream._send_callback is on_send
        stream.stop_on_send()
        assert stream._send_callback is None
    finally:
        stream.close(linger=0)
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
@pytest.mark.asyncio
@pytest.mark.parametrize("module", STREAMS)
async def test_a_stream_subclass_has_a_repr_of_its_own(module):
    """A subclass is named by its repr, and one that skips ``__init__`` (a websocket stand-in
    for a stream, as Solara has) still has one: the default, instead of AttributeError."""
    stream_class = importlib.import_module(module).ZMQStream

    class Stand(stream_class):  # type: ignore[misc, valid-type]
        def __init__(self, channel: str) -> None:
            self.channel = channel

    class Worker(stream_class):  # type: ignore[misc, valid-type]
        pass

    stand = Stand("shell")
    assert repr(stand) == object.__repr__(stand)
    ctx = zmq.Context()
    worker = Worker(ctx.socket(zmq.PULL))
    try:
        assert f"{Worker.__qualname__}" in repr(worker)
        assert "ZMQStream" not in repr(worker).split("(")[0]
    finally:
        worker.close(linger=0)
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
@pytest.mark.asyncio
@pytest.mark.parametrize("module", STREAMS)
async def test_a_stream_copies_as_the_peers_and_refuses_pickling(module):
    """``copy.copy`` is a shallow copy on the same socket; pickling fails with TypeError, and
    so does a deep copy (the peer's with RuntimeError), without copying the event loop's
    innards into a broken loop (whose ``__del__`` the collector reports as unraisable)."""
    stream_class = importlib.import_module(module).ZMQStream
    ctx = zmq.Context()
    # ours on the asyncio loop itself, as without Tornado (the peer needs Tornado's IOLoop)
    io_loop = asyncio.get_running_loop() if module == "zmq_async.stream" else None
    stream = stream_class(ctx.socket(zmq.PULL), io_loop)
    try:
        shallow = copy.copy(stream)
        assert type(shallow) is stream_class and shallow.socket is stream.socket
        with pytest.raises(TypeError):
            pickle.dumps(stream)
        unraisable: list[Any] = []
        hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
        try:
            try:
                copy.deepcopy(stream)
            except (TypeError, RuntimeError):
                pass  # (not kept: its traceback would keep what the copy made alive)
            else:
                raise AssertionError("a stream was deep-copied")
            gc.collect()
        finally:
            sys.unraisablehook = hook
        assert [u.exc_value for u in unraisable] == []
    finally:
        stream.close(linger=0)
        ctx.destroy(linger=0)


# -- a whole program written for pyzmq: plain, then under ZMQ_ASYNC_INSTALL=1 -------------------

PROGRAM = """
import asyncio, copy, pickle, warnings
import zmq, zmq.asyncio
from zmq.eventloop import zmqstream

# on Windows pyzmq warns when it starts a selector thread; programs silence it by name
warnings.filterwarnings("ignore", category=zmq.asyncio.ProactorSelectorThreadWarning)


class Socket(zmq.asyncio.Socket):
    tag = None  # pyzmq's sockets take only declared attributes (others are options)

    async def recv_tagged(self):
        return self.tag, await self.recv()


class Context(zmq.asyncio.Context):
    _socket_class = Socket


class Worker(zmqstream.ZMQStream):
    def __init__(self, socket, io_loop=None, **kwargs):
        self.limit = kwargs.pop("limit", None)
        super().__init__(socket, io_loop, **kwargs)


def connected(ctx):
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    b.connect(f"tcp://127.0.0.1:{a.bind_to_random_port('tcp://127.0.0.1')}")
    return a, b


async def main():
    ctx = Context()
    a, b = connected(ctx)
    a.tag = "a"
    print(type(a).__name__, isinstance(a, zmq.asyncio.Socket), isinstance(a, zmq.Socket))
    await b.send(b"x")
    print(await asyncio.wait_for(a.recv_tagged(), 10))
    made = zmq.asyncio.Future()
    made.set_result("made")
    print(await made, type(await a.poll(0)).__name__, type(copy.copy(a)).__name__)
    for obj in (a, ctx):
        try:
            pickle.dumps(obj)
        except TypeError:
            print("pickle: TypeError")
    sync = zmq.Context()
    pull, push = connected(sync)
    worker = Worker(pull, limit=3)
    got = asyncio.get_running_loop().create_future()
    worker.on_recv(got.set_result)
    previous = worker._recv_callback
    worker.on_recv(lambda msg: previous(msg + [b"chained"]))
    push.send(b"y")
    print(worker.limit, await asyncio.wait_for(got, 10))
    print(zmqstream.IOLoop.current() is zmqstream.IOLoop.current())
    worker.close(linger=0)
    sync.destroy(linger=0)
    ctx.destroy(linger=0)


asyncio.run(main())
print(zmq.asyncio.__name__)
"""


@pytest.mark.timeout(60)
def test_a_program_written_for_pyzmq_runs_the_same_installed():
    env = {k: v for k, v in os.environ.items() if k != "ZMQ_ASYNC_INSTALL"}
    code = textwrap.dedent(PROGRAM)
    runs = {}
    for side, value in (("pyzmq", "0"), ("zmq_async", "1")):
        proc = subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            capture_output=True,
            text=True,
            timeout=50,
            env={**env, "ZMQ_ASYNC_INSTALL": value},
        )
        assert proc.returncode == 0, (side, proc.stderr)
        runs[side] = proc.stdout.splitlines()
    assert runs["pyzmq"][-1] == "zmq.asyncio" and runs["zmq_async"][-1] == "zmq_async.asyncio"
    assert runs["pyzmq"][:-1] == runs["zmq_async"][:-1]
    assert runs["pyzmq"][:-1] == [
        "Socket True True",
        "('a', b'x')",
        "made int Socket",
        "pickle: TypeError",
        "pickle: TypeError",
        "3 [b'y', b'chained']",
        "True",
    ]
