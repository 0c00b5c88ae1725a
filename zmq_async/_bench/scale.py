"""``zmq-async bench scale``: what N sockets cost, every layer beside its peer and plain pyzmq.

For each contender and each N (1, 100, 1,000, 10,000 by default), one fresh process binds N
inproc PULL sockets, gives each a receiver that always has a receive pending (a task, a
greenlet, an ``on_recv`` callback; plain pyzmq: one thread polling them all), then measures:

- **idle**: process CPU seconds per second while nothing arrives (after a settle time and,
  for zmq_async, once its waiting sockets have climbed the re-check's young generations), and
  that per socket;
- **wake**: median time from sending one message to one of them until its receiver has it;
- **reqrep**: median round trip of one more REQ/REP pair of the same layer, beside them;
- **throughput**: one PUSH connected to all N sends to them round-robin: messages/s received
  over all N (N more sockets would pass the usual limit of 20,000 open files at 10,000).

Run as a worker (``python -m zmq_async._bench.scale REQUEST_JSON``) by :func:`run_scale`,
which reuses the bench's contenders (:mod:`~zmq_async._bench.layers`), worker call and table
width; the per-framework code is here, each family written once for its peer and ours.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import statistics
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from time import perf_counter_ns
from typing import Any, Protocol, TextIO

import zmq

from zmq_async._bench.layers import Variant, variants
from zmq_async._bench.report import WIDTH

__all__ = ["ScaleOptions", "ScaleParams", "bind_pulls", "climbed", "measure", "run_scale"]

#: The numbers of sockets measured, and with ``--quick``.
SIZES = (1, 100, 1_000, 10_000)
QUICK_SIZES = (1, 100, 1_000)
#: Wake-ups are sent round-robin to this many of the N receivers.
PROBES = 16


@dataclass(frozen=True)
class ScaleParams:
    """One measurement: N sockets, how long to settle and to measure idle, how many samples."""

    n: int
    settle: float = 3.0
    span: float = 5.0
    wakes: int = 300
    round_trips: int = 1000
    #: Messages each of the N receives in the throughput phase (at least ``min_messages`` in
    #: all); 0: no throughput phase.
    min_messages: int = 20_000
    #: How much longer than ``settle`` idle waits, at most, for zmq_async's waiting sockets to
    #: climb the re-check's young generations (on a loaded machine they start and climb late,
    #: and the young generations' sweeps are not the cost of waiting); 0 with ``--quick``.
    climb: float = 10.0


Sample = dict[str, float]


def measure(target: str, driver: str, loop: str, p: ScaleParams) -> Sample:
    """Run the four phases for one contender in this process; a sample of named figures."""
    _raise_limits()
    if driver in ("aio", "stream"):
        import asyncio

        from zmq_async._bench.aio import _loop_factory

        kit = _AsyncioKit(target, driver == "stream")
        new_loop = _loop_factory(loop)()
        asyncio.set_event_loop(new_loop)
        try:
            return new_loop.run_until_complete(_measure_async(kit, p, target))
        finally:
            new_loop.run_until_complete(kit.aclose())
            asyncio.set_event_loop(None)
            new_loop.close()
    if driver == "anyio_":
        import anyio

        from zmq_async._bench.anyio_ import _backend

        backend, options = _backend(loop)
        anyio_kit = _AnyioKit(target)

        async def main() -> Sample:
            try:
                return await _measure_async(anyio_kit, p, target)
            finally:
                await anyio_kit.aclose()

        result: Sample = anyio.run(main, backend=backend, backend_options=options)
        return result
    if driver == "green":
        return _measure_sync(_GreenKit(target, loop), p, target)
    if driver == "plain":
        return _measure_sync(_PlainKit(), p, target)
    raise ValueError(f"no scale workload for driver {driver!r}")


def _raise_limits() -> None:
    """Allow the N sockets and a few more (each an FD or two): soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _max_sockets(ctx: Any, n: int) -> None:
    ctx.set(zmq.MAX_SOCKETS, n + 64)


def bind_pulls(ctx: Any, n: int, prefix: str = "inproc://scale-") -> list[Any]:
    """``n`` PULL sockets of ``ctx`` bound to ``prefix`` + 0 .. n-1 (MAX_SOCKETS raised)."""
    _max_sockets(ctx, n)
    pulls = []
    for i in range(n):
        pull = ctx.socket(zmq.PULL)
        pull.bind(f"{prefix}{i}")
        pulls.append(pull)
    return pulls


