"""Shared fixtures: every asyncio test runs on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, settings

import zmq_async.anyio
import zmq_async.asyncio

try:
    import uvloop
except ImportError:  # uvloop is optional (and absent on Windows)
    uvloop = None

# -- hypothesis profiles (here, the parent of tests/green, so the green runs share them) -----
# "ci", the default, keeps the model-checked reactor (test_model*.py) to a few seconds per
# framework, derandomized so CI explores the same interleavings every run;
# ``--hypothesis-profile=long`` explores for real (minutes; run it with ``nice``).
_MODEL_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile(
    "ci",
    max_examples=20,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    **_MODEL_SETTINGS,
)
settings.register_profile("long", max_examples=1000, stateful_step_count=60, **_MODEL_SETTINGS)
settings.load_profile("ci")


def _share(name: str, filename: str) -> None:
    """Make tests/``filename`` importable as ``name`` by the test modules that share it
    (here and in tests/green): with pytest's importlib mode they cannot import each other."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
        assert spec is not None and spec.loader is not None
        module = sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_share("zmq_async_model_machine", "test_model_machine.py")
_share("zmq_async_bad_args", "test_bad_args.py")

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
def pair(
    ctx: zmq_async.asyncio.Context,
) -> tuple[zmq_async.asyncio.Socket, zmq_async.asyncio.Socket]:
    """A connected PUSH -> PULL pair over tcp on loopback: (push, pull)."""
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    return push, pull


# -- added for the behavioural suites (test_asyncio_api.py, test_asyncio_faults.py) ----------


@pytest.fixture
def sync_ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    """A plain, blocking ``zmq.Context`` (for shadows and plain sockets), destroyed after."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def inproc_addr() -> Callable[[], str]:
    """A factory of unique ``inproc://`` addresses."""
    import itertools
    import uuid

    prefix = uuid.uuid4().hex
    counter = itertools.count()
    return lambda: f"inproc://zmq-async-test-{prefix}-{next(counter)}"


SocketPairFactory = Callable[..., tuple[Any, Any]]


@pytest.fixture
def socket_pair(
    ctx: zmq_async.asyncio.Context, inproc_addr: Callable[[], str]
) -> SocketPairFactory:
    """Factory of connected sockets of ``ctx``: ``(bound, connected)``.

    ``socket_pair(bind_type, connect_type, transport="tcp", bind_opts={}, connect_opts={})``;
    options (e.g. HWMs) are set before bind/connect.
    """

    def factory(
        bind_type: int,
        connect_type: int,
        transport: str = "tcp",
        bind_opts: dict[int, Any] | None = None,
        connect_opts: dict[int, Any] | None = None,
    ) -> tuple[Any, Any]:
        bound = ctx.socket(bind_type)
        connected = ctx.socket(connect_type)
        for sock, opts in ((bound, bind_opts), (connected, connect_opts)):
            for option, value in (opts or {}).items():
                sock.setsockopt(option, value)
        if transport == "tcp":
            port = bound.bind_to_random_port("tcp://127.0.0.1")
            connected.connect(f"tcp://127.0.0.1:{port}")
        else:
            addr = inproc_addr()
            bound.bind(addr)
            connected.connect(addr)
        return bound, connected

    return factory


# -- zmq_async.anyio: anyio's pytest plugin runs each test on every backend ----------------------

ANYIO_BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=ANYIO_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def actx() -> Iterator[zmq_async.anyio.Context]:
    context = zmq_async.anyio.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def apair(actx: zmq_async.anyio.Context) -> SocketPairFactory:
    """Factory of connected anyio sockets over tcp on loopback: ``(bound, connected)``.

    ``apair(bind_type=PULL, connect_type=PUSH, **options)``, e.g. ``SNDHWM=1``, set on both.
    """

    def factory(bind_type: int = zmq.PULL, connect_type: int = zmq.PUSH, **opts: int) -> Any:
        bound = actx.socket(bind_type)
        connected = actx.socket(connect_type)
        for name, value in opts.items():
            bound.set(getattr(zmq, name), value)
            connected.set(getattr(zmq, name), value)
        port = bound.bind_to_random_port("tcp://127.0.0.1")
        connected.connect(f"tcp://127.0.0.1:{port}")
        return bound, connected

    return factory
