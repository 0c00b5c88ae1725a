"""The contenders: one :class:`Layer` per ZeroMQ integration, expanded over the loops it runs on.

Adding a layer is one entry in :data:`LAYERS`, plus a driver module if none of the existing ones
fits (a driver exposes ``probe(target, loop)`` and ``run(params, target, loop) -> Sample``, see
:class:`Driver`). A layer whose target module or loop does not import is skipped, not failed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from zmq_async._bench.spec import Params, Sample

Role = Literal["limit", "peer", "ours"]


class Driver(Protocol):
    """What a driver module provides; the worker calls it, the parent never imports it."""

    def probe(self, target: str, loop: str) -> None:
        """Raise if ``target`` or ``loop`` cannot be used in this interpreter."""

    def run(self, params: Params, target: str, loop: str) -> Sample:
        """Run one measurement and return its sample."""


@dataclass(frozen=True)
class Layer:
    """A ZeroMQ integration under test."""

    name: str
    #: The module (under ``zmq_async._bench``) holding the workloads for this kind of API.
    driver: str
    #: The module the driver is handed: ``zmq``, ``zmq.asyncio``, ``zmq_async.asyncio``, ...
    target: str
    #: Event loops to run on, each its own row; ``("",)`` for a layer without a loop.
    loops: tuple[str, ...]
    role: Role
    #: The layer that ``vs peer`` compares with, on the same loop; ``None`` for no comparison.
    peer: str | None = None


ASYNCIO_LOOPS = ("asyncio", "uvloop")
#: anyio's backends: asyncio (on its default loop and on uvloop) and trio.
ANYIO_LOOPS = ("asyncio", "uvloop", "trio")

LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer("pyzmq", "plain", "zmq", ("",), "limit"),
        Layer("pyzmq.poller", "poller", "zmq", ("",), "limit"),
        Layer("zmq.asyncio", "aio", "zmq.asyncio", ASYNCIO_LOOPS, "peer", peer="zmq.asyncio"),
        Layer(
            "zmq_async.asyncio", "aio", "zmq_async.asyncio", ASYNCIO_LOOPS, "ours", "zmq.asyncio"
        ),
        # issue 4: callback streams and Tornado's future sockets, on Tornado's IOLoop (asyncio)
        Layer(
            "zmq.eventloop.zmqstream",
            "stream",
            "zmq.eventloop.zmqstream",
            ("asyncio",),
            "peer",
            peer="zmq.eventloop.zmqstream",
        ),
        Layer(
            "zmq_async.stream",
            "stream",
            "zmq_async.stream",
            ("asyncio",),
            "ours",
            peer="zmq.eventloop.zmqstream",
        ),
        Layer(
            "zmq.eventloop.future",
            "aio",
            "zmq.eventloop.future",
            ("asyncio",),
            "peer",
            peer="zmq.eventloop.future",
        ),
        Layer(
            "zmq_async.tornado",
            "aio",
            "zmq_async.tornado",
            ("asyncio",),
            "ours",
            peer="zmq.eventloop.future",
        ),
        # -- issue 5: zmq_async.green on gevent, zmq_async.green.eventlet on eventlet
        Layer("zmq.green", "green", "zmq.green", ("gevent",), "peer", peer="zmq.green"),
        Layer("zmq_async.green", "green", "zmq_async.green", ("gevent",), "ours", "zmq.green"),
        Layer(
            "eventlet.green.zmq",
            "green",
            "eventlet.green.zmq",
            ("eventlet",),
            "peer",
            peer="eventlet.green.zmq",
        ),
        Layer(
            "zmq_async.green.eventlet",
            "green",
            "zmq_async.green.eventlet",
            ("eventlet",),
            "ours",
            "eventlet.green.zmq",
        ),
        # -- issue 3: zmq_async.anyio, on anyio's asyncio (default loop, uvloop) and trio backends
        Layer("zmq-anyio", "anyio_", "zmq_anyio", ANYIO_LOOPS, "peer", peer="zmq-anyio"),
        Layer("zmq_async.anyio", "anyio_", "zmq_async.anyio", ANYIO_LOOPS, "ours", "zmq-anyio"),
    )
}

#: The layer ``vs limit`` ratios are taken against unless a workload names another
#: (:attr:`~zmq_async._bench.spec.Workload.limit`).
LIMIT = "pyzmq"


@dataclass(frozen=True)
class Variant:
    """One row of the table: a layer on one loop."""

    layer: Layer
    loop: str

    @property
    def label(self) -> str:
        return f"{self.layer.name}/{self.loop}" if self.loop else self.layer.name


def variants(patterns: list[str] | None = None) -> list[Variant]:
    """All rows in registry order, keeping those whose label contains any of ``patterns``."""
    rows = [Variant(layer, loop) for layer in LAYERS.values() for loop in layer.loops]
    if not patterns:
        return rows
    return [v for v in rows if any(p in v.label for p in patterns)]


def load_driver(layer: Layer) -> Driver:
    """Import a layer's driver module (worker side only: drivers import zmq and event loops)."""
    return cast(Driver, importlib.import_module(f"zmq_async._bench.{layer.driver}"))
