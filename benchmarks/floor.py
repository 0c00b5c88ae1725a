"""``python benchmarks/floor.py``: how close to plain pyzmq can any asyncio layer get?

The floor is the least a ``zmq.asyncio``-shaped layer can do per message: a send or receive
that returns an ``asyncio.Future`` around pyzmq's NOBLOCK call, a receive that cannot complete
parked on the socket's FD (``loop.add_reader``), and nothing else: no FIFO across callers, no
thread or loop checks, no timeouts, no cancellation, no lost-wakeup guard beyond the one
``EVENTS`` look it needs to work at all. It is not a usable layer; it bounds what one can reach.

Each measurement runs in a fresh process, the contenders alternating, and the table shows
medians and their ratio to plain pyzmq (the bench's limits: ``pyzmq.poller`` for the stream of
messages, blocking pyzmq pinned to one CPU for the round trip). Where the floor's own ratio
misses a target, no asyncio layer with the drop-in API can meet it in Python on this loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import zmq
from zmq.backend import Socket as _Backend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_NOBLOCK = int(zmq.NOBLOCK)
_PAYLOAD = b"x" * 64
_BATCH = 500
_WARMUP = 200


class FloorSocket:
    """The least a Future-returning socket can do (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.loop = loop
        self.waiters: list[asyncio.Future[bytes]] = []
        self.look = [(socket, zmq.POLLIN)]
        loop.add_reader(socket.get(zmq.FD), self.serve)

    def serve(self) -> None:
        waiters = self.waiters
        while waiters and zmq.zmq_poll(self.look, 0):  # a failed recv (zmq.Again) costs more
            waiters.pop(0).set_result(_Backend.recv(self.socket, _NOBLOCK))

    def send(self, data: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.Future(loop=self.loop)
        future.set_result(_Backend.send(self.socket, data, _NOBLOCK))
        if self.waiters:  # the send may have consumed the FD's edge a receive waits for
            self.loop.call_soon(self.serve)
        return future

    def recv(self) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.Future(loop=self.loop)
        if not self.waiters:
            try:
                future.set_result(_Backend.recv(self.socket, _NOBLOCK))
                return future
            except zmq.Again:
                pass
        self.waiters.append(future)
        if zmq.zmq_poll(
            self.look, 0
        ):  # EVENTS, read as cheaply as pyzmq allows: the edge came and went
            self.loop.call_soon(self.serve)
        return future


def _push_pull(ctx: Any, transport: str) -> tuple[Any, Any]:
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    for sock in (pull, push):
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
    if transport == "inproc":
        endpoint = f"inproc://floor-{os.getpid()}"
        pull.bind(endpoint)
    else:
        endpoint = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    push.connect(endpoint)
    for _ in range(_WARMUP):
        push.send(_PAYLOAD)
        pull.recv()
    return push, pull


def _req_rep(ctx: Any) -> tuple[Any, Any]:
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{rep.bind_to_random_port('tcp://127.0.0.1')}")
    return req, rep


def limit_rate(messages: int, transport: str) -> float:
    """Plain pyzmq in one thread around a ``zmq.Poller``, as the bench's ``pyzmq.poller``."""
    push, pull = _push_pull(zmq.Context.instance(), transport)
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(push, zmq.POLLOUT)
    sent = received = 0
    start = time.perf_counter()
    while sent < messages or received < messages:
        for sock, _ in poller.poll():
            if sock is push:
                try:
                    for _ in range(_BATCH):
                        push.send(_PAYLOAD, _NOBLOCK)
                        sent += 1
                except zmq.Again:
                    pass
                if sent >= messages:
                    poller.unregister(push)
            else:
                try:
                    while True:
                        pull.recv(_NOBLOCK)
                        received += 1
                except zmq.Again:
                    pass
    return sent / (time.perf_counter() - start)


async def _async_rate(send: Callable[[bytes], Awaitable[Any]], recv: Any, messages: int) -> float:
    """A sender task and a receiver task, as the bench's asyncio workload."""

    async def sender() -> None:
        for _ in range(messages):
            await send(_PAYLOAD)
        await send(b"")

    async def receiver() -> int:
        count = 0
        while await recv():
            count += 1
        return count

    start = time.perf_counter()
    sending = asyncio.ensure_future(sender())
    count = await receiver()
    await sending
    if count != messages:
        raise RuntimeError(f"sent {messages}, received {count}")
    return messages / (time.perf_counter() - start)


async def _async_round_trips(req: Any, rep: Any, round_trips: int) -> float:
    """Median round trip in us, client and echo server as tasks, as the bench's workload."""

    async def server() -> None:
        while message := await rep.recv():
            await rep.send(message)
        await rep.send(b"")

    serving = asyncio.ensure_future(server())
    times = []
    for index in range(_WARMUP + round_trips):
        t0 = time.perf_counter_ns()
        await req.send(_PAYLOAD)
        await req.recv()
        if index >= _WARMUP:
            times.append(time.perf_counter_ns() - t0)
    await req.send(b"")
    await req.recv()
    await serving
    return statistics.median(times) / 1000


def blocking_round_trip(round_trips: int) -> float:
    """Blocking pyzmq, the bench's REQ/REP limit: median round trip in us."""
    req, rep = _req_rep(zmq.Context.instance())
    times = []
    for index in range(_WARMUP + round_trips):
        t0 = time.perf_counter_ns()
        req.send(_PAYLOAD)
        rep.send(rep.recv())
        req.recv()
        if index >= _WARMUP:
            times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


def _loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def measure(contender: str, workload: str, count: int, transport: str) -> float:
    """One measurement in this process: msgs/s for ``rate``, median us for ``rtt``."""
    if contender == "limit":
        if workload == "rate":
            return limit_rate(count, transport)
        return blocking_round_trip(count)
    layer, kind = contender.split("/")
    loop = _loop(kind)
    asyncio.set_event_loop(loop)

    async def main() -> float:
        if layer == "floor":
            ctx: Any = zmq.Context()
        else:
            import zmq_async.asyncio

            ctx = zmq_async.asyncio.Context()
        if workload == "rate":
            push, pull = _push_pull(ctx, transport)
            if layer == "floor":
                push, pull = FloorSocket(loop, push), FloorSocket(loop, pull)
            return await _async_rate(push.send, pull.recv, count)
        req, rep = _req_rep(ctx)
        if layer == "floor":
            req, rep = FloorSocket(loop, req), FloorSocket(loop, rep)
        return await _async_round_trips(req, rep, count)

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender (5)")
    parser.add_argument("--messages", type=int, default=200_000, help="per run (200,000)")
    parser.add_argument("--round-trips", type=int, default=20_000, help="per run (20,000)")
    parser.add_argument("--loops", default="asyncio,uvloop", help="asyncio,uvloop")
    parser.add_argument("--one", nargs=4, metavar=("CONTENDER", "WORKLOAD", "N", "TRANSPORT"))
    opts = parser.parse_args()
    if opts.one:
        contender, workload, count, transport = opts.one
        if workload == "rtt":  # pinned, as the bench's latency workload
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(measure(contender, workload, int(count), transport))
        return
    contenders = ["limit"] + [
        f"{layer}/{kind}" for kind in opts.loops.split(",") for layer in ("floor", "ours")
    ]
    rows = [("rate", "inproc", opts.messages), ("rate", "tcp", opts.messages)]
    rows.append(("rtt", "tcp", opts.round_trips))
    for workload, transport, count in rows:
        results: dict[str, list[float]] = {c: [] for c in contenders}
        for _ in range(opts.repeat):
            for contender in contenders:  # alternating, so drift hits every contender alike
                argv = [sys.executable, __file__, "--one", contender, workload, str(count)]
                out = subprocess.run([*argv, transport], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{contender} {workload} failed:\n{out.stderr}")
                results[contender].append(float(out.stdout))
        limit = statistics.median(results["limit"])
        title = f"{transport} push_pull msgs/s" if workload == "rate" else "tcp REQ/REP us (pinned)"
        print(f"\n{title}, median of {opts.repeat}; ratio to plain pyzmq (higher is better)")
        for contender, values in results.items():
            value = statistics.median(values)
            ratio = value / limit if workload == "rate" else limit / value
            print(f"  {contender:16} {value:>12,.1f}  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
