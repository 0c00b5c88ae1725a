"""zmq_async under the fixture shapes users write (the patterns of docs/testing.md).

- A context and sockets made in session- and module-scoped *sync* fixtures, used by async
  tests whose loops are function-scoped: a new loop per test (the default loop, then uvloop),
  so the same sockets move from loop to loop. Operations a test leaves pending when its loop
  closes are never served by anyone, consume nothing, and are cancelled when the next loop
  takes the socket over (or when the socket is closed).
- The reverse: a module-scoped loop (``loop_scope="module"``) shared by a module-scoped async
  fixture, per-test async fixtures and the tests; a ZMQStream on that loop.
- zmq_async.tornado sockets under the same fixtures, driven by ``gen.coroutine``.
- anyio's plugin: an async generator fixture yielding a socket pair to tests on each backend
  (asyncio, uvloop, trio), sync-fixture sockets that move from backend to backend, and a
  module-scoped async fixture (anyio's plugin needs ``anyio_backend`` as wide as it).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import pytest_asyncio
import zmq
from tornado import gen
from tornado.ioloop import IOLoop

import zmq_async.anyio
import zmq_async.asyncio
import zmq_async.tornado
from zmq_async.stream import ZMQStream

#: Bound on every wait here: generous for a loaded 2-core machine; a pass takes milliseconds.
WAIT = 10.0


def _connect(ctx: Any, bind_type: int = zmq.PULL, connect_type: int = zmq.PUSH) -> Any:
    """``(connected, bound)`` sockets of ``ctx`` over tcp on loopback (PUSH -> PULL)."""
    bound = ctx.socket(bind_type)
    port = bound.bind_to_random_port("tcp://127.0.0.1")
    connected = ctx.socket(connect_type)
    connected.connect(f"tcp://127.0.0.1:{port}")
    return connected, bound


def _close(*sockets: Any) -> None:
    for sock in sockets:
        sock.close(linger=0)


# == 1. Sync session/module fixtures, function-scoped loops ===================================


@pytest.fixture(scope="session")
def session_ctx() -> Iterator[zmq_async.asyncio.Context]:
    """One context for the whole run, made outside any loop (contexts belong to no loop)."""
    ctx = zmq_async.asyncio.Context()
    yield ctx
    ctx.destroy(linger=0)


class Shared:
    """A module-scoped socket pair and what the last test left pending on it."""

    def __init__(self, flavour: str, push: Any, pull: Any) -> None:
        self.flavour = flavour
        self.push = push
        self.pull = pull
        #: Left pending by the previous test, whose loop pytest-asyncio has closed since.
        self.left: list[asyncio.Future[Any]] = []
        self.loops: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(scope="module", params=["asyncio", "tornado"])
def shared(
    request: pytest.FixtureRequest, session_ctx: zmq_async.asyncio.Context
) -> Iterator[Shared]:
    """A PUSH/PULL pair made once per module (no loop runs here), of either future layer.

    Teardown (sync, after the last test's loop closed): closing the socket ends what that
    test left pending (cancelled; on zmq_async.tornado, failed with its ``CancelledError``, as
    the peer's close does) and leaves nothing pending.
    """
    ctx = session_ctx if request.param == "asyncio" else zmq_async.tornado.Context()
    push, pull = _connect(ctx)
    pair = Shared(request.param, push, pull)
    yield pair
    _close(push, pull)
    assert pair.left, "each test leaves operations pending"
    closed = zmq_async.tornado.CancelledError if request.param == "tornado" else ()
    assert all(f.cancelled() or isinstance(f.exception(), closed) for f in pair.left), pair.left
    assert pull._recv_futures == []
    if ctx is not session_ctx:
        ctx.term()


async def _left_receiver(pull: Any) -> Any:
    return await pull.recv_multipart()


@pytest.mark.parametrize("round_", [1, 2])
@pytest.mark.asyncio
async def test_module_sockets_move_from_test_loop_to_test_loop(shared: Shared, round_: int) -> None:
    loop = asyncio.get_running_loop()
    assert loop not in shared.loops, "pytest-asyncio gives each test its own loop"
    shared.loops.append(loop)
    push, pull = shared.push, shared.pull
    stale = shared.left
    # Nothing served what the last test left pending after its loop closed: its receive
    # future and poll are still pending, its task was cancelled by the closing loop.
    assert [f.done() for f in stale] == [False, False, True][: len(stale)]

    if shared.flavour == "tornado":
        assert IOLoop.current().asyncio_loop is loop  # type: ignore[attr-defined]

        @gen.coroutine
        def round_trip() -> Any:
            yield push.send_multipart([b"round", b"%d" % round_])
            return (yield pull.recv_multipart())

        got = await asyncio.wait_for(round_trip(), WAIT)
    else:
        await push.send_multipart([b"round", b"%d" % round_])
        got = await asyncio.wait_for(pull.recv_multipart(), WAIT)
    # Received here, on this loop: no stale waiter of the closed loop consumed it.
    assert got == [b"round", b"%d" % round_]
    # Taking the socket over cancelled the stale waiters (they consumed nothing).
    assert all(f.cancelled() for f in stale), stale

    # A receive cancelled on this loop consumes nothing either.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pull.recv(), 0.05)
    await push.send_json({"n": round_})
    assert await asyncio.wait_for(pull.recv_json(), WAIT) == {"n": round_}

    # Leave a receive, a poll with a timer, and a task pending as this test's loop closes.
    task = asyncio.create_task(_left_receiver(pull))
    await asyncio.sleep(0)  # the task starts waiting
    shared.left = [pull.recv(), pull.poll(timeout=60_000), task]
    assert len(pull._recv_futures) == 3


@pytest_asyncio.fixture
async def fresh_pair(
    session_ctx: zmq_async.asyncio.Context,
) -> AsyncIterator[tuple[zmq_async.asyncio.Socket, zmq_async.asyncio.Socket]]:
    """Per-test sockets of the session's context, on the test's loop; closed at teardown."""
    push, pull = _connect(session_ctx)
    yield push, pull
    pending = pull._recv_futures
    _close(push, pull)
    assert pending and all(f.cancelled() for f in pending), pending
    assert pull._recv_futures == []


@pytest.mark.asyncio
async def test_function_sockets_of_a_session_context(
    fresh_pair: tuple[zmq_async.asyncio.Socket, zmq_async.asyncio.Socket],
) -> None:
    push, pull = fresh_pair
    waiting = pull.recv_string()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiting), 0.05)
    waiting.cancel()  # cancelled, it consumes nothing
    await push.send_string("one")
    assert await asyncio.wait_for(pull.recv_string(), WAIT) == "one"
    pull.recv()  # left pending: the fixture's teardown must cancel it


# == 2. A module-scoped loop, shared by fixtures and tests =====================================


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def loop_ctx() -> AsyncIterator[tuple[zmq_async.asyncio.Context, asyncio.AbstractEventLoop]]:
    """A context made on the module's loop, with that loop (to check the tests share it)."""
    ctx = zmq_async.asyncio.Context()
    yield ctx, asyncio.get_running_loop()
    ctx.destroy(linger=0)


@pytest_asyncio.fixture(loop_scope="module")
async def loop_pair(
    loop_ctx: tuple[zmq_async.asyncio.Context, asyncio.AbstractEventLoop],
) -> AsyncIterator[tuple[zmq_async.asyncio.Socket, zmq_async.asyncio.Socket]]:
    """A connected pair per test, on the module's loop; closed at teardown.

    The loop outlives the test, so tasks the test left waiting on the sockets still wait at
    teardown: closing the sockets must end them (cancelled), promptly.
    """
    ctx, loop = loop_ctx
    assert asyncio.get_running_loop() is loop
    push, pull = _connect(ctx)
    await push.send(b"warm-up")  # the pair is connected before the test runs
    assert await asyncio.wait_for(pull.recv(), WAIT) == b"warm-up"
    yield push, pull
    left = asyncio.all_tasks() - {asyncio.current_task()}
    _close(push, pull)
    if left:
        done, pending = await asyncio.wait(left, timeout=WAIT)
        assert not pending
        assert all(task.cancelled() for task in done)
    assert pull._recv_futures == []


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop_pair(
    loop_ctx: tuple[zmq_async.asyncio.Context, asyncio.AbstractEventLoop],
    loop_pair: tuple[zmq_async.asyncio.Socket, zmq_async.asyncio.Socket],
    n: int,
) -> None:
    assert asyncio.get_running_loop() is loop_ctx[1]  # one loop for the module's tests
    push, pull = loop_pair
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pull.recv_json(), 0.05)  # cancelled: consumes nothing
    await push.send(json.dumps({"n": n}).encode())
    assert await asyncio.wait_for(pull.recv_json(), WAIT) == {"n": n}
    # A task still waiting when the test returns: the pair's teardown closes it out.
    task = asyncio.create_task(_left_receiver(pull))
    await asyncio.sleep(0)
    assert not task.done() and len(pull._recv_futures) == 1


# -- ZMQStream on the module's loop: callbacks registered once, serving every test ----------


class Echo:
    """A ROUTER echo ZMQStream and what it saw."""

    def __init__(self, stream: ZMQStream, addr: str) -> None:
        self.stream = stream
        self.addr = addr
        self.seen: list[list[bytes]] = []
        self.closed = 0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def echo(
    loop_ctx: tuple[zmq_async.asyncio.Context, asyncio.AbstractEventLoop],
) -> AsyncIterator[Echo]:
    """An echo server on the module's loop, for every test of the module; closed at the end."""
    ctx, loop = loop_ctx
    router = ctx.socket(zmq.ROUTER, socket_class=zmq.Socket)  # a stream drives a plain socket
    port = router.bind_to_random_port("tcp://127.0.0.1")
    stream = ZMQStream(router)  # made on the loop that will run it
    assert stream._loop is loop
    server = Echo(stream, f"tcp://127.0.0.1:{port}")

    def on_recv(s: ZMQStream, msg: list[bytes]) -> None:
        server.seen.append(msg)
        s.send_multipart(msg)

    def on_close() -> None:
        server.closed += 1

    stream.on_recv_stream(on_recv)
    stream.set_close_callback(on_close)
    yield server
    stream.close(linger=0)
    assert server.closed == 1 and stream.closed() and router.closed


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop_stream_serves_each_test(
    echo: Echo, loop_ctx: tuple[zmq_async.asyncio.Context, asyncio.AbstractEventLoop], n: int
) -> None:
    before = len(echo.seen)
    dealer = loop_ctx[0].socket(zmq.DEALER)
    async with dealer:
        dealer.connect(echo.addr)
        await dealer.send(b"ping %d" % n)
        assert await asyncio.wait_for(dealer.recv(), WAIT) == b"ping %d" % n
    assert len(echo.seen) == before + 1 and echo.seen[-1][-1] == b"ping %d" % n


# == 3. anyio's plugin ============================================================================


#: anyio's own ``anyio_backend`` is module-scoped; tests/conftest.py's is function-scoped, and a
#: module-scoped async fixture needs it (at least) module-scoped, so this module overrides it.
@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ],
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def anyio_pair(anyio_backend: Any) -> AsyncIterator[tuple[Any, Any]]:
    """A PUSH/PULL pair per test, on the test's backend; nothing left waiting, closed after."""
    ctx = zmq_async.anyio.Context()
    push, pull = _connect(ctx)
    yield push, pull
    assert not pull._reactor.recvq and not push._reactor.sendq
    _close(push, pull)
    ctx.term()


