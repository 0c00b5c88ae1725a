"""Callback workloads, written once for any module with ``zmq.eventloop.zmqstream``'s API.

The same code drives ``zmq.eventloop.zmqstream`` (the peer) and ``zmq_async.stream`` (ours), on
Tornado's IOLoop over an asyncio loop: only the module handed to :func:`run` differs. Streams are
used as applications use them: ``stream.send`` from a coroutine in batches, ``on_recv``
callbacks on the other side, an echo server as ``router.on_recv(router.send_multipart)``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from time import perf_counter, perf_counter_ns
from typing import Any

import zmq

from zmq_async._bench.aio import _loop_factory
from zmq_async._bench.spec import (
    Metric,
    Params,
    Sample,
    bind,
    for_workload,
    latency_sample,
    rate_sample,
)

#: A sender's last message (a single empty frame); the receiver stops when it sees it.
_END = [b""]
#: Seconds any one phase may take before the measurement fails instead of hanging.
_PHASE_TIMEOUT = 60.0

Stream = Any
Workload = Callable[[Callable[..., Stream], zmq.Context[Any], Params], Coroutine[Any, Any, Sample]]


def probe(target: str, loop: str) -> None:
    """Raise if the loop, Tornado or ``target`` (with a ``ZMQStream`` class) does not import."""
    _loop_factory(loop)
    importlib.import_module("tornado.ioloop")
    importlib.import_module(target).ZMQStream  # noqa: B018 - a half-written module fails here


def run(params: Params, target: str, loop: str) -> Sample:
    """Run ``params.workload`` on Tornado's IOLoop over a fresh asyncio loop of kind ``loop``."""
    importlib.import_module("tornado.ioloop")  # both layers find IOLoop.current() the same way
    stream_class = importlib.import_module(target).ZMQStream
    new_loop = _loop_factory(loop)()
    asyncio.set_event_loop(new_loop)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        return new_loop.run_until_complete(
            for_workload(params, _WORKLOADS)(stream_class, ctx, params)
        )
    finally:
        ctx.destroy(linger=0)
        asyncio.set_event_loop(None)
        new_loop.close()


def _socket(ctx: zmq.Context[Any], socket_type: int, hwm: int | None) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(socket_type)
    sock.linger = 0
    if hwm is not None:
        sock.sndhwm = sock.rcvhwm = hwm
    return sock


def _pair(
    make: Callable[..., Stream],
    ctx: zmq.Context[Any],
    bound: int,
    connected: int,
    hwm: int | None,
    transport: str = "tcp",
) -> tuple[Stream, Stream]:
    """``(bound, connected)`` streams over ``transport`` (tcp: on loopback)."""
    a = make(_socket(ctx, bound, hwm))
    endpoint = bind(a, transport)
    b = make(_socket(ctx, connected, hwm))
    b.connect(endpoint)
    return a, b


async def _push_pull(make: Callable[..., Stream], ctx: zmq.Context[Any], p: Params) -> Sample:
    """Receive throughput: a coroutine ``send``s ``batch`` messages per loop turn to ``on_recv``."""
    pull, push = _pair(make, ctx, zmq.PULL, zmq.PUSH, p.hwm, p.transport)
    payload = [b"x" * p.size] * p.frames
    loop = asyncio.get_running_loop()
    state = {"count": 0}
    finished: asyncio.Future[float] = loop.create_future()

    def on_message(msg: list[Any]) -> None:
        if msg[0]:
            state["count"] += 1
        elif not finished.done():
            finished.set_result(perf_counter())

    pull.on_recv(on_message)
    for _ in range(p.warmup):
        push.send_multipart(payload)
    while state["count"] < p.warmup:
        await asyncio.sleep(0.001)
    state["count"] = 0
    send = push.send_multipart
    batch = min(p.batch, p.cap)
    sent = 0
    start = perf_counter()
    deadline = start + p.duration
    while True:
        for _ in range(batch):
            send(payload)
        sent += batch
        if sent >= p.cap or perf_counter() >= deadline:
            break
        await asyncio.sleep(0)
        while p.hwm != 0 and push.sending():
            # A stream queues what the socket's HWM refuses: wait for it to drain, as the
            # other drivers' senders block at the HWM, or the queue grows without bound.
            await asyncio.sleep(0)
    send(_END)
    end = await asyncio.wait_for(finished, _PHASE_TIMEOUT)
    if state["count"] != sent:
        raise RuntimeError(f"sent {sent} messages but received {state['count']}")
    pull.close(linger=0)
    push.close(linger=0)
    return rate_sample(sent, end - start)


