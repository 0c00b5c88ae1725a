"""Shared fixtures: every asyncio test runs on the default loop and on uvloop.

pytest-asyncio (strict mode) runs ``@pytest.mark.asyncio`` tests, once per loop factory of
:func:`pytest_asyncio_loop_factories`; anyio's plugin runs ``@pytest.mark.anyio`` tests once
per :data:`ANYIO_BACKENDS` entry.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio
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

#: The loops every ``@pytest.mark.asyncio`` test runs on, by test id.
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop
}
if uvloop is not None:
    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """pytest-asyncio's hook: run each asyncio test on the default loop and on uvloop."""
    return LOOP_FACTORIES


def _bounded(
    test: Callable[..., Coroutine[Any, Any, Any]], seconds: float
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        with anyio.fail_after(seconds):
            return await test(*args, **kwargs)

    return bounded


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Bound each async test inside its loop by its pytest-timeout as well.

    pytest-timeout raises from SIGALRM, which ends a test on asyncio's default loop but not on
    uvloop (its callbacks catch the exception, log it and wait on) nor on trio: there a hung
    test would hang the run. A cancel scope ends it on every loop. Hypothesis tests keep
    their own bounds (their body is not the coroutine).
    """
    for item in items:
        test = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(test) or hasattr(test, "hypothesis"):
            continue
        marker = item.get_closest_marker("timeout")
        seconds = float(marker.args[0] if marker and marker.args else config.getini("timeout"))
        if seconds > 0:
            item.obj = _bounded(test, seconds)  # type: ignore[attr-defined]


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return LOOP_FACTORIES[kind]()


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The loop a test that makes its own loops runs on (the rest use the plugins)."""
    return str(request.param)


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


# -- the fault tests' other processes (tests/faultprocs.py) ----------------------------------


def _load_faultprocs() -> Any:
    import importlib.util
    import sys
    from pathlib import Path

    name = "zmq_async_tests_faultprocs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("faultprocs.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def procs() -> Any:
    """tests/faultprocs.py: the peer to kill and restart, and the whole programs."""
    return _load_faultprocs()


@pytest.fixture
def peer(procs: Any) -> Iterator[Callable[..., Any]]:
    """Factory of started :class:`faultprocs.Peer` processes, killed after the test.

    ``peer(mode)`` gives one; ``peer(mode, mode, ...)`` a list, started in parallel.
    """
    started: list[Any] = []

    def factory(*modes: str) -> Any:
        processes = [procs.Peer(mode) for mode in modes]
        started.extend(processes)
        procs.start_all(processes)
        return processes[0] if len(processes) == 1 else processes

    yield factory
    for process in started:
        process.close()


#: The async layers the fault scenarios run on, by test id: (module, anyio backend). anyio's
#: asyncio backend is a real asyncio loop, on which zmq_async.asyncio and zmq_async.tornado
#: run as they would in an application; zmq_async.anyio runs on trio too.
FAULT_LAYERS: dict[str, tuple[str, tuple[str, dict[str, Any]]]] = {
    "asyncio": ("zmq_async.asyncio", ("asyncio", {})),
    "uvloop": ("zmq_async.asyncio", ("asyncio", {"use_uvloop": True})),
    "tornado": ("zmq_async.tornado", ("asyncio", {})),
    "tornado-uvloop": ("zmq_async.tornado", ("asyncio", {"use_uvloop": True})),
    "anyio-asyncio": ("zmq_async.anyio", ("asyncio", {})),
    "anyio-uvloop": ("zmq_async.anyio", ("asyncio", {"use_uvloop": True})),
    "anyio-trio": ("zmq_async.anyio", ("trio", {})),
}


@pytest.fixture(params=list(FAULT_LAYERS))
def fault_layer(request: pytest.FixtureRequest) -> tuple[str, tuple[str, dict[str, Any]]]:
    """The parametrized layer of :data:`FAULT_LAYERS`: (its module, the anyio backend for it).

    A module of fault scenarios marks its tests ``anyio``, overrides ``anyio_backend`` with
    ``fault_layer[1]`` and takes a context of the layer from :func:`layer_ctx`.
    """
    return FAULT_LAYERS[request.param]


@pytest.fixture
async def layer_ctx(fault_layer: tuple[str, Any]) -> AsyncIterator[Any]:
    """A fresh context of the test's layer, made on its running loop; destroyed after."""
    import importlib

    module = fault_layer[0]
    if module == "zmq_async.tornado":
        from tornado.ioloop import IOLoop

        IOLoop.current()  # sockets run under the IOLoop of this asyncio loop
    ctx = importlib.import_module(module).Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)
