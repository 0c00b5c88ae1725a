"""Shared fixtures: every asyncio test runs on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import zmq

import zmq_async.asyncio

try:
    import uvloop
except ImportError:  # uvloop is optional (and absent on Windows)
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])

Runner = Callable[..., Any]


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        assert uvloop is not None
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(loop_kind: str) -> Runner:
    """Run a coroutine to completion on a fresh loop of the parametrized kind, bounded in time."""

    def runner(coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        loop = _new_loop(loop_kind)
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, timeout))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return runner


@pytest.fixture
def new_loop(loop_kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for loops of the parametrized kind (for tests that juggle several loops)."""
    return lambda: _new_loop(loop_kind)


@pytest.fixture
def ctx() -> Iterator[zmq_async.asyncio.Context]:
    context = zmq_async.asyncio.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def pair(ctx: zmq_async.asyncio.Context) -> tuple[zmq_async.asyncio.Socket, zmq_async.asyncio.Socket]:
    """A connected PUSH -> PULL pair over tcp on loopback: (push, pull)."""
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    return push, pull
