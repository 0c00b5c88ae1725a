"""Green tests: one process per flavour, so gevent and eventlet never meet (nor the main run).

``ZMQ_ASYNC_GREEN=gevent pytest tests/green`` runs the shared tests on gevent plus the
``*_gevent.py`` modules; ``ZMQ_ASYNC_GREEN=eventlet`` the same for eventlet (``scripts/test``
runs both). Without the variable nothing here is collected, and this file imports no framework.

``scripts/test`` also runs each flavour monkeypatched, through ``tests/green/patched.py``, which
patches before anything else and sets ``ZMQ_ASYNC_MONKEY=1``; ``green.patched`` tells a test
which run it is in. A test marked ``unpatched(why)`` runs in the unpatched run only: patching
cannot change what it checks (a program that patches itself, or never does, in a process of
its own; the reactor's own costs), so the patched run would only repeat it.
"""

from __future__ import annotations

import importlib
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

#: What every program run by :meth:`Green.run` starts with: the flavour (argv 1) as ``hub``
#: and ``zmq``, patched first if argv 2 is "patched"; the program's own arguments follow in
#: ``args``. A hang dumps every thread's stack and exits (after 30 s).
PROLOGUE = r"""
import faulthandler, gc, os, signal, sys, time, warnings
faulthandler.dump_traceback_later(30, exit=True)
warnings.simplefilter("ignore")
flavour, patching, *args = sys.argv[1:]
if flavour == "gevent":
    import gevent as hub
    if patching == "patched":
        from gevent import monkey; monkey.patch_all()
    import zmq_async.green as zmq
else:
    import eventlet as hub
    if patching == "patched":
        hub.monkey_patch()
    import zmq_async.green.eventlet as zmq
"""

FLAVOURS = ("gevent", "eventlet")
FLAVOUR = os.environ.get("ZMQ_ASYNC_GREEN", "")
MONKEY = os.environ.get("ZMQ_ASYNC_MONKEY", "") == "1"