def _cpu_per_second(seconds: float, sleep: Callable[[float], Any]) -> float:
    """CPU time per second over ``seconds`` of ``sleep`` (used by the sync kits)."""
    start_cpu, start = time.process_time(), time.perf_counter()
    sleep(seconds)
    return (time.process_time() - start_cpu) / (time.perf_counter() - start)


def climbed(n: int) -> bool:
    """Whether at least ``n`` of zmq_async's waiting sockets are in its re-check's oldest
    generation (they start in the youngest, whose sweeps cost until they have climbed)."""
    from zmq_async import _reactor

    return sum(len(r._gens[-1]) for r in list(_reactor._recheckers.values())) >= n


def _climbing(target: str, n: int) -> bool:
    """Whether ``target``'s ``n`` waiting sockets are still climbing; False for a peer or plain
    pyzmq (which have no re-check)."""
    return target.startswith("zmq_async") and not climbed(n)


def _summary(
    p: ScaleParams, idle: float, wakes: list[int], trips: list[int], rate: float
) -> Sample:
    return {
        "n": p.n,
        "idle_cpu": idle,
        "idle_us_per_socket": idle / p.n * 1e6,
        "wake_us": statistics.median(wakes) / 1000,
        "reqrep_us": statistics.median(trips) / 1000,
        "throughput": rate,
        "throughput_per_socket": rate / p.n,
    }


