"""anyio workloads, for ``zmq_async.anyio`` (ours) and ``zmq_anyio`` (the peer).

The same workloads as :mod:`zmq_async._bench.aio`, written with anyio task groups and run with
``anyio.run(..., backend=...)`` on the loops ``asyncio``, ``uvloop`` (anyio's asyncio backend on
uvloop) and ``trio``. The peer's sockets are wrapped in a small adapter with the same coroutine
methods (``asend`` -> ``send`` ...) and entered with ``async with``, as its documentation requires.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from time import perf_counter
from typing import Any

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

Workload = Callable[["_Sockets", Params], Awaitable[Sample]]


def probe(target: str, loop: str) -> None:
    """Raise if the backend of ``loop`` or ``target`` does not import."""
    _backend(loop)
    if loop == "trio":
        import trio  # noqa: F401
    importlib.import_module(target)


def run(params: Params, target: str, loop: str) -> Sample:
    """Run ``params.workload`` with ``target``'s sockets under ``anyio.run`` on ``loop``."""
    import anyio

    backend, options = _backend(loop)
    workload = for_workload(params, _WORKLOADS)

    async def main() -> Sample:
        async with _Sockets(target) as sockets:
            return await workload(sockets, params)

    result: Sample = anyio.run(main, backend=backend, backend_options=options)
    return result


def _backend(loop: str) -> tuple[str, dict[str, Any]]:
    if loop == "asyncio":
        return "asyncio", {}
    if loop == "uvloop":
        import uvloop  # noqa: F401 - fail the probe if it is missing

        return "asyncio", {"use_uvloop": True}
    if loop == "trio":
        return "trio", {}
    raise ValueError(f"unknown loop kind {loop!r}")


class _PeerSocket:
    """A ``zmq_anyio.Socket`` seen through ``zmq_async.anyio.Socket``'s coroutine methods."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    async def send(self, data: bytes) -> None:
        await self.sock.asend(data)

    async def recv(self) -> bytes:
        return await self.sock.arecv()  # type: ignore[no-any-return]

    async def send_multipart(self, parts: Sequence[bytes]) -> None:
        await self.sock.asend_multipart(parts)

    async def recv_multipart(self) -> list[bytes]:
        return await self.sock.arecv_multipart()  # type: ignore[no-any-return]


class _Sockets:
    """Makes bound/connected sockets of ``target``; closes them all (and the context) on exit."""

    def __init__(self, target: str) -> None:
        self.mod = importlib.import_module(target)
        self.peer = target == "zmq_anyio"
        self.ctx: Any = zmq.Context() if self.peer else self.mod.Context()
        self.stack = AsyncExitStack()

    async def __aenter__(self) -> _Sockets:
        await self.stack.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self.stack.__aexit__(*exc_info)
        finally:
            self.ctx.destroy(linger=0)

    async def _make(
        self, socket_type: int, hwm: int | None, endpoint: str | None, transport: str = "tcp"
    ) -> Any:
        sock = self.mod.Socket(self.ctx, socket_type) if self.peer else self.ctx.socket(socket_type)
        if hwm is not None:
            sock.setsockopt(zmq.SNDHWM, hwm)
            sock.setsockopt(zmq.RCVHWM, hwm)
        if endpoint is None:
            self.endpoint = bind(sock, transport)
        else:
            sock.connect(endpoint)
        if not self.peer:
            return sock
        await self.stack.enter_async_context(sock)
        return _PeerSocket(sock)

    async def bound(
        self, socket_type: int, hwm: int | None, transport: str = "tcp"
    ) -> tuple[Any, str]:
        sock = await self._make(socket_type, hwm, None, transport)
        return sock, self.endpoint

    async def connected(self, socket_type: int, hwm: int | None, endpoint: str) -> Any:
        return await self._make(socket_type, hwm, endpoint)


async def _push_pull(s: _Sockets, p: Params) -> Sample:
    """Sender task sends ``batch``-sized runs until the deadline or cap, then ``_END``."""
    import anyio

    pull, endpoint = await s.bound(zmq.PULL, p.hwm, p.transport)
    push = await s.connected(zmq.PUSH, p.hwm, endpoint)
    multipart = p.frames > 1
    payload: Any = [b"x" * p.size] * p.frames if multipart else b"x" * p.size
    send = push.send_multipart if multipart else push.send
    recv = pull.recv_multipart if multipart else pull.recv
    for _ in range(p.warmup):
        await send(payload)
        await recv()
    start = perf_counter()
    sent: list[int] = []
    received: list[tuple[int, float]] = []

    async def sender() -> None:
        sent.append(
            await send_batches(send, lambda: push.send(_END), payload, p, start + p.duration)
        )

    async def receiver() -> None:
        received.append(await receive_until_end(recv, multipart))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        tg.start_soon(receiver)
    ((count, end),) = received
    if sent != [count]:
        raise RuntimeError(f"sent {sent[0]} messages but received {count}")
    return rate_sample(count, end - start)


async def _reqrep(s: _Sockets, p: Params) -> Sample:
    """A client task timing each round trip against an echo-server task."""
    import anyio

    rep, endpoint = await s.bound(zmq.REP, p.hwm)
    req = await s.connected(zmq.REQ, p.hwm, endpoint)
    payload = b"x" * p.size
    result: list[Sample] = []

    async def server() -> None:
        while True:
            await rep.send(await rep.recv())

    async def round_trip() -> None:
        await req.send(payload)
        await req.recv()

    async with anyio.create_task_group() as tg:
        tg.start_soon(server)
        result.append(await timed_round_trips(round_trip, p))
        tg.cancel_scope.cancel()
    return result[0]


async def _fanin(s: _Sockets, p: Params) -> Sample:
    """``p.dealers`` client tasks, one request in flight each, against one ROUTER echo task."""
    import anyio

    router, endpoint = await s.bound(zmq.ROUTER, p.hwm)
    dealers = [await s.connected(zmq.DEALER, p.hwm, endpoint) for _ in range(p.dealers)]
    payload = b"x" * p.size
    for dealer in dealers:  # connect every dealer before the clock starts
        await dealer.send(payload)
        await router.send_multipart(await router.recv_multipart())
        await dealer.recv()
    per_dealer = max(1, p.cap // len(dealers))
    start = perf_counter()
    deadline = start + p.duration
    results: list[tuple[int, float]] = []

    async def server() -> None:
        while True:
            await router.send_multipart(await router.recv_multipart())

    async def client(dealer: Any) -> None:
        done = 0
        while done < per_dealer and perf_counter() < deadline:
            await dealer.send(payload)
            await dealer.recv()
            done += 1
        results.append((done, perf_counter()))

    async with anyio.create_task_group() as outer:
        outer.start_soon(server)
        async with anyio.create_task_group() as clients:
            for dealer in dealers:
                clients.start_soon(client, dealer)
        outer.cancel_scope.cancel()
    return rate_sample(sum(n for n, _ in results), max(t for _, t in results) - start)


_WORKLOADS: dict[Metric, Workload] = {
    "throughput": _push_pull,
    "latency": _reqrep,
    "requests": _fanin,
}
