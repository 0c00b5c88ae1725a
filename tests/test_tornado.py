"""zmq_async.tornado: a drop-in for zmq.eventloop.future, with await and with gen.coroutine."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.concurrent
import tornado.gen
import tornado.ioloop
import zmq
import zmq.eventloop.future as peer

import zmq_async.asyncio
import zmq_async.stream
import zmq_async.tornado as ours

#: The bound of each test (the old hand-made IOLoop runner's was 10 s on the loop alone).
#: The async tests run on pytest-asyncio's loop (asyncio's, then uvloop's): inside them,
#: ``IOLoop.current()`` is Tornado's wrapper of that loop, as in any Tornado 6 program.
pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def ctx() -> Iterator[ours.Context]:
    context = ours.Context()
    yield context
    context.destroy(linger=0)


def connected(ctx: ours.Context, a: int, b: int) -> tuple[ours.Socket, ours.Socket]:
    sb = ctx.socket(b)
    port = sb.bind_to_random_port("tcp://127.0.0.1")
    sa = ctx.socket(a)
    sa.connect(f"tcp://127.0.0.1:{port}")
    return sa, sb


def test_exports_and_classes() -> None:
    assert sorted(ours.__all__) == [
        "CancelledError",
        "Context",
        "Poller",
        "SendQueueFull",
        "Socket",
        "ZMQStream",
    ]
    assert ours.ZMQStream is zmq_async.stream.ZMQStream
    assert issubclass(ours.Socket, zmq_async.asyncio.Socket)
    assert issubclass(ours.Poller, zmq_async.asyncio.Poller)
    assert issubclass(ours.Context, zmq.Context)
    assert ours.Context._socket_class is ours.Socket


def test_repr_names_and_context_instance(ctx: ours.Context) -> None:
    sock = ctx.socket(zmq.PUSH)
    assert repr(sock).startswith("<zmq_async.tornado.Socket(zmq.PUSH)")
    assert repr(ctx).startswith("<zmq_async.tornado.Context(")
    sock.close()
    inst = ours.Context.instance()
    try:
        assert type(inst) is ours.Context and inst is ours.Context.instance()
        assert inst is not zmq_async.asyncio.Context.instance()
    finally:
        inst.term()
        zmq_async.asyncio.Context.instance().term()


def test_io_loop_argument_is_deprecated_and_ignored() -> None:
    with pytest.warns(DeprecationWarning, match="io_loop"):
        context = ours.Context(io_loop=object())
    context.term()


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [(ours.Socket, peer.Socket), (ours.Poller, peer.Poller), (ours.Context, peer.Context)],
)
def test_same_methods_and_parameters_as_the_peer(mine: type, theirs: type) -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}

    assert not public(theirs) - public(mine)
    for name in sorted(public(theirs)):
        try:
            expected = inspect.signature(getattr(theirs, name))
        except (TypeError, ValueError):
            continue
        actual = inspect.signature(getattr(mine, name))
        for param in expected.parameters.values():
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            assert param.name in actual.parameters or any(
                p.kind is p.VAR_KEYWORD for p in actual.parameters.values()
            ), (name, param.name)


@pytest.mark.asyncio
async def test_gen_coroutine_yields_futures(ctx: ours.Context) -> None:
    push, pull = connected(ctx, zmq.PUSH, zmq.PULL)

    @tornado.gen.coroutine
    def main() -> Any:
        sent = push.send_multipart([b"a", b"b"])
        assert isinstance(sent, tornado.concurrent.Future)
        yield sent
        events = yield pull.poll(timeout=5000)
        assert events == zmq.POLLIN
        msg = yield pull.recv_multipart()
        yield push.send_json({"k": 1})
        obj = yield pull.recv_json()
        return msg, obj

    assert await main() == ([b"a", b"b"], {"k": 1})


@pytest.mark.asyncio
async def test_await_and_poller_on_the_ioloop(ctx: ours.Context) -> None:
    req, rep = connected(ctx, zmq.REQ, zmq.REP)

    async def server() -> None:
        poller = ours.Poller()
        poller.register(rep, zmq.POLLIN)
        ready = await poller.poll(timeout=5000)
        assert ready == [(rep, zmq.POLLIN)]
        await rep.send(await rep.recv())

    task = asyncio.ensure_future(server())
    await req.send(b"echo")
    reply: bytes = await req.recv()
    await task
    assert reply == b"echo"


@pytest.mark.asyncio
async def test_timeout_raises_again_and_close_cancels_pending(ctx: ours.Context) -> None:
    pull = ctx.socket(zmq.PULL)
    pull.rcvtimeo = 50

    @tornado.gen.coroutine
    def main() -> Any:
        with pytest.raises(zmq.Again):
            yield pull.recv()
        pull.rcvtimeo = -1
        pending = pull.recv()
        pull.close()
        with pytest.raises(ours.CancelledError):
            yield pending

    await main()


@pytest.mark.asyncio
async def test_close_fails_pending_futures_with_an_exception_as_the_peer(
    ctx: ours.Context,
) -> None:
    """zmq.eventloop.future's CancelledError is an Exception: ``except Exception`` around an
    await catches it, and the task goes on (an asyncio.CancelledError would end it)."""
    assert ours.CancelledError.__name__ == peer.CancelledError.__name__
    _, pull = connected(ctx, zmq.PUSH, zmq.PULL)
    _, pull2 = connected(ctx, zmq.PUSH, zmq.PULL)

    async def consumer() -> list[str]:
        seen = []
        try:
            await pull.recv()
        except Exception as exc:  # as a program written for the peer does
            assert isinstance(exc, ours.CancelledError)  # caught by that too
            seen.append("closed")
        async for _ in pull2:  # our beyond-the-peer iteration ends at close
            seen.append("message")
        seen.append("ended")
        return seen

    task = asyncio.ensure_future(consumer())
    await asyncio.sleep(0.05)
    pull.close()
    await asyncio.sleep(0.05)
    pull2.close()
    assert await asyncio.wait_for(task, 5) == ["closed", "ended"]


@pytest.mark.asyncio
async def test_zmqstream_on_a_tornado_socket_beside_its_futures(ctx: ours.Context) -> None:
    push, pull = connected(ctx, zmq.PUSH, zmq.PULL)
    with pytest.warns(RuntimeWarning, match="plain shadow"):  # as the peer's ZMQStream
        stream = ours.ZMQStream(pull)
    assert stream.io_loop is tornado.ioloop.IOLoop.current()
    got: list[Any] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_recv(msg: list[bytes]) -> None:
        got.append(msg)
        done.set_result(None)

    stream.on_recv(on_recv)
    await push.send(b"streamed")
    await asyncio.wait_for(done, 5)
    stream.close()
    assert got == [[b"streamed"]]


@pytest.mark.asyncio
async def test_a_task_awaiting_a_receive_can_be_cancelled(ctx: ours.Context) -> None:
    """zmq.eventloop.future's Futures break this (``cancel()`` takes no ``msg``); ours do not."""
    push, pull = connected(ctx, zmq.PUSH, zmq.PULL)

    async def receive() -> bytes:
        return await pull.recv()  # type: ignore[no-any-return]

    task = asyncio.ensure_future(receive())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await push.send(b"not lost")  # the cancelled receive consumed nothing
    assert await asyncio.wait_for(pull.recv(), 5) == b"not lost"


