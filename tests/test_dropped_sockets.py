"""A socket dropped without ``close()`` is closed at once, as pyzmq's is, on every layer.

pyzmq closes such a socket (with a ResourceWarning) when its last reference goes, so a later
``Context.term()`` returns. Ours must not wait for the cycle collector instead (a socket and
its reactor once referred to each other): ``term()`` would hang until it ran.
"""

from __future__ import annotations

import gc
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

import zmq_async.anyio
import zmq_async.asyncio
import zmq_async.tornado

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def no_cycle_collection() -> Iterator[None]:
    """Only reference counting frees objects meanwhile (the collector would hide a cycle)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def term_returns(ctx: zmq.Context[Any], timeout: float = 10.0) -> bool:
    """Whether ``ctx.term()`` returns within ``timeout`` (it blocks while a socket is open)."""
    done = threading.Event()

    def term() -> None:
        ctx.term()
        done.set()

    threading.Thread(target=term, daemon=True).start()
    return done.wait(timeout)


@pytest.mark.parametrize("module", [zmq_async.asyncio, zmq_async.tornado, zmq_async.anyio])
def test_a_dropped_socket_is_freed_at_once_and_term_returns(
    module: Any, no_cycle_collection: None
) -> None:
    ctx = module.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:*")
    ref = weakref.ref(sock)
    del sock
    assert ref() is None, "the socket outlived its last reference"
    assert term_returns(ctx)


@pytest.mark.asyncio
@pytest.mark.parametrize("module", [zmq_async.asyncio, zmq_async.tornado])
async def test_a_socket_dropped_after_waiting_is_freed_and_term_returns(
    module: Any, no_cycle_collection: None
) -> None:
    """Once it has waited (its FD watched by the loop), too: the loop holds only the reactor."""
    ctx = module.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    assert await pull.poll(10) == 0  # it waited, then timed out
    ref = weakref.ref(pull)
    del pull
    assert ref() is None, "the socket outlived its last reference"
    assert term_returns(ctx)


@pytest.mark.anyio
async def test_an_anyio_socket_dropped_after_waiting_is_freed_and_term_returns(
    no_cycle_collection: None,
) -> None:
    ctx = zmq_async.anyio.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    assert await pull.poll(10) == 0  # it waited, then timed out
    ref = weakref.ref(pull)
    del pull
    assert ref() is None, "the socket outlived its last reference"
    assert term_returns(ctx)


@pytest.mark.parametrize("module", [zmq_async.asyncio, zmq_async.anyio])
def test_a_dropped_socket_is_closed_even_where_warnings_are_errors(
    module: Any, no_cycle_collection: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyzmq's ``__del__`` warns, then closes: under ``-W error`` the warning raises first and
    the socket would stay open, its context's term() hanging. Ours closes it regardless."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    ctx = module.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:*")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del sock
    assert [type(u.exc_value) for u in unraisable] == [ResourceWarning]  # as pyzmq's
    assert term_returns(ctx)


def _loop_kinds() -> list[Any]:
    import asyncio

    kinds: list[Any] = [asyncio.new_event_loop]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the test extra
        return kinds
    return [*kinds, uvloop.new_event_loop]


@pytest.mark.parametrize("new_loop", _loop_kinds(), ids=["asyncio", "uvloop"])
@pytest.mark.parametrize("module", [zmq_async.asyncio, zmq_async.tornado])
def test_a_closed_loop_its_sockets_used_is_freed(module: Any, new_loop: Any) -> None:
    """A program (or a test suite) running one loop after another must not keep them all."""
    ctx = module.Context()
    loops = []
    for n in range(3):
        loop = new_loop()

        async def use(n: int = n) -> None:
            a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
            a.bind(f"inproc://loops-{id(ctx)}-{n}")
            b.connect(f"inproc://loops-{id(ctx)}-{n}")
            pending = b.recv()  # a receive that waits: the loop watches the FD
            await a.send(b"x")
            assert await pending == b"x"
            poller = module.Poller()
            poller.register(b, zmq.POLLIN)
            assert await poller.poll(0) == []
            a.close()
            b.close()

        loop.run_until_complete(use())
        loop.close()
        loops.append(weakref.ref(loop))
        del loop
    gc.collect()
    assert [ref() for ref in loops] == [None] * 3, "a loop outlived its use"
    ctx.term()
