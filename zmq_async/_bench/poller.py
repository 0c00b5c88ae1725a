"""Non-blocking pyzmq around one ``zmq.Poller`` in one thread: what an event loop could reach.

The limit the async layers are held to for streams of messages. Like an event loop it sleeps
in ``poll`` and, when a socket is ready, moves what it can with ``NOBLOCK`` until ``zmq.Again``;
unlike one it has no loop, no tasks and no futures. Sender and receiver (client and server)
take turns in one thread, as the async contenders' tasks do on one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

import zmq

from zmq_async._bench.plain import Socket, _bound, _connected, fanin_sockets, probe, timed
from zmq_async._bench.spec import Metric, Params, Sample, for_workload, rate_sample

__all__ = ["probe", "run"]

_NOBLOCK = zmq.NOBLOCK
_POLLIN = zmq.POLLIN


def run(params: Params, target: str, loop: str) -> Sample:
    """Run ``params.workload`` with plain pyzmq (``target`` is ``zmq``)."""
    ctx: zmq.Context[Socket] = zmq.Context()
    try:
        return for_workload(params, _WORKLOADS)(ctx, params)
    finally:
        ctx.destroy(linger=0)


def _push_pull(ctx: zmq.Context[Socket], p: Params) -> Sample:
    pull, endpoint = _bound(ctx, zmq.PULL, p.hwm, p.transport)
    push = _connected(ctx, zmq.PUSH, p.hwm, endpoint)
    multipart = p.frames > 1
    payload: Any = [b"x" * p.size] * p.frames if multipart else b"x" * p.size
    send: Callable[..., Any] = push.send_multipart if multipart else push.send
    recv: Callable[..., Any] = pull.recv_multipart if multipart else pull.recv
    for _ in range(p.warmup):
        send(payload)
        recv()
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(push, zmq.POLLOUT)
    batch = min(p.batch, p.cap)
    sent = received = 0
    sending = True
    start = perf_counter()
    deadline = start + p.duration
    while sending or received < sent:
        for sock, _ in poller.poll():
            if sock is push:
                n = 0
                try:
                    while n < batch:
                        send(payload, _NOBLOCK)
                        n += 1
                except zmq.Again:
                    pass
                sent += n
                if sent >= p.cap or perf_counter() >= deadline:
                    sending = False
                    poller.unregister(push)
            else:
                try:
                    while True:
                        recv(_NOBLOCK)
                        received += 1
                except zmq.Again:
                    pass
    return rate_sample(sent, perf_counter() - start)


def _reqrep(ctx: zmq.Context[Socket], p: Params) -> Sample:
    rep, endpoint = _bound(ctx, zmq.REP, p.hwm)
    req = _connected(ctx, zmq.REQ, p.hwm, endpoint)
    payload = b"x" * p.size
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    poller.register(req, zmq.POLLIN)

    def round_trip() -> None:
        req.send(payload, _NOBLOCK)
        while True:
            for sock, _ in poller.poll():
                if sock is rep:
                    rep.send(rep.recv(_NOBLOCK), _NOBLOCK)
                else:
                    req.recv(_NOBLOCK)
                    return

    return timed(round_trip, p)


def _fanin(ctx: zmq.Context[Socket], p: Params) -> Sample:
    router, dealers = fanin_sockets(ctx, p)
    payload = b"x" * p.size
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    for dealer in dealers:
        poller.register(dealer, zmq.POLLIN)
    count = 0
    start = perf_counter()
    deadline = start + p.duration
    for dealer in dealers:
        dealer.send(payload, _NOBLOCK)
    in_flight = len(dealers)
    while in_flight:
        for sock, _ in poller.poll():
            if sock is router:
                try:
                    while True:
                        router.send_multipart(router.recv_multipart(_NOBLOCK), _NOBLOCK)
                except zmq.Again:
                    pass
                continue
            sock.recv(_NOBLOCK)
            count += 1
            if count + in_flight <= p.cap and perf_counter() < deadline:
                sock.send(payload, _NOBLOCK)
            else:
                in_flight -= 1
    return rate_sample(count, perf_counter() - start)


_WORKLOADS: dict[Metric, Callable[[zmq.Context[Socket], Params], Sample]] = {
    "throughput": _push_pull,
    "latency": _reqrep,
    "requests": _fanin,
}