def _per_socket(p: ScaleParams) -> int:
    return max(1, -(-p.min_messages // p.n))


# -- async families: asyncio (futures, streams) and anyio (asyncio, trio) -----------------


class _Async(Protocol):
    """What the async measurement needs of a family."""

    received: list[int]

    async def setup(self, n: int) -> None: ...
    async def sleep(self, seconds: float) -> None: ...
    async def push(self, indexes: range) -> Any: ...
    async def send(self, sock: Any, data: bytes) -> None: ...
    async def wait_received(self, count: int) -> None: ...
    async def round_trip_fn(self) -> Callable[[], Awaitable[None]]: ...


async def _measure_async(kit: _Async, p: ScaleParams, target: str) -> Sample:
    await kit.setup(p.n)
    await kit.sleep(p.settle)
    deadline = time.perf_counter() + p.climb
    while _climbing(target, p.n) and time.perf_counter() < deadline:
        await kit.sleep(0.05)
    gc.collect()  # the garbage of setting up is not the cost of waiting
    start_cpu, start = time.process_time(), time.perf_counter()
    await kit.sleep(p.span)
    idle = (time.process_time() - start_cpu) / (time.perf_counter() - start)
    probes = [await kit.push(range(i, i + 1)) for i in range(min(PROBES, p.n))]
    wakes: list[int] = []
    for k in range(p.wakes):
        expected = sum(kit.received) + 1
        t0 = perf_counter_ns()
        await kit.send(probes[k % len(probes)], b"w")
        await kit.wait_received(expected)
        wakes.append(perf_counter_ns() - t0)
    round_trip = await kit.round_trip_fn()
    trips: list[int] = []
    for _ in range(p.round_trips):
        t0 = perf_counter_ns()
        await round_trip()
        trips.append(perf_counter_ns() - t0)
    if not p.min_messages:
        return _summary(p, idle, wakes, trips, 0.0)
    fan_out = await kit.push(range(p.n))
    per = _per_socket(p)
    expected = sum(kit.received) + per * p.n
    start = time.perf_counter()
    for _ in range(per * p.n):
        await kit.send(fan_out, b"t")
    await kit.wait_received(expected)
    rate = per * p.n / (time.perf_counter() - start)
    return _summary(p, idle, wakes, trips, rate)


class _AsyncioKit:
    """``zmq.asyncio``-like future sockets, or ``ZMQStream`` callbacks, on an asyncio loop."""

    def __init__(self, target: str, stream: bool) -> None:
        self.stream = stream
        if stream:
            importlib.import_module("tornado.ioloop")
        self.mod = importlib.import_module(target)
        self.ctx: Any = zmq.Context() if stream else self.mod.Context()
        self.tasks: list[Any] = []
        self.received = [0]
        self._waiting: tuple[int, Any] | None = None

    def _got(self, *_: Any) -> None:
        self.received[0] += 1
        waiting = self._waiting
        if waiting is not None and self.received[0] >= waiting[0] and not waiting[1].done():
            waiting[1].set_result(None)

    def _socket(self, kind: int) -> Any:
        sock = self.ctx.socket(kind)
        return self.mod.ZMQStream(sock) if self.stream else sock

    async def setup(self, n: int) -> None:
        import asyncio

        _max_sockets(self.ctx, n)
        self.pulls = []
        for i in range(n):
            pull = self._socket(zmq.PULL)
            (pull.socket if self.stream else pull).bind(f"inproc://scale-{i}")
            self.pulls.append(pull)
            if self.stream:
                pull.on_recv(self._got)
            else:
                self.tasks.append(asyncio.ensure_future(self._receive(pull)))

    async def _receive(self, pull: Any) -> None:
        while True:
            await pull.recv()
            self._got()

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)

    async def push(self, indexes: range) -> Any:
        push = self._socket(zmq.PUSH)
        for index in indexes:
            (push.socket if self.stream else push).connect(f"inproc://scale-{index}")
        return push

    async def send(self, sock: Any, data: bytes) -> None:
        if self.stream:
            sock.send(data)
        else:
            await sock.send(data)

    async def wait_received(self, count: int) -> None:
        import asyncio

        if self.received[0] >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting = (count, future)
        await asyncio.wait_for(future, 60)

    async def round_trip_fn(self) -> Callable[[], Awaitable[None]]:
        import asyncio

        rep, req = self._socket(zmq.REP), self._socket(zmq.REQ)
        (rep.socket if self.stream else rep).bind("inproc://scale-rep")
        (req.socket if self.stream else req).connect("inproc://scale-rep")
        if self.stream:
            replies: list[Any] = []
            rep.on_recv(rep.send_multipart)
            req.on_recv(lambda msg: replies[-1].set_result(msg))

            async def stream_trip() -> None:
                replies.append(asyncio.get_running_loop().create_future())
                req.send(b"r")
                await replies[-1]

            return stream_trip

        async def echo() -> None:
            while True:
                await rep.send(await rep.recv())

        self.tasks.append(asyncio.ensure_future(echo()))

        async def trip() -> None:
            await req.send(b"r")
            await req.recv()

        return trip

    async def aclose(self) -> None:
        import asyncio

        # Closing the sockets cancels their pending futures, which ends the tasks: cancelling
        # a task would pass a message to the future it awaits, which the peer's Tornado
        # futures do not accept.
        self.ctx.destroy(linger=0)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class _AnyioKit:
    """``zmq_async.anyio`` sockets, or ``zmq_anyio``'s (entered with ``async with``)."""

    def __init__(self, target: str) -> None:
        self.mod = importlib.import_module(target)
        self.peer = target == "zmq_anyio"
        self.ctx: Any = zmq.Context() if self.peer else self.mod.Context()
        self.stack = AsyncExitStack()
        self.received = [0]

    async def _socket(self, kind: int) -> Any:
        if not self.peer:
            return self.ctx.socket(kind)
        sock = self.mod.Socket(self.ctx, kind)
        await self.stack.enter_async_context(sock)
        return sock

    async def _recv(self, sock: Any) -> bytes:
        return await (sock.arecv() if self.peer else sock.recv())  # type: ignore[no-any-return]

    async def send(self, sock: Any, data: bytes) -> None:
        await (sock.asend(data) if self.peer else sock.send(data))

    async def setup(self, n: int) -> None:
        import anyio

        _max_sockets(self.ctx, n)
        self.changed = anyio.Event()
        self.tg = await self.stack.enter_async_context(anyio.create_task_group())
        for i in range(n):
            pull = await self._socket(zmq.PULL)
            pull.bind(f"inproc://scale-{i}")
            # start(): each receiver runs until its receive blocks before the next begins,
            # so that none is still starting when the idle window opens
            await self.tg.start(self._receive, pull)

    async def _receive(self, pull: Any, *, task_status: Any) -> None:
        task_status.started()
        while True:
            await self._recv(pull)
            self.received[0] += 1
            self.changed.set()

    async def sleep(self, seconds: float) -> None:
        import anyio

        await anyio.sleep(seconds)

    async def push(self, indexes: range) -> Any:
        push = await self._socket(zmq.PUSH)
        for index in indexes:
            push.connect(f"inproc://scale-{index}")
        return push

    async def wait_received(self, count: int) -> None:
        import anyio

        with anyio.fail_after(60):
            while self.received[0] < count:
                self.changed = anyio.Event()
                await self.changed.wait()

    async def round_trip_fn(self) -> Callable[[], Awaitable[None]]:
        rep, req = await self._socket(zmq.REP), await self._socket(zmq.REQ)
        rep.bind("inproc://scale-rep")
        req.connect("inproc://scale-rep")

        async def echo() -> None:
            while True:
                await self.send(rep, await self._recv(rep))

        self.tg.start_soon(echo)

        async def trip() -> None:
            await self.send(req, b"r")
            await self._recv(req)

        return trip

    async def aclose(self) -> None:
        try:
            self.tg.cancel_scope.cancel()  # before the sockets close under the receivers
            await self.stack.aclose()
        finally:
            self.ctx.destroy(linger=0)


# -- sync families: green (gevent, eventlet) and plain pyzmq ------------------------------


class _Sync(Protocol):
    """What the blocking measurement needs of a family."""

    received: list[int]

    def setup(self, n: int) -> None: ...
    def sleep(self, seconds: float) -> None: ...
    def push(self, indexes: range) -> Any: ...
    def wait_received(self, count: int) -> None: ...
    def round_trip_fn(self) -> Callable[[], None]: ...
    def close(self) -> None: ...


def _measure_sync(kit: _Sync, p: ScaleParams, target: str) -> Sample:
    try:
        kit.setup(p.n)
        kit.sleep(p.settle)
        deadline = time.perf_counter() + p.climb
        while _climbing(target, p.n) and time.perf_counter() < deadline:
            kit.sleep(0.05)
        gc.collect()
        idle = _cpu_per_second(p.span, kit.sleep)
        probes = [kit.push(range(i, i + 1)) for i in range(min(PROBES, p.n))]
        wakes: list[int] = []
        for k in range(p.wakes):
            expected = kit.received[0] + 1
            t0 = perf_counter_ns()
            probes[k % len(probes)].send(b"w")
            kit.wait_received(expected)
            wakes.append(perf_counter_ns() - t0)
        round_trip = kit.round_trip_fn()
        trips: list[int] = []
        for _ in range(p.round_trips):
            t0 = perf_counter_ns()
            round_trip()
            trips.append(perf_counter_ns() - t0)
        if not p.min_messages:
            return _summary(p, idle, wakes, trips, 0.0)
        fan_out = kit.push(range(p.n))
        per = _per_socket(p)
        expected = kit.received[0] + per * p.n
        start = time.perf_counter()
        for _ in range(per * p.n):
            fan_out.send(b"t")
        kit.wait_received(expected)
        rate = per * p.n / (time.perf_counter() - start)
        return _summary(p, idle, wakes, trips, rate)
    finally:
        kit.close()


class _GreenKit:
    """A greenlet per receiver, on gevent or eventlet, with ``target``'s ``Context``."""

    def __init__(self, target: str, loop: str) -> None:
        from zmq_async._bench.green import Greenlets, _module

        self.green = Greenlets(loop)
        self.mod = _module(target)
        self.ctx: Any = self.mod.Context()
        self.sockets: list[Any] = []
        self.greenlets: list[Any] = []
        self.received = [0]
        if loop == "gevent":
            import gevent  # type: ignore[import-untyped]
            from gevent.event import Event  # type: ignore[import-untyped]

            self._sleep: Callable[[float], Any] = gevent.sleep
        else:
            import eventlet  # type: ignore[import-untyped]
            from eventlet.event import Event  # type: ignore[import-untyped]

            self._sleep = eventlet.sleep
        self._event_class = Event
        self._loop = loop
        self.changed = Event()

    def _socket(self, kind: int) -> Any:
        sock = self.ctx.socket(kind)
        self.sockets.append(sock)
        return sock

    def _spawn(self, function: Callable[..., Any], *args: Any) -> None:
        self.greenlets.append(self.green._spawn(function, *args))

    def setup(self, n: int) -> None:
        for pull in bind_pulls(self.ctx, n):
            self.sockets.append(pull)
            self._spawn(self._receive, pull)

    def _receive(self, pull: Any) -> None:
        while True:
            pull.recv()
            self.received[0] += 1
            self._notify()

    def _notify(self) -> None:
        changed = self.changed
        if self._loop == "gevent":
            changed.set()
        elif not changed.ready():
            changed.send()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)

    def push(self, indexes: range) -> Any:
        push = self._socket(zmq.PUSH)
        for index in indexes:
            push.connect(f"inproc://scale-{index}")
        return push

    def wait_received(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while self.received[0] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"received {self.received[0]} of {count}")
            self.changed = self._event_class()
            self.changed.wait()

    def round_trip_fn(self) -> Callable[[], None]:
        rep, req = self._socket(zmq.REP), self._socket(zmq.REQ)
        rep.bind("inproc://scale-rep")
        req.connect("inproc://scale-rep")

        def echo() -> None:
            while True:
                rep.send(rep.recv())

        self._spawn(echo)

        def trip() -> None:
            req.send(b"r")
            req.recv()

        return trip

    def close(self) -> None:
        for greenlet in self.greenlets:
            greenlet.kill()
        for sock in self.sockets:  # eventlet.green.zmq's Context does not track its sockets
            sock.close(linger=0)
        self.ctx.destroy(linger=0)


