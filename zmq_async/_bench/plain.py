"""Blocking pyzmq in one thread with no event loop: the physical limit the other layers chase.

Each workload interleaves sender and receiver by hand in a single thread, the cheapest schedule
that respects the HWM: with an unlimited HWM send everything then receive everything; with an HWM
alternate chunks of ``params.batch`` (< HWM) sends and receives; REQ/REP and fan-in go round-robin.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from time import perf_counter, perf_counter_ns
from typing import Any

import zmq

from zmq_async._bench.spec import (
    Metric,
    Params,
    Sample,
    bind,
    for_workload,
    latency_sample,
    rate_sample,
)

Socket = zmq.Socket[bytes]


def probe(target: str, loop: str) -> None:
    """Check the target imports; blocking layers take no loop."""
    if loop:
        raise ValueError(f"blocking layer takes no loop, got {loop!r}")
    importlib.import_module(target)


def run(params: Params, target: str, loop: str) -> Sample:
    """Run ``params.workload`` with ``target``'s blocking ``Context``."""
    mod = importlib.import_module(target)
    workload = for_workload(params, _WORKLOADS)
    ctx: zmq.Context[Socket] = mod.Context()
    try:
        return workload(ctx, params)
    finally:
        ctx.destroy(linger=0)


def _socket(ctx: zmq.Context[Socket], socket_type: int, hwm: int | None) -> Socket:
    """A socket with SNDHWM and RCVHWM set to ``hwm`` (``None``: libzmq's default)."""
    sock = ctx.socket(socket_type)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def _bound(
    ctx: zmq.Context[Socket], socket_type: int, hwm: int | None, transport: str = "tcp"
) -> tuple[Socket, str]:
    """A socket bound to a fresh endpoint (a free tcp port on loopback), and the endpoint."""
    sock = _socket(ctx, socket_type, hwm)
    return sock, bind(sock, transport)


def _connected(
    ctx: zmq.Context[Socket], socket_type: int, hwm: int | None, endpoint: str
) -> Socket:
    sock = _socket(ctx, socket_type, hwm)
    sock.connect(endpoint)
    return sock


def _push_pull(ctx: zmq.Context[Socket], p: Params) -> Sample:
    pull, endpoint = _bound(ctx, zmq.PULL, p.hwm, p.transport)
    push = _connected(ctx, zmq.PUSH, p.hwm, endpoint)
    payload: Any = b"x" * p.size if p.frames == 1 else [b"x" * p.size] * p.frames
    send: Callable[[Any], Any] = push.send if p.frames == 1 else push.send_multipart
    recv: Callable[[], Any] = pull.recv if p.frames == 1 else pull.recv_multipart
    for _ in range(p.warmup):
        send(payload)
        recv()
    batch = min(p.batch, p.cap)
    chunked = p.hwm != 0  # a bounded queue: never have more than ``batch`` in flight
    count = 0
    start = perf_counter()
    deadline = start + p.duration
    while True:
        for _ in range(batch):
            send(payload)
        if chunked:
            for _ in range(batch):
                recv()
        count += batch
        if count >= p.cap or perf_counter() >= deadline:
            break
    if not chunked:
        for _ in range(count):
            recv()
    return rate_sample(count, perf_counter() - start)


def _reqrep(ctx: zmq.Context[Socket], p: Params) -> Sample:
    rep, endpoint = _bound(ctx, zmq.REP, p.hwm)
    req = _connected(ctx, zmq.REQ, p.hwm, endpoint)
    payload = b"x" * p.size

    def round_trip() -> None:
        req.send(payload)
        rep.send(rep.recv())
        req.recv()

    return timed(round_trip, p)


def timed(round_trip: Callable[[], object], p: Params) -> Sample:
    """``p.warmup`` untimed round trips, then timed ones until ``p.duration`` or ``p.cap``."""
    for _ in range(p.warmup):
        round_trip()
    times: list[int] = []
    start = perf_counter()
    deadline = start + p.duration
    while len(times) < p.cap and perf_counter() < deadline:
        t0 = perf_counter_ns()
        round_trip()
        times.append(perf_counter_ns() - t0)
    return latency_sample(times, perf_counter() - start)


def fanin_sockets(ctx: zmq.Context[Socket], p: Params) -> tuple[Socket, list[Socket]]:
    """A ROUTER and ``p.dealers`` DEALERs connected to it, each having done one round trip."""
    router, endpoint = _bound(ctx, zmq.ROUTER, p.hwm)
    dealers = [_connected(ctx, zmq.DEALER, p.hwm, endpoint) for _ in range(p.dealers)]
    payload = b"x" * p.size
    for dealer in dealers:  # connect every dealer before the clock starts
        dealer.send(payload)
        router.send_multipart(router.recv_multipart())
        dealer.recv()
    return router, dealers


def _fanin(ctx: zmq.Context[Socket], p: Params) -> Sample:
    router, dealers = fanin_sockets(ctx, p)
    payload = b"x" * p.size
    count = 0
    start = perf_counter()
    deadline = start + p.duration
    while count < p.cap and perf_counter() < deadline:
        for dealer in dealers:
            dealer.send(payload)
        for _ in dealers:
            router.send_multipart(router.recv_multipart())
        for dealer in dealers:
            dealer.recv()
        count += len(dealers)
    return rate_sample(count, perf_counter() - start)


_WORKLOADS: dict[Metric, Callable[[zmq.Context[Socket], Params], Sample]] = {
    "throughput": _push_pull,
    "latency": _reqrep,
    "requests": _fanin,
}