@pytest.mark.anyio
async def test_anyio_fixture_pair_round_trip_and_cancel(anyio_pair: tuple[Any, Any]) -> None:
    push, pull = anyio_pair
    with anyio.fail_after(WAIT):
        await push.send_multipart([b"x", b"y"])
        assert await pull.recv_multipart() == [b"x", b"y"]
    with anyio.move_on_after(0.05) as scope:
        await pull.recv()  # nothing to receive: cancelled, consumes nothing
    assert scope.cancelled_caught
    with anyio.fail_after(WAIT):
        await push.send(b"after")
        assert await pull.recv() == b"after"


@pytest.fixture(scope="module")
def anyio_shared() -> Iterator[tuple[Any, Any]]:
    """Sync, module-scoped anyio sockets: every test of every backend uses them in turn."""
    ctx = zmq_async.anyio.Context()
    push, pull = _connect(ctx)
    yield push, pull
    assert not pull._reactor.recvq
    _close(push, pull)
    ctx.term()


@pytest.mark.anyio
async def test_anyio_sync_fixture_sockets_move_between_runs(
    anyio_shared: tuple[Any, Any], anyio_backend: Any
) -> None:
    push, pull = anyio_shared
    name = f"{anyio_backend[0]} {anyio_backend[1]}".encode()
    with anyio.move_on_after(0.05):
        await pull.recv()  # cancelled on this run: consumes nothing
    with anyio.fail_after(WAIT):
        await push.send(name)
        assert await pull.recv() == name