def test_ioloop_close_all_fds_closes_the_sockets_used_under_it(ctx: ours.Context) -> None:
    """As the peer (pyzmq's test_future.py::test_close_all_fds): a socket is listed among the
    IOLoop's handlers once used there, so ``close(all_fds=True)`` closes it."""
    # An explicit IOLoop: the test is of what closing it does.
    io_loop = tornado.ioloop.IOLoop(make_current=False)
    used, idle = ctx.socket(zmq.PUB), ctx.socket(zmq.PUB)

    async def attach() -> Any:
        return used._get_loop()

    assert io_loop.run_sync(attach) is io_loop
    assert used.FD in io_loop.handlers  # type: ignore[attr-defined]
    io_loop.close(all_fds=True)
    assert used.closed
    assert not idle.closed  # never used under that IOLoop
    idle.close()


def test_ioloop_listing_follows_the_socket(ctx: ours.Context) -> None:
    """Closing leaves the handlers; ``all_fds=False`` leaves the socket open; a second wrapper
    of the same libzmq socket (whose FD is listed already) and a plain asyncio loop are fine."""
    # Explicit loops: an IOLoop closed, then the socket used on a plain asyncio loop after it.
    io_loop = tornado.ioloop.IOLoop(make_current=False)
    push, pull = connected(ctx, zmq.PUSH, zmq.PULL)
    shadow = ours.Socket.from_socket(pull)
    push_fd, pull_fd = push.FD, pull.FD

    async def main() -> list[Any]:
        await push.send(b"x")
        return [await pull.recv(), await shadow.poll(0, zmq.POLLOUT)]

    try:
        assert io_loop.run_sync(main) == [b"x", 0]
        handlers = io_loop.handlers  # type: ignore[attr-defined]
        assert set(handlers) == {push_fd, pull_fd}
        push.close()
        assert set(handlers) == {pull_fd}
    finally:
        io_loop.close(all_fds=False)
    assert not pull.closed and not shadow.closed

    async def on_asyncio() -> None:
        with pytest.raises(zmq.Again):
            await pull.recv(zmq.NOBLOCK)  # no IOLoop on this loop: nothing to list it in

    asyncio.run(on_asyncio())
    pull.close()


