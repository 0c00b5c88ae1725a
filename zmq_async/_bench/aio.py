"""asyncio workloads, written once for any module with ``zmq.asyncio``'s API.

The same code drives ``zmq.asyncio`` (the peer) and ``zmq_async.asyncio`` (ours): only the module
handed to :func:`run` differs. Sender and receiver (client and server) are separate tasks on one
loop in one process, as an application would write them: ``await sock.send(...)`` in a loop on one
side, ``await sock.recv()`` in a loop on the other, with no explicit yields.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from time import perf_counter
from typing import Any, Protocol

import zmq

from zmq_async._bench.spec import (
    Metric,
    Params,
    Sample,
    bind,
    for_workload,
    rate_sample,
    receive_until_end,
    send_batches,
    timed_round_trips,
)

#: A PUSH sends this after its last measured message; the PULL stops when it sees it.
_END = b""


class AsyncSocket(Protocol):
    """The slice of ``zmq.asyncio.Socket`` the workloads use."""

    def setsockopt(self, option: int, value: int, /) -> None: ...
    def bind_to_random_port(self, addr: str) -> int: ...
    def connect(self, addr: str) -> Any: ...
    def send(self, data: bytes, /) -> Awaitable[Any]: ...
    def recv(self) -> Awaitable[bytes]: ...
    def send_multipart(self, msg_parts: Sequence[bytes], /) -> Awaitable[Any]: ...
    def recv_multipart(self) -> Awaitable[list[bytes]]: ...


class AsyncContext(Protocol):
    """The slice of ``zmq.asyncio.Context`` the workloads use."""

    def socket(self, socket_type: int, /) -> AsyncSocket: ...
    def destroy(self, linger: int | None = None) -> None: ...


Workload = Callable[[AsyncContext, Params], Coroutine[Any, Any, Sample]]


def probe(target: str, loop: str) -> None:
    """Raise if the loop or ``target`` (with a ``Context`` class) does not import."""
    _loop_factory(loop)
    importlib.import_module(target).Context  # noqa: B018 - a half-written module fails here


def run(params: Params, target: str, loop: str) -> Sample:
    """Run ``params.workload`` on a fresh loop of kind ``loop`` with ``target``'s ``Context``."""
    mod = importlib.import_module(target)
    new_loop = _loop_factory(loop)()
    asyncio.set_event_loop(new_loop)
    try:
        return new_loop.run_until_complete(
            _in_context(mod.Context, for_workload(params, _WORKLOADS), params)
        )
    finally:
        new_loop.run_until_complete(new_loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        new_loop.close()


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "asyncio":
        return asyncio.new_event_loop
    if kind == "uvloop":
        import uvloop  # imported here only: the parent process never needs it

        return uvloop.new_event_loop
    raise ValueError(f"unknown loop kind {kind!r}")


async def _in_context(
    context_class: Callable[[], AsyncContext], workload: Workload, params: Params
) -> Sample:
    """Create the context inside the loop and always destroy it (linger=0) on the way out."""
    ctx = context_class()
    try:
        return await workload(ctx, params)
    finally:
        ctx.destroy(linger=0)


def _socket(ctx: AsyncContext, socket_type: int, hwm: int | None) -> AsyncSocket:
    """A socket with SNDHWM and RCVHWM set to ``hwm`` (``None``: libzmq's default)."""
    sock = ctx.socket(socket_type)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    return sock


def _bound(
    ctx: AsyncContext, socket_type: int, hwm: int | None, transport: str = "tcp"
) -> tuple[AsyncSocket, str]:
    """A socket bound to a fresh endpoint (a free tcp port on loopback), and the endpoint."""
    sock = _socket(ctx, socket_type, hwm)
    return sock, bind(sock, transport)


def _connected(ctx: AsyncContext, socket_type: int, hwm: int | None, endpoint: str) -> AsyncSocket:
    sock = _socket(ctx, socket_type, hwm)
    sock.connect(endpoint)
    return sock


async def _tasks(
    main: Iterable[Coroutine[Any, Any, Any]], background: Iterable[Coroutine[Any, Any, Any]] = ()
) -> list[Any]:
    """Run ``main`` to completion with ``background`` alongside; return ``main``'s results.

    Unlike ``gather``, the first failure anywhere (or a background task returning) ends the run
    and cancels everything else, so a broken peer task fails the measurement instead of hanging it.
    """
    fg = [asyncio.ensure_future(c) for c in main]
    bg = [asyncio.ensure_future(c) for c in background]
    try:
        waiting = set(fg)
        while waiting:
            done, _ = await asyncio.wait(waiting | set(bg), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
                if task in bg:
                    raise RuntimeError("a background task returned early")
            waiting -= done
        return [task.result() for task in fg]
    finally:
        for task in fg + bg:
            task.cancel()
        await asyncio.gather(*fg, *bg, return_exceptions=True)


async def _push_pull(ctx: AsyncContext, p: Params) -> Sample:
    """Sender task sends ``batch``-sized runs until the deadline or cap, then ``_END``."""
    pull, endpoint = _bound(ctx, zmq.PULL, p.hwm, p.transport)
    push = _connected(ctx, zmq.PUSH, p.hwm, endpoint)
    multipart = p.frames > 1
    payload: Any = [b"x" * p.size] * p.frames if multipart else b"x" * p.size
    send: Callable[[Any], Awaitable[Any]] = push.send_multipart if multipart else push.send
    recv: Callable[[], Awaitable[Any]] = pull.recv_multipart if multipart else pull.recv
    for _ in range(p.warmup):
        await send(payload)
        await recv()
    start = perf_counter()
    sender = send_batches(send, lambda: push.send(_END), payload, p, start + p.duration)
    sent, (received, end) = await _tasks([sender, receive_until_end(recv, multipart)])
    if sent != received:
        raise RuntimeError(f"sent {sent} messages but received {received}")
    return rate_sample(sent, end - start)


async def _reqrep(ctx: AsyncContext, p: Params) -> Sample:
    """A client task timing each round trip against an echo-server task."""
    rep, endpoint = _bound(ctx, zmq.REP, p.hwm)
    req = _connected(ctx, zmq.REQ, p.hwm, endpoint)
    payload = b"x" * p.size

    async def server() -> None:
        while request := await rep.recv():
            await rep.send(request)
        await rep.send(_END)

    async def round_trip() -> None:
        await req.send(payload)
        await req.recv()

    async def client() -> Sample:
        sample = await timed_round_trips(round_trip, p)
        await req.send(_END)  # the server ends by itself: no task is cancelled
        await req.recv()
        return sample

    sample, _ = await _tasks([client(), server()])
    return sample  # type: ignore[no-any-return]


async def _fanin(ctx: AsyncContext, p: Params) -> Sample:
    """``p.dealers`` client tasks, one request in flight each, against one ROUTER echo task."""
    router, endpoint = _bound(ctx, zmq.ROUTER, p.hwm)
    dealers = [_connected(ctx, zmq.DEALER, p.hwm, endpoint) for _ in range(p.dealers)]
    payload = b"x" * p.size
    for dealer in dealers:  # connect every dealer before the clock starts
        await dealer.send(payload)
        await router.send_multipart(await router.recv_multipart())
        await dealer.recv()
    per_dealer = max(1, p.cap // len(dealers))
    start = perf_counter()
    deadline = start + p.duration

    async def server() -> None:
        stopped = 0
        while stopped < len(dealers):
            msg = await router.recv_multipart()
            if msg[-1]:
                await router.send_multipart(msg)
            else:
                stopped += 1  # a client is done: no task is cancelled at the end

    async def client(dealer: AsyncSocket) -> tuple[int, float]:
        done = 0
        while done < per_dealer and perf_counter() < deadline:
            await dealer.send(payload)
            await dealer.recv()
            done += 1
        end = perf_counter()
        await dealer.send(_END)
        return done, end

    results: list[tuple[int, float]] = await _tasks([*map(client, dealers), server()])
    results.pop()  # the server's None
    return rate_sample(sum(n for n, _ in results), max(t for _, t in results) - start)


_WORKLOADS: dict[Metric, Workload] = {
    "throughput": _push_pull,
    "latency": _reqrep,
    "requests": _fanin,
}