class _PlainKit:
    """Plain pyzmq: one thread blocks in ``zmq.Poller.poll()`` over every receiver."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.received = [0]
        self.cond = threading.Condition()
        self.sockets: list[zmq.Socket[Any]] = []

    def setup(self, n: int) -> None:
        poller = zmq.Poller()
        for pull in bind_pulls(self.ctx, n):
            poller.register(pull, zmq.POLLIN)
            self.sockets.append(pull)
        stop = self.ctx.socket(zmq.PULL)
        stop.bind("inproc://scale-stop")
        poller.register(stop, zmq.POLLIN)
        self.stopper = self.ctx.socket(zmq.PUSH)
        self.stopper.connect("inproc://scale-stop")
        self.sockets += [stop, self.stopper]
        self.thread = threading.Thread(target=self._receive, args=(poller, stop), daemon=True)
        self.thread.start()

    def _receive(self, poller: zmq.Poller, stop: zmq.Socket[Any]) -> None:
        while True:
            ready = poller.poll()
            got = 0
            for sock, _ in ready:
                if sock is stop:
                    return
                while True:
                    try:
                        sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    got += 1
            with self.cond:
                self.received[0] += got
                self.cond.notify_all()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def push(self, indexes: range) -> Any:
        push = self.ctx.socket(zmq.PUSH)
        for index in indexes:
            push.connect(f"inproc://scale-{index}")
        self.sockets.append(push)
        return push

    def wait_received(self, count: int) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.received[0] >= count, 60):
                raise TimeoutError(f"received {self.received[0]} of {count}")

    def round_trip_fn(self) -> Callable[[], None]:
        rep, req = self.ctx.socket(zmq.REP), self.ctx.socket(zmq.REQ)
        self.sockets += [rep, req]
        rep.bind("inproc://scale-rep")
        req.connect("inproc://scale-rep")

        def echo() -> None:
            while True:
                message = rep.recv()
                rep.send(message)
                if message == b"stop":
                    return

        self.echo = threading.Thread(target=echo, daemon=True)
        self.echo.start()

        def trip() -> None:
            req.send(b"r")
            req.recv()

        def stop() -> None:
            req.send(b"stop")
            req.recv()

        self.stop_echo = stop
        return trip

    def close(self) -> None:
        # Each thread leaves its blocking call before the context goes: libzmq sockets must
        # not be closed under a thread that is using them.
        if hasattr(self, "stopper"):
            self.stopper.send(b"")
            self.thread.join(10)
        if hasattr(self, "echo"):
            self.stop_echo()
            self.echo.join(10)
        self.ctx.destroy(linger=0)


# -- the command ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleOptions:
    """The ``bench scale`` command's settings."""

    quick: bool = False
    sizes: tuple[int, ...] = ()
    layers: tuple[str, ...] = ()
    json_path: str | None = None
    timeout: float = 300.0

    def params(self, n: int) -> ScaleParams:
        if self.quick:
            return ScaleParams(n, settle=0.5, span=1.0, wakes=50, round_trips=200, climb=0.0)
        return ScaleParams(n)