@pytest.mark.asyncio
async def test_ioloop_holds_its_sockets_weakly(ctx: ours.Context) -> None:
    """A listed socket dropped unclosed is freed, and its stale entry gives way to the next."""
    import gc
    import weakref

    plain = zmq.Context.socket(ctx, zmq.PULL)  # a plain socket, wrapped (shadowed) below

    async def use_a_wrapper() -> Any:
        sock = ours.Socket.from_socket(plain)  # a shadow: dropping it unclosed is allowed
        with pytest.raises(zmq.Again):
            await sock.recv(zmq.NOBLOCK)
        return weakref.ref(sock)

    try:
        handlers = tornado.ioloop.IOLoop.current().handlers  # type: ignore[attr-defined]
        first = await use_a_wrapper()
        stale = handlers[plain.FD][0]
        gc.collect()
        assert first() is None
        await use_a_wrapper()  # its entry replaces the stale one
        assert handlers[plain.FD][0] is not stale
    finally:
        plain.close()


@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_a_coroutine_on_another_threads_ioloop_uses_the_socket_through_its_loop(
    ctx: ours.Context,
) -> None:
    """The socket's IOLoop runs in a thread (jupyter_client's IOLoopThread shape); a
    coroutine on another IOLoop awaits its operations, which run on the socket's thread."""
    # The owner's IOLoop is explicit: it runs in another thread; the test's loop is the other.
    import threading

    push, pull = connected(ctx, zmq.PUSH, zmq.PULL)
    owner = tornado.ioloop.IOLoop(make_current=False)
    bound = threading.Event()
    served_in: list[int] = []

    async def bind_here() -> None:
        await push.send(b"first")
        pending = pull.recv()  # pull now belongs to the owner's loop, and waits
        pending.add_done_callback(lambda _: served_in.append(threading.get_ident()))
        bound.set()

    owner.add_callback(bind_here)
    thread = threading.Thread(target=owner.start)
    thread.start()
    try:
        assert await asyncio.to_thread(bound.wait, 10)

        @tornado.gen.coroutine
        def elsewhere() -> Any:
            yield push.send(b"second")
            result = yield pull.recv()
            return result

        assert await elsewhere() == b"second"
        assert served_in == [thread.ident]  # the owner's receive was served first, there
    finally:
        owner.add_callback(owner.stop)
        await asyncio.to_thread(thread.join, 10)
        owner.close(all_fds=True)
