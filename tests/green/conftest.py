"""Green tests: one process per flavour, so gevent and eventlet never meet (nor the main run).

``ZMQ_ASYNC_GREEN=gevent pytest tests/green`` runs the shared tests on gevent plus the
``*_gevent.py`` modules; ``ZMQ_ASYNC_GREEN=eventlet`` the same for eventlet (``scripts/test``
runs both). Without the variable nothing here is collected, and this file imports no framework.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FLAVOURS = ("gevent", "eventlet")
FLAVOUR = os.environ.get("ZMQ_ASYNC_GREEN", "")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if FLAVOUR not in FLAVOURS:
        return True
    stem = collection_path.stem
    for flavour in FLAVOURS:
        if stem.endswith("_" + flavour) and flavour != FLAVOUR:
            return True
    return None


class Green:
    """The few framework calls the shared tests need, for one flavour."""

    def __init__(self, flavour: str) -> None:
        self.name = flavour
        if flavour == "gevent":
            import gevent
            import gevent.event

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
            self.zmq = importlib.import_module("zmq_async.green.eventlet")
            self.peer = eventlet.green.zmq
            self.Timeout = eventlet.Timeout
            self._eventlet = eventlet
            self.sleep = eventlet.sleep

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

    def kill(self, greenlet: Any) -> None:
        """Kill ``greenlet`` and return once it is dead."""
        if self.name == "gevent":
            greenlet.kill(block=True)
        else:
            greenlet.kill()

    def dead(self, greenlet: Any) -> bool:
        return bool(greenlet.dead)


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