@pytest.fixture(scope="module")
async def anyio_module_pair(anyio_backend: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """Module-scoped async fixture: a connected pair and the run (loop) it was made in."""
    ctx = zmq_async.anyio.Context()
    push, pull = _connect(ctx)
    with anyio.fail_after(WAIT):
        await push.send(b"warm-up")
        assert await pull.recv() == b"warm-up"
    yield push, pull, anyio.lowlevel.current_token()
    assert not pull._reactor.recvq
    _close(push, pull)
    ctx.term()


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.anyio
async def test_anyio_module_fixture_shares_its_run(
    anyio_module_pair: tuple[Any, Any, Any], n: int
) -> None:
    push, pull, token = anyio_module_pair
    assert anyio.lowlevel.current_token() == token  # the fixture's loop still runs this test
    with anyio.move_on_after(0.05):
        await pull.recv()
    with anyio.fail_after(WAIT):
        await push.send_multipart([b"n", b"%d" % n])
        assert await pull.recv_multipart() == [b"n", b"%d" % n]


# == 4. gevent and eventlet: plain pytest, monkeypatched in a process of its own ==================

#: A user's green suite: sync fixtures (a session context, a pair per test), greenlets.
GREEN_CONFTEST = """
import pytest
import zmq
import {module} as zgreen
from {framework} import Timeout, sleep, spawn
{is_patched}

@pytest.fixture(scope="session")
def ctx():
    context = zgreen.Context()
    yield context
    context.destroy(linger=0)

@pytest.fixture
def pair(ctx):
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{{port}}")
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)

def result(greenlet):
    with Timeout(10):
        return greenlet.{get}()
"""

GREEN_TESTS = """
import zmq
from conftest import Timeout, is_patched, result, sleep, spawn

def test_monkeypatched():
    assert is_patched("socket")

def test_round_trip_in_a_greenlet(pair):
    push, pull = pair
    receiver = spawn(pull.recv_multipart)
    sleep(0.01)  # it waits
    push.send_multipart([b"a", b"b"])
    assert result(receiver) == [b"a", b"b"]

def test_timed_out_recv_consumes_nothing(pair):
    push, pull = pair
    with Timeout(0.05, False):
        pull.recv()
    push.send(b"x")
    assert result(spawn(pull.recv)) == b"x"

def test_close_wakes_a_waiting_greenlet(pair):
    _, pull = pair
    def receive():
        try:
            pull.recv()
        except zmq.ZMQError as exc:
            return exc.errno
    receiver = spawn(receive)
    sleep(0.01)
    pull.close(linger=0)
    assert result(receiver) == zmq.ENOTSOCK
"""

#: Per flavour: the names GREEN_CONFTEST needs, and how to start pytest patched.
GREEN_FLAVOURS: dict[str, tuple[dict[str, str], list[str]]] = {
    # gevent runs any module patched first: python -m gevent.monkey --module pytest
    "gevent": (
        {
            "module": "zmq_async.green",
            "framework": "gevent",
            "get": "get",
            "is_patched": "from gevent.monkey import is_module_patched as is_patched",
        },
        ["-m", "gevent.monkey", "--module", "pytest"],
    ),
    # eventlet has no such launcher: a short script patches, then runs pytest.
    "eventlet": (
        {
            "module": "zmq_async.green.eventlet",
            "framework": "eventlet",
            "get": "wait",
            "is_patched": "from eventlet.patcher import is_monkey_patched as is_patched",
        },
        ["run_patched.py"],
    ),
}

RUN_PATCHED = """
import eventlet
eventlet.monkey_patch()
import sys, pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("flavour", list(GREEN_FLAVOURS))
def test_green_suite_monkeypatched_in_its_own_process(tmp_path: Path, flavour: str) -> None:
    """A user's green suite, run by plain pytest in a process patched before pytest starts."""
    names, launcher = GREEN_FLAVOURS[flavour]
    (tmp_path / "conftest.py").write_text(GREEN_CONFTEST.format(**names))
    (tmp_path / "test_user_green.py").write_text(GREEN_TESTS)
    (tmp_path / "run_patched.py").write_text(RUN_PATCHED)
    # Only pytest's own plugins: anyio's imports trio, which cannot load over eventlet's socket.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    args = ["-q", "-p", "no:cacheprovider", "-W", "error", "-W", "ignore::ResourceWarning"]
    done = subprocess.run(
        [sys.executable, *launcher, *args, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout, done.stdout
