"""Greenlet workloads, written once for any module with ``zmq.green``'s blocking API.

The same code drives ``zmq.green`` and ``zmq_async.green`` (loop ``gevent``) and
``eventlet.green.zmq`` and ``zmq_async.green.eventlet`` (loop ``eventlet``): only the module and
the way greenlets are spawned differ. Sender and receiver (client and server) are separate
greenlets, as an application would write them: ``sock.send(...)`` in a loop in one,
``sock.recv()`` in a loop in the other, with no explicit yields. Each worker is its own process,
so importing (or monkeypatching with) a framework here touches no one else.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from time import perf_counter, perf_counter_ns
from typing import Any, Protocol

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

#: A PUSH sends this after its last measured message; the PULL stops when it sees it.
_END = b""


class GreenSocket(Protocol):
    """The slice of ``zmq.green.Socket`` the workloads use."""

    def setsockopt(self, option: int, value: int, /) -> None: ...
    def bind_to_random_port(self, addr: str) -> int: ...
    def connect(self, addr: str) -> Any: ...
    def send(self, data: bytes, /) -> Any: ...
    def recv(self) -> bytes: ...
    def send_multipart(self, msg_parts: Sequence[bytes], /) -> Any: ...
    def recv_multipart(self) -> list[bytes]: ...
    def close(self, linger: int | None = None) -> None: ...


class GreenContext(Protocol):
    def socket(self, socket_type: int, /) -> GreenSocket: ...
    def destroy(self, linger: int | None = None) -> None: ...


class Greenlets:
    """Spawn greenlets and wait for them, on gevent or eventlet."""

    def __init__(self, loop: str) -> None:
        self.loop = loop
        if loop == "gevent":
            import gevent  # type: ignore[import-untyped]

            self._spawn: Callable[..., Any] = gevent.spawn
        elif loop == "eventlet":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # eventlet's deprecation notice
                import eventlet  # type: ignore[import-untyped]

            self._spawn = eventlet.spawn
        else:
            raise ValueError(f"unknown loop kind {loop!r}")

    def run(
        self, main: list[Callable[[], Any]], background: Sequence[Callable[[], Any]] = ()
    ) -> list[Any]:
        """Run ``main`` to completion with ``background`` alongside; return ``main``'s results.

        A failure in ``main`` is raised; ``background`` greenlets are killed at the end.
        """
        fg = [self._spawn(fn) for fn in main]
        bg = [self._spawn(fn) for fn in background]
        try:
            if self.loop == "gevent":
                return [g.get() for g in fg]
            return [g.wait() for g in fg]
        finally:
            for g in fg + bg:
                g.kill()


def probe(target: str, loop: str) -> None:
    """Raise if the framework or ``target`` (with a ``Context`` class) does not import."""
    Greenlets(loop)
    _module(target).Context  # noqa: B018 - a half-written module fails here


def _module(target: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eventlet's deprecation notice
        return importlib.import_module(target)


def run(params: Params, target: str, loop: str) -> Sample:
    """Run ``params.workload`` in greenlets of ``loop`` with ``target``'s ``Context``."""
    green = Greenlets(loop)
    mod = _module(target)
    ctx: GreenContext = mod.Context()
    try:
        result: list[Sample] = green.run(
            [lambda: for_workload(params, _WORKLOADS)(green, ctx, params)]
        )
        return result[0]
    finally:
        # eventlet.green.zmq's Context does not track its sockets, so destroy() would not
        # close them and would then wait for them for ever: close them here.
        for sock in _opened:
            sock.close(linger=0)
        _opened.clear()
        ctx.destroy(linger=0)


#: Every socket a workload opened, closed by :func:`run`.
_opened: list[GreenSocket] = []


def _socket(ctx: GreenContext, socket_type: int, hwm: int | None) -> GreenSocket:
    sock = ctx.socket(socket_type)
    _opened.append(sock)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def _bound(
    ctx: GreenContext, socket_type: int, hwm: int | None, transport: str = "tcp"
) -> tuple[GreenSocket, str]:
    sock = _socket(ctx, socket_type, hwm)
    return sock, bind(sock, transport)