def _patched() -> bool:
    """Whether this process was monkeypatched (asked without importing any framework)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return True
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("thread"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "unpatched(why): run in the unpatched run only: patching cannot change what the test "
        "checks (why says what makes it so)",
    )
    if FLAVOUR in FLAVOURS and _patched() != MONKEY:
        raise pytest.UsageError(
            "ZMQ_ASYNC_MONKEY=1 is set by tests/green/patched.py, which patches first: "
            "run the monkeypatched suite through it"
            if MONKEY
            else "this process is monkeypatched: only tests/green/patched.py may do that"
        )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if FLAVOUR not in FLAVOURS:
        return True
    stem = collection_path.stem
    for flavour in FLAVOURS:
        if stem.endswith("_" + flavour) and flavour != FLAVOUR:
            return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not MONKEY:
        return
    for item in items:
        marker = item.get_closest_marker("unpatched")
        if marker is not None:
            why = marker.args[0] if marker.args else "patching cannot change it"
            item.add_marker(pytest.mark.skip(reason=f"the unpatched run checks it: {why}"))


class Green:
    """The few framework calls the shared tests need, for one flavour."""

    def __init__(self, flavour: str) -> None:
        self.name = flavour
        #: Whether the process is monkeypatched (``threading.Thread`` is then a greenlet).
        self.patched = MONKEY
        if flavour == "gevent":
            import gevent
            import gevent.event
            import gevent.pool

            self.zmq: Any = importlib.import_module("zmq_async.green")
            self.peer: Any = importlib.import_module("zmq.green")
            self.Timeout: Any = gevent.Timeout
            self._gevent = gevent
            self.sleep: Callable[[float], None] = gevent.sleep
            self._event = gevent.event.Event
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # eventlet's deprecation notice
                import eventlet
                import eventlet.event
                import eventlet.green.zmq
                import eventlet.tpool
            self.zmq = importlib.import_module("zmq_async.green.eventlet")
            self.peer = eventlet.green.zmq
            self.Timeout = eventlet.Timeout
            self._eventlet = eventlet
            self.sleep = eventlet.sleep

    def run(
        self, program: str, *args: str, timeout: float = 40, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``program`` after :data:`PROLOGUE` in a new interpreter (and session), in this
        run's flavour and patching, with ``args``; a program still running after ``timeout``
        seconds is killed with its children (forked ones too), failing the test."""
        patching = "patched" if self.patched else "plain"
        argv = [sys.executable, "-c", PROLOGUE + program, self.name, patching, *args]
        with subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
        ) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                pytest.fail(f"the program hung: {out!r} {err[-2000:]!r}")
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def spawn(self, function: Callable[..., Any], *args: Any) -> Any:
        if self.name == "gevent":
            return self._gevent.spawn(function, *args)
        return self._eventlet.spawn(function, *args)

    def get(self, greenlet: Any, timeout: float = 5.0) -> Any:
        """The greenlet's result (or its exception), waiting at most ``timeout`` seconds."""
        with self.Timeout(timeout, AssertionError(f"greenlet still running after {timeout}s")):
            if self.name == "gevent":
                return greenlet.get()
            return greenlet.wait()

    def in_os_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """Start ``function(*args)`` in a real OS thread, patched or not; ``get()`` its result.

        gevent's threadpool and eventlet's tpool run in real threads even when the program is
        monkeypatched (``threading.Thread`` then makes greenlets).
        """
        if self.name == "gevent":
            return self._gevent.get_hub().threadpool.spawn(function, *args)
        return self._eventlet.spawn(self._eventlet.tpool.execute, function, *args)

    def start_os_thread(self, function: Callable[[], Any]) -> None:
        """Run ``function()`` in a new OS thread (not a greenlet, even when monkeypatched),
        with nothing of the framework's to wake the hub when it ends."""
        if self.name == "gevent":
            from gevent.monkey import get_original

            start = get_original("_thread", "start_new_thread")
        else:
            from eventlet.patcher import original

            start = original("_thread").start_new_thread
        start(function, ())

    def pool_map(
        self, size: int, function: Callable[[Any], Any], items: Iterable[Any]
    ) -> list[Any]:
        """``[function(item) for item in items]``, run by the framework's pool of ``size``."""
        if self.name == "gevent":
            return list(self._gevent.pool.Pool(size).map(function, items))
        return list(self._eventlet.GreenPool(size).imap(function, items))

    def kill(self, greenlet: Any) -> None:
        """Kill ``greenlet`` and return once it is dead."""
        if self.name == "gevent":
            greenlet.kill(block=True)
        else:
            greenlet.kill()

    def dead(self, greenlet: Any) -> bool:
        return bool(greenlet.dead)

    def storm(
        self,
        waiter: Callable[[], Any],
        send: Callable[[int], Any],
        received: list[Any],
        rng: random.Random,
        *,
        waiters: int,
        rounds: int,
        burst: int,
        pauses: Sequence[float],
        kill_every: int,
    ) -> int:
        """A kill storm: ``waiters`` greenlets run ``waiter`` while ``send(n)`` sends up to
        ``burst`` numbered messages a round, with a pause from ``pauses`` after each; every
        ``kill_every`` rounds one greenlet is killed and replaced. Then it waits (20 s at
        most) until ``received`` holds as many items as were sent, kills the greenlets and
        returns how many were sent."""
        greenlets = [self.spawn(waiter) for _ in range(waiters)]
        sent = 0
        for round_ in range(rounds):
            for _ in range(rng.randint(0, burst)):
                send(sent)
                sent += 1
            self.sleep(rng.choice(pauses))
            if round_ % kill_every == 0:
                self.kill(greenlets.pop(rng.randrange(len(greenlets))))
                greenlets.append(self.spawn(waiter))
        deadline = time.monotonic() + 20
        while len(received) < sent and time.monotonic() < deadline:
            self.sleep(0.01)
        for greenlet in greenlets:
            self.kill(greenlet)
        return sent


@pytest.fixture(scope="session")
def green() -> Green:
    return Green(FLAVOUR)


@pytest.fixture
def zmq(green: Green) -> Any:
    """The flavour's ``zmq`` namespace (``zmq_async.green`` or ``zmq_async.green.eventlet``)."""
    return green.zmq


@pytest.fixture
def ctx(zmq: Any) -> Iterator[Any]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def pair(ctx: Any, zmq: Any) -> tuple[Any, Any]:
    """A connected PUSH -> PULL pair over tcp on loopback: (push, pull)."""
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    return push, pull