#: The bench drivers :func:`measure` has a kit for.
_DRIVERS = ("aio", "stream", "anyio_", "green", "plain")

#: Columns of the table: sample key, header, format.
_COLUMNS = (
    ("idle_cpu", "idle s/s", "{:.4f}"),
    ("idle_us_per_socket", "us/s/sock", "{:.2f}"),
    ("wake_us", "wake us", "{:,.0f}"),
    ("reqrep_us", "rr us", "{:,.0f}"),
    ("throughput", "recv/s", "{:,.0f}"),
    ("throughput_per_socket", "per sock", "{:,.1f}"),
)


def run_scale(opts: ScaleOptions, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Measure every contender at every N, each in a fresh worker; print one table per N.

    Returns 0 if every measurement ran, 1 if any failed, 2 on bad options.
    """
    from zmq_async._bench.runner import _call_worker, _probe

    out = out or sys.stdout
    err = err or sys.stderr
    sizes = opts.sizes or (QUICK_SIZES if opts.quick else SIZES)
    # pyzmq.poller (one thread, non-blocking with a Poller) is what the plain kit does already
    chosen = [v for v in variants(list(opts.layers)) if v.layer.driver in _DRIVERS]
    if not chosen:
        print(f"no contender matches {', '.join(opts.layers)}", file=err)
        return 2
    runnable: list[Variant] = []
    for variant in chosen:
        reason = _probe(variant, 30.0)
        if reason is None:
            runnable.append(variant)
        else:
            print(f"skipping {variant.label}: {reason}", file=err)
    results: list[dict[str, Any]] = []
    failed = False
    #: Contenders that failed at some N, and that N: a larger N is not tried (a peer that
    #: timed out at 1,000 sockets would only time out again, for opts.timeout each).
    gave_up: dict[str, int] = {}
    total, done = len(sizes) * len(runnable), 0
    for n in sizes:
        params = opts.params(n)
        for variant in runnable:
            done += 1
            err.write(f"[{done}/{total}] scale N={n:,} {variant.label} ... ")
            err.flush()
            row: dict[str, Any] = {"n": n, "label": variant.label, "role": variant.layer.role}
            if variant.label in gave_up:
                row["error"] = f"not run: failed at N={gave_up[variant.label]:,}"
                err.write(f"{row['error']}\n")
                results.append(row)
                continue
            request = {"layer": variant.layer.name, "loop": variant.loop, **asdict(params)}
            reply = _call_worker(request, opts.timeout, module=__name__)
            if reply.get("ok"):
                row["sample"] = reply["sample"]
                err.write(f"idle {reply['sample']['idle_cpu']:.4f} s/s\n")
            else:
                row["error"] = str(reply.get("error"))
                failed = True
                gave_up[variant.label] = n
                err.write(f"FAILED: {row['error']}\n")
            results.append(row)
    out.write(format_scale(results, sizes, opts.quick))
    if opts.json_path:
        with open(opts.json_path, "w") as f:
            json.dump({"sizes": list(sizes), "results": results}, f, indent=2)
            f.write("\n")
    return 1 if failed else 0


def format_scale(results: list[dict[str, Any]], sizes: tuple[int, ...], quick: bool) -> str:
    """One block per N: a line per contender with its figures (cost per socket included)."""
    mode = " --quick" if quick else ""
    lines = [
        f"zmq-async bench scale{mode}: N inproc PULL sockets, each with a receive pending",
        "idle: CPU s per s while nothing arrives; wake: one message to one of them, median;",
        "rr: round trip of a REQ/REP pair beside them, median; recv/s: messages/s they all",
        "receive from one PUSH connected to all; us/s/sock and per sock: those divided by N",
    ]
    label_width = max([len(r["label"]) for r in results] + [10])
    widths = [max(len(header), 8) for _, header, _ in _COLUMNS]
    for n in sizes:
        lines += ["", f"N = {n:,}"]
        header = "  ".join(h.rjust(w) for (_, h, _), w in zip(_COLUMNS, widths, strict=True))
        lines.append(f"{'':<{label_width}}  {header}")
        for row in (r for r in results if r["n"] == n):
            if "sample" not in row:
                lines.append(f"{row['label']:<{label_width}}  FAILED: {row['error']}"[:WIDTH])
                continue
            cells = [
                fmt.format(row["sample"][key]).rjust(w)
                for (key, _, fmt), w in zip(_COLUMNS, widths, strict=True)
            ]
            lines.append(f"{row['label']:<{label_width}}  {'  '.join(cells)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Worker side: ``python -m zmq_async._bench.scale REQUEST_JSON``; last line the reply."""
    from zmq_async._bench.layers import LAYERS

    args = sys.argv[1:] if argv is None else argv
    request = json.loads(args[0])
    try:
        layer = LAYERS[request.pop("layer")]
        loop = str(request.pop("loop", ""))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eventlet's deprecation notice, and the like
            sample = measure(layer.target, layer.driver, loop, ScaleParams(**request))
        reply: dict[str, Any] = {"ok": True, "sample": sample}
    except Exception as exc:
        traceback.print_exc()
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    code = 0 if reply["ok"] else 1
    os._exit(code)  # leftover framework threads and hubs must not delay the exit


if __name__ == "__main__":
    raise SystemExit(main())