def _connected(ctx: GreenContext, socket_type: int, hwm: int | None, endpoint: str) -> GreenSocket:
    sock = _socket(ctx, socket_type, hwm)
    sock.connect(endpoint)
    return sock


def _push_pull(green: Greenlets, ctx: GreenContext, p: Params) -> Sample:
    """Sender greenlet sends ``batch``-sized runs until the deadline or cap, then ``_END``."""
    pull, endpoint = _bound(ctx, zmq.PULL, p.hwm, p.transport)
    push = _connected(ctx, zmq.PUSH, p.hwm, endpoint)
    multipart = p.frames > 1
    payload: Any = [b"x" * p.size] * p.frames if multipart else b"x" * p.size
    send: Callable[[Any], Any] = push.send_multipart if multipart else push.send
    recv: Callable[[], Any] = pull.recv_multipart if multipart else pull.recv
    for _ in range(p.warmup):
        send(payload)
        recv()
    batch = min(p.batch, p.cap)
    start = perf_counter()
    deadline = start + p.duration

    def sender() -> int:
        sent = 0
        while True:
            for _ in range(batch):
                send(payload)
            sent += batch
            if sent >= p.cap or perf_counter() >= deadline:
                break
        push.send(_END)
        return sent

    def receiver() -> tuple[int, float]:
        received = 0
        if multipart:
            while len(recv()) != 1:
                received += 1
        else:
            while recv():
                received += 1
        return received, perf_counter()

    sent, (received, end) = green.run([sender, receiver])
    if sent != received:
        raise RuntimeError(f"sent {sent} messages but received {received}")
    return rate_sample(sent, end - start)


def _reqrep(green: Greenlets, ctx: GreenContext, p: Params) -> Sample:
    """A client greenlet timing each round trip against an echo-server greenlet."""
    rep, endpoint = _bound(ctx, zmq.REP, p.hwm)
    req = _connected(ctx, zmq.REQ, p.hwm, endpoint)
    payload = b"x" * p.size

    def server() -> None:
        while True:
            rep.send(rep.recv())

    def client() -> Sample:
        for _ in range(p.warmup):
            req.send(payload)
            req.recv()
        times: list[int] = []
        start = perf_counter()
        deadline = start + p.duration
        while len(times) < p.cap and perf_counter() < deadline:
            t0 = perf_counter_ns()
            req.send(payload)
            req.recv()
            times.append(perf_counter_ns() - t0)
        return latency_sample(times, perf_counter() - start)

    samples: list[Sample] = green.run([client], [server])
    return samples[0]


def _fanin(green: Greenlets, ctx: GreenContext, p: Params) -> Sample:
    """``p.dealers`` client greenlets, one request in flight each, against one ROUTER echo."""
    router, endpoint = _bound(ctx, zmq.ROUTER, p.hwm)
    dealers = [_connected(ctx, zmq.DEALER, p.hwm, endpoint) for _ in range(p.dealers)]
    payload = b"x" * p.size
    for dealer in dealers:  # connect every dealer before the clock starts
        dealer.send(payload)
        router.send_multipart(router.recv_multipart())
        dealer.recv()
    per_dealer = max(1, p.cap // len(dealers))
    start = perf_counter()
    deadline = start + p.duration

    def server() -> None:
        while True:
            router.send_multipart(router.recv_multipart())

    def client(dealer: GreenSocket) -> tuple[int, float]:
        done = 0
        while done < per_dealer and perf_counter() < deadline:
            dealer.send(payload)
            dealer.recv()
            done += 1
        return done, perf_counter()

    clients: list[Callable[[], Any]] = [partial(client, d) for d in dealers]
    results: list[tuple[int, float]] = green.run(clients, [server])
    return rate_sample(sum(n for n, _ in results), max(t for _, t in results) - start)


_WORKLOADS: dict[Metric, Callable[[Greenlets, GreenContext, Params], Sample]] = {
    "throughput": _push_pull,
    "latency": _reqrep,
    "requests": _fanin,
}