async def _reqrep(make: Callable[..., Stream], ctx: zmq.Context[Any], p: Params) -> Sample:
    """Round trips from a REQ stream's ``on_recv`` to a REP stream echoing in its ``on_recv``."""
    rep, req = _pair(make, ctx, zmq.REP, zmq.REQ, p.hwm)
    rep.on_recv(rep.send_multipart)
    payload = [b"x" * p.size]
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    times: list[int] = []
    state: dict[str, Any] = {"warm": p.warmup, "t0": 0, "deadline": 0.0}

    def on_reply(msg: list[Any]) -> None:
        now = perf_counter_ns()
        if state["warm"]:
            state["warm"] -= 1
            if not state["warm"]:
                state["deadline"] = perf_counter() + p.duration
        else:
            times.append(now - state["t0"])
            if len(times) >= p.cap or perf_counter() >= state["deadline"]:
                finished.set_result(None)
                return
        state["t0"] = perf_counter_ns()
        req.send_multipart(payload)

    req.on_recv(on_reply)
    start = perf_counter()
    state["t0"] = perf_counter_ns()
    req.send_multipart(payload)
    await asyncio.wait_for(finished, _PHASE_TIMEOUT)
    sample = latency_sample(times, perf_counter() - start)
    rep.close(linger=0)
    req.close(linger=0)
    return sample


async def _fanin(make: Callable[..., Stream], ctx: zmq.Context[Any], p: Params) -> Sample:
    """``p.dealers`` DEALER streams, one request in flight each, against a ROUTER echo stream."""
    router = make(_socket(ctx, zmq.ROUTER, p.hwm))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    router.on_recv(router.send_multipart)
    payload = [b"x" * p.size]
    loop = asyncio.get_running_loop()
    per_dealer = max(1, p.cap // p.dealers)
    dealers = []
    for _ in range(p.dealers):
        dealer = make(_socket(ctx, zmq.DEALER, p.hwm))
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealers.append(dealer)
    # Connect every dealer (one round trip each) before the clock starts.
    ready: list[asyncio.Future[Any]] = []
    for dealer in dealers:
        future: asyncio.Future[Any] = loop.create_future()
        dealer.on_recv(lambda msg, f=future: f.done() or f.set_result(None))
        dealer.send_multipart(payload)
        ready.append(future)
    await asyncio.wait_for(asyncio.gather(*ready), _PHASE_TIMEOUT)

    start = perf_counter()
    deadline = start + p.duration
    results: list[asyncio.Future[tuple[int, float]]] = []
    for dealer in dealers:
        done: asyncio.Future[tuple[int, float]] = loop.create_future()
        count = [0]

        def on_reply(msg: list[Any], dealer: Stream = dealer, count: list[int] = count,
                     done: asyncio.Future[tuple[int, float]] = done) -> None:  # fmt: skip
            count[0] += 1
            now = perf_counter()
            if count[0] >= per_dealer or now >= deadline:
                if not done.done():
                    done.set_result((count[0], now))
            else:
                dealer.send_multipart(payload)

        dealer.on_recv(on_reply)
        dealer.send_multipart(payload)
        results.append(done)
    finished = await asyncio.wait_for(asyncio.gather(*results), _PHASE_TIMEOUT)
    for stream in [router, *dealers]:
        stream.close(linger=0)
    return rate_sample(sum(n for n, _ in finished), max(t for _, t in finished) - start)


_WORKLOADS: dict[Metric, Workload] = {
    "throughput": _push_pull,
    "latency": _reqrep,
    "requests": _fanin,
}
