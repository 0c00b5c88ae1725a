"""``python benchmarks/chaos.py --layer L --seconds S --seed N``: a service under churn.

A randomized, seeded soak of one layer. For S seconds it runs a service-shaped workload: reliable
pairs carrying counted messages (PUSH/PULL with many receivers, PUSH/PULL with RCVTIMEO,
DEALER/ROUTER echo, REQ/REP), checked for exactly-once delivery in order, while around them
receives, sends and polls are cancelled at random moments (deadlines, a scope or greenlet killed
by another task, the framework's own timeout), idle receives time out (RCVTIMEO and framework
timeouts), sockets are closed and side contexts destroyed under pending operations, a peer
unbinds or closes and comes back on the same port (tcp reconnect), a Poller polls a changing
set, and idle sockets come and go. Every second it samples RSS, open FDs, OS threads and the
reactors' queued waiters; a watchdog (faulthandler) dumps every stack and fails the run if the
reliable pairs make no progress for 10 s. At the end it prints pass/fail per invariant and the
slopes of RSS, FDs and threads, then exits 1 if anything failed.

Layers: asyncio, uvloop, tornado (future sockets), anyio-asyncio, anyio-trio (the async
scenario, written once with anyio), stream (ZMQStream callbacks), gevent, eventlet, and
gevent-patched, eventlet-patched (monkeypatched first). ``--layer all`` runs each in its own
process, one after the other. Not part of the test suite: see benchmarks/README.md, "Chaos".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LAYERS = (
    "asyncio",
    "uvloop",
    "tornado",
    "anyio-asyncio",
    "anyio-trio",
    "stream",
    "gevent",
    "gevent-patched",
    "eventlet",
    "eventlet-patched",
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", required=True, choices=(*LAYERS, "all"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the result as JSON to this path")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser.parse_args(argv)


ARGS = _parse(sys.argv[1:]) if __name__ == "__main__" else None

# Green programs patch before they import anything else: so does this one.
if ARGS is not None and ARGS.layer == "gevent-patched":
    from gevent import monkey

    monkey.patch_all()
elif ARGS is not None and ARGS.layer == "eventlet-patched":
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()

import _thread  # noqa: E402
import contextlib  # noqa: E402
import faulthandler  # noqa: E402
import gc  # noqa: E402
import random  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq  # noqa: E402

from zmq_async._bench.soak import slope  # noqa: E402
from zmq_async._reactor import live_reactors  # noqa: E402

TCP = "tcp://127.0.0.1"
#: No progress of the reliable pairs for this long fails the run, with every stack dumped.
WATCHDOG = 10.0
#: A pending operation must end within this after its socket closed or its context went.
CLOSE_BOUND = 5.0
#: A timeout may fire this late on a loaded machine.
LATE = 2.0
#: After the run, the reliable pairs have this long to deliver what is in flight.
DRAIN = 8.0
#: The async and green scenarios' parts, each a method run as a task (or greenlet) of its own.
COMPONENTS: tuple[tuple[Any, ...], ...] = (
    ("push_pull", "push_pull x8", 8, 0),  # 8 receivers on one socket
    ("push_pull", "push_pull rcvtimeo", 2, 5),
    ("dealer_router",),
    ("shared",),
    ("storm",),
    ("req_rep",),
    ("restarts",),
    ("close_churn",),
    ("side_contexts",),
    ("poller",),
    ("timeouts",),
    ("idle",),
)
#: Idle sockets open at any time (each bound: two FDs), some closed and replaced every tick.
IDLE = 100
#: Slopes are fitted after this fraction of the run (start-up, caches, queues filling).
WARMUP = 0.2
#: Growth over the fitted part beyond which a resource is not flat.
TOLERANCE = {"rss": 8 * 2**20, "fds": 8, "threads": 2}
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CLOCK = time.monotonic


# -- bookkeeping, shared by every scenario ----------------------------------------------------


class Pair:
    """One reliable stream of counted messages 0, 1, 2, ...: what was sent, what arrived.

    Memory stays bounded: every number below ``floor`` arrived, ``above`` holds the ones that
    arrived beyond it (a few, while several receivers share a socket).
    """

    def __init__(self, stats: Stats, name: str) -> None:
        self.stats = stats
        self.name = name
        self.sent = 0
        self.received = 0
        self.floor = 0
        self.above: set[int] = set()
        #: The sender has sent its last message.
        self.finished = False

    def got(self, seq: int, last: int) -> int:
        """Record ``seq`` received by a receiver whose previous one was ``last``; return seq."""
        self.received += 1
        self.stats.progress += 1
        if seq < self.floor or seq in self.above:
            self.stats.fail("exactly_once", f"{self.name}: {seq} received again")
        elif seq == self.floor:
            self.floor += 1
            while self.floor in self.above:
                self.above.remove(self.floor)
                self.floor += 1
        else:
            self.above.add(seq)
        if seq <= last:
            self.stats.fail("in_order", f"{self.name}: {seq} after {last}")
        return seq

    def arrived(self) -> int:
        return self.floor + len(self.above)

    def complete(self) -> bool:
        """The sender has finished and every message it sent arrived."""
        return self.finished and self.arrived() >= self.sent

    def check(self) -> None:
        if self.floor < self.sent:
            missing = self.sent - self.arrived()
            self.stats.fail(
                "exactly_once",
                f"{self.name}: {missing} of {self.sent} never arrived, first {self.floor}",
            )
        extra = [s for s in self.above if s >= self.sent]
        if extra:
            self.stats.fail("exactly_once", f"{self.name}: {extra[:5]} arrived, never sent")


class Stats:
    """Counters, failures per invariant, and the per-second samples."""

    INVARIANTS = (
        "exactly_once",
        "in_order",
        "multipart",
        "close_wakes",
        "timeouts",
        "poll_truth",
        "reconnect",
        "no_errors",
        "clean_end",
    )

    def __init__(self, layer: str, seconds: float, seed: int, quiet: bool) -> None:
        self.layer = layer
        self.seconds = seconds
        self.seed = seed
        self.quiet = quiet
        self.pairs: list[Pair] = []
        self.failures: dict[str, list[str]] = {name: [] for name in self.INVARIANTS}
        self.counts: dict[str, int] = {}
        self.samples: list[dict[str, float]] = []
        self.progress = 0
        self._seen_progress = -1
        self.start = _CLOCK()
        self.stopping = False
        #: FDs open once the framework runs, before the scenario's first context.
        self.baseline_fds = _fds()
        self._progress_at = _CLOCK()
        self.stalled = False
        self.max_gap = 0.0
        #: Prints the scenario's tasks or greenlets when the pairs stall (before the watchdog).
        self.dump_tasks: Callable[[], None] = lambda: None

    def pair(self, name: str) -> Pair:
        pair = Pair(self, name)
        self.pairs.append(pair)
        return pair

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def fail(self, invariant: str, message: str) -> None:
        failures = self.failures[invariant]
        if len(failures) < 20:
            failures.append(message)
            print(f"FAIL {invariant}: {message}", file=sys.stderr, flush=True)
        self.count(f"fail.{invariant}")

    def error(self, where: str, exc: BaseException) -> None:
        self.fail("no_errors", f"{where}: {exc!r}")

    def sample(self) -> None:
        """One sample of the process's resources; re-arm the watchdog if messages moved."""
        waiters = live = reactors = 0
        for reactor in live_reactors():
            reactors += 1
            for queue in (reactor.recvq, reactor.sendq, reactor.pollq):
                waiters += len(queue)
                live += sum(1 for w in queue if not w.completion.done())
        now = _CLOCK() - self.start
        if self.samples and self.samples[-1]["running"]:
            # The sampler sleeps 1 s: more between two samples means the loop (or the whole
            # process, on a loaded machine) stalled; a late timeout then is no fault of ours.
            self.max_gap = max(self.max_gap, now - self.samples[-1]["t"])
        row = {
            "t": now,
            "rss": _rss(),
            "fds": _fds(),
            "threads": _threads(),
            "reactors": reactors,
            "waiters": waiters,
            "live_waiters": live,
            "messages": sum(p.received for p in self.pairs),
            "running": not self.stopping,
        }
        self.samples.append(row)
        if self.progress != self._seen_progress:
            self._seen_progress = self.progress
            self._progress_at = _CLOCK()
            faulthandler.dump_traceback_later(WATCHDOG, exit=True)
        elif _CLOCK() - self._progress_at > WATCHDOG / 2 and not self.stalled:
            self.stalled = True
            self.dump_stall()
        if not self.quiet and len(self.samples) % 10 == 0:
            print(
                f"[{self.layer} {now:5.0f}s] msgs {row['messages']:,} rss "
                f"{row['rss'] / 2**20:.1f} MiB fds {row['fds']} threads {row['threads']} "
                f"reactors {reactors} waiters {live}/{waiters}",
                file=sys.stderr,
                flush=True,
            )

    def dump_stall(self) -> None:
        print(f"no progress for {WATCHDOG / 2:g}s; pairs (sent, seen):", file=sys.stderr)
        for pair in self.pairs:
            print(f"  {pair.name}: {pair.sent} {pair.arrived()}", file=sys.stderr)
        self.dump_tasks()
        sys.stderr.flush()

    def stop(self) -> None:
        """The run is over: senders stop; the receivers drain what is in flight."""
        self.stopping = True
        faulthandler.dump_traceback_later(WATCHDOG + DRAIN, exit=True)

    def drain_report(self) -> None:
        """After the drain: say which pairs still miss messages (finish() fails them)."""
        self.sample()
        for pair in self.pairs:
            if not pair.complete():
                print(
                    f"{pair.name}: {pair.arrived()} of {pair.sent} arrived after the drain",
                    file=sys.stderr,
                    flush=True,
                )

    def finish(self) -> dict[str, Any]:
        """Check the pairs and the clean end; return the result as a dict."""
        for pair in self.pairs:
            pair.check()
        gc.collect()
        leftover = [r for r in live_reactors() if not r.closed and (r.recvq or r.sendq or r.pollq)]
        if leftover:
            self.fail("clean_end", f"{len(leftover)} open reactors still have waiters")
        fds = _fds()
        if fds > self.baseline_fds + 2:
            kinds = sorted({_fd_kind(fd) for fd in os.listdir("/proc/self/fd")})
            self.fail(
                "clean_end",
                f"{fds} FDs open at the end, {self.baseline_fds} at the start ({kinds})",
            )
        slopes = {}
        running = [s for s in self.samples if s["running"]]
        fit = [s for s in running if s["t"] >= running[-1]["t"] * WARMUP] if running else []
        for key in ("rss", "fds", "threads", "reactors", "waiters"):
            rate = slope([(s["t"], s[key]) for s in fit])
            slopes[key] = rate
            span = fit[-1]["t"] - fit[0]["t"] if fit else 0
            if rate is not None and key in TOLERANCE and rate * span > TOLERANCE[key]:
                self.fail("clean_end", f"{key} grows: {rate:+.3g}/s over {span:.0f}s")
        return {
            "layer": self.layer,
            "seed": self.seed,
            "seconds": round(_CLOCK() - self.start, 1),
            "messages": sum(p.received for p in self.pairs),
            "pairs": {p.name: [p.sent, p.received] for p in self.pairs},
            "counts": dict(sorted(self.counts.items())),
            "invariants": {k: ("FAIL" if v else "PASS") for k, v in self.failures.items()},
            "failures": {k: v for k, v in self.failures.items() if v},
            "slopes": slopes,
            "max_sample_gap": round(self.max_gap, 2),
            "rss_mib": [round(s["rss"] / 2**20, 1) for s in (fit[0], fit[-1])] if fit else [],
            "fds": [int(s["fds"]) for s in (fit[0], fit[-1])] if fit else [],
        }


def _rss() -> float:
    with open("/proc/self/statm") as statm:
        return float(int(statm.read().split()[1]) * _PAGE)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fd_kind(fd: str) -> str:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/self/fd/{fd}").split(":")[0]
    return "?"


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


class ChangingPoller:
    """A Poller over a changing subset of ``sockets``; checks what its polls report."""

    def __init__(self, poller: Any, sockets: list[Any], stats: Stats, rng: random.Random) -> None:
        self.poller = poller
        self.sockets = sockets
        self.stats = stats
        self.rng = rng
        self.registered: set[int] = set()

    def regroup(self) -> int:
        """Register a new random subset (all once the run stops); return a poll timeout (ms)."""
        count = len(self.sockets)
        if self.stats.stopping:
            wanted = set(range(count))
        else:
            wanted = {i for i in range(count) if self.rng.random() < 0.6}
        for i in self.registered - wanted:
            self.poller.unregister(self.sockets[i])
        for i in wanted - self.registered:
            self.poller.register(self.sockets[i], zmq.POLLIN)
        self.registered = wanted
        return self.rng.randint(0, 50)

    def ready(self, ok: bool, events: Any, began: float, timeout: int) -> list[int]:
        """The sockets a poll begun at ``began`` found readable; ``ok``: it was not cancelled."""
        if not ok:
            return []
        if _CLOCK() - began > timeout / 1000 + LATE:
            self.stats.fail("timeouts", f"poll({timeout}) took {_CLOCK() - began:.1f}s")
        ready = []
        for sock, mask in events:
            i = self.sockets.index(sock)
            if i not in self.registered or not mask & zmq.POLLIN:
                self.stats.fail("poll_truth", f"poll reported {mask} on socket {i}")
            else:
                ready.append(i)
        return ready


def doomed_socket(ctx: Any, rng: random.Random) -> tuple[Any, tuple[str, ...]]:
    """A socket of ``ctx`` to close with operations pending, and the operations that wait."""
    kind = rng.choice((zmq.PULL, zmq.DEALER, zmq.PUSH))
    sock = ctx.socket(kind)
    # Now: a socket that has seen ETERM (its context's term() began) can no longer take
    # close(linger=0) in libzmq, and the term would wait for ever on its queued messages.
    sock.linger = 0
    if kind == zmq.PUSH:
        sock.sndhwm = 1
        sock.connect(f"{TCP}:9")  # nobody listens: the queue fills, a send waits
        return sock, ("send",)
    sock.bind_to_random_port(TCP)
    return sock, ("recv", "poll")


def churn_idle(ctx: Any, idle: list[Any], rng: random.Random, stats: Stats) -> None:
    """Close a few of the ``idle`` sockets at random and open as many: IDLE of them stay open."""
    rng.shuffle(idle)
    for _ in range(min(len(idle), rng.randint(0, 10))):
        idle.pop().close(linger=0)
        stats.count("idle.closed")
    while len(idle) < IDLE:
        sock = ctx.socket(rng.choice((zmq.PULL, zmq.SUB, zmq.DEALER)))
        sock.bind_to_random_port(TCP)
        idle.append(sock)


class Terming:
    """``context.term()`` in another OS thread (a cleanup thread) while operations wait on its
    sockets: they end with ETERM, their sockets are closed, then the term returns."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.sockets: list[Any] = []
        self.termed: list[float] = []

    def start(self, sockets: list[Any]) -> None:
        """Start the term; ``sockets`` are to close once their operations have ended."""
        self.sockets = sockets
        _start_os_thread(lambda: self.termed.append(self.context.term() or _CLOCK()))

    def finish(self, stats: Stats) -> bool:
        """Close the sockets; True once the term returned (or was too late: a failure)."""
        if self.sockets:
            for sock in self.sockets:
                sock.close(linger=0)
            self.sockets = []
            self.closed_at = _CLOCK()
        if self.termed:
            return True
        if _CLOCK() - self.closed_at > CLOSE_BOUND:
            stats.fail("close_wakes", "term() in another thread outlived its sockets' close")
            return True
        return False


def _start_os_thread(function: Callable[[], object]) -> None:
    """Run ``function()`` in a new OS thread, also when gevent or eventlet patched threads."""
    start = _thread.start_new_thread
    if "gevent.monkey" in sys.modules:
        start = sys.modules["gevent.monkey"].get_original("_thread", "start_new_thread")
    if "eventlet.patcher" in sys.modules:
        start = sys.modules["eventlet.patcher"].original("_thread").start_new_thread
    start(function, ())


def receive_op(sock: Any, rng: random.Random) -> tuple[Any, ...]:
    """One of the ways to receive a message, at random: ``(method, *args)``."""
    roll = rng.random()
    if roll < 0.4:
        return (sock.recv,)
    if roll < 0.6:
        return (sock.recv_multipart,)
    if roll < 0.8:
        return (sock.recv_string,)
    return (sock.recv, 0, False)  # a zmq.Frame


def check_shared(
    stats: Stats, pairs: dict[bytes, Pair], msg: list[bytes], last: dict[bytes, int]
) -> int:
    """Check one message of the shared PUSH: whole, from a known sender; record it."""
    if len(msg) != 3 or msg[0] not in pairs or msg[1] != msg[2]:
        stats.fail("multipart", f"a message arrived as {msg[:6]!r}")
        return last.get(msg[0], -1)
    return pairs[msg[0]].got(int(msg[1]), last[msg[0]])


def _outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or the exception it raised (a killed greenlet's own error, not the hub's)."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def number(msg: Any) -> int:
    """The count a message carries, however it was received."""
    if isinstance(msg, list):
        msg = msg[-1]
    if isinstance(msg, zmq.Frame):
        msg = msg.bytes
    return int(msg)


def _bind_port(sock: Any) -> int:
    return int(sock.bind_to_random_port(TCP))


# -- the async scenario: asyncio, uvloop, tornado, anyio on asyncio and trio ------------------


def run_async(stats: Stats, layer: str, rng: random.Random) -> None:
    """Run the async scenario on the layer's module and loop."""
    import anyio

    if layer in ("asyncio", "uvloop"):
        import zmq_async.asyncio as mod
    elif layer == "tornado":
        import zmq_async.tornado as mod
    else:
        import zmq_async.anyio as mod
    backend = "trio" if layer == "anyio-trio" else "asyncio"
    options = {"use_uvloop": True} if layer == "uvloop" else {}
    native = backend == "asyncio" and layer != "anyio-asyncio"
    anyio.run(AsyncScenario(stats, mod, rng, native).main, backend=backend, backend_options=options)


class AsyncScenario:
    """The workload, written once with anyio's primitives for every awaitable layer."""

    def __init__(self, stats: Stats, mod: Any, rng: random.Random, native: bool) -> None:
        import anyio

        self.anyio = anyio
        self.stats = stats
        self.mod = mod
        self.rng = rng
        #: The layer's futures are asyncio Futures: a closed socket's pending ones are cancelled.
        self.native = native
        self.ctx: Any = None
        self.tg: Any = None
        self.keep: list[Any] = []

    def closed_errors(self) -> tuple[type[BaseException], ...]:
        """What a pending operation may end with when its socket or context goes."""
        if self.native:
            import asyncio

            return (zmq.ZMQError, asyncio.CancelledError)
        return (zmq.ZMQError,)

    async def chaos(self, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``(True, fn(*args))``, or ``(False, None)`` if a random cancellation got it first."""
        anyio = self.anyio
        rng = self.rng
        roll = rng.random()
        if roll < 0.5 or self.stats.stopping:
            with anyio.move_on_after(1.0):
                return True, await fn(*args)
            return False, None
        if roll < 0.7:
            self.stats.count("cancel.deadline")
            with anyio.move_on_after(rng.uniform(0, 0.005)):
                return True, await fn(*args)
            return False, None
        if roll < 0.85 and self.native:
            import asyncio

            self.stats.count("cancel.wait_for")
            try:
                return True, await asyncio.wait_for(fn(*args), rng.uniform(0, 0.005))
            except asyncio.TimeoutError:
                return False, None
        self.stats.count("cancel.other_task")
        with anyio.CancelScope() as scope:
            self.tg.start_soon(self._cancel_after, scope, rng.uniform(0, 0.005))
            return True, await fn(*args)
        return False, None

    async def _cancel_after(self, scope: Any, delay: float) -> None:
        await self.anyio.sleep(delay)
        scope.cancel()

    def guard(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` in the task group; any exception fails ``no_errors``."""

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                self.stats.error(fn.__name__, exc)

        self.tg.start_soon(guarded)

    async def main(self) -> None:
        anyio = self.anyio
        stats = self.stats
        stats.baseline_fds = _fds()
        self.ctx = self.mod.Context()
        stats.dump_tasks = self.dump_tasks
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for name, *args in COMPONENTS:
                self.guard(getattr(self, name), *args)
            end = _CLOCK() + stats.seconds
            while _CLOCK() < end:
                stats.sample()
                await anyio.sleep(1)
            stats.stop()
            deadline = _CLOCK() + DRAIN
            while _CLOCK() < deadline and not all(p.complete() for p in stats.pairs):
                stats.sample()
                await anyio.sleep(0.5)
            stats.drain_report()
            self.dump_tasks()
            stats.drained = True  # type: ignore[attr-defined]
        self.ctx.destroy(linger=0)

    def dump_tasks(self) -> None:
        if self.native or self.anyio.get_current_task:  # anyio on asyncio: asyncio's tasks
            try:
                import asyncio

                for task in asyncio.all_tasks():
                    coro = task.get_coro()
                    frames = []
                    while coro is not None:
                        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                        if frame is not None:
                            frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                        coro = getattr(coro, "cr_await", None) or getattr(
                            coro, "gi_yieldfrom", None
                        )
                    print("  task: " + " > ".join(frames), file=sys.stderr)
            except RuntimeError:
                pass

    def socket(self, kind: int) -> Any:
        """A socket of the main context, kept open until the end (a dropped one would linger)."""
        sock = self.ctx.socket(kind)
        self.keep.append(sock)
        return sock

    def draining(self) -> bool:
        return getattr(self.stats, "drained", False)

    async def receiver(self, pair: Pair, sock: Any) -> None:
        last = -1
        while not (self.draining() or (self.stats.stopping and pair.complete())):
            try:
                ok, msg = await self.chaos(*receive_op(sock, self.rng))
            except zmq.Again:
                self.stats.count("rcvtimeo.again")
                continue
            if ok:
                last = pair.got(number(msg), last)

    async def push_pull(self, name: str, receivers: int, rcvtimeo: int) -> None:
        pair = self.stats.pair(name)
        pull = self.socket(zmq.PULL)
        if rcvtimeo:
            pull.rcvtimeo = rcvtimeo
        push = self.socket(zmq.PUSH)
        push.connect(f"{TCP}:{_bind_port(pull)}")
        for _ in range(receivers):
            self.guard(self.receiver, pair, pull)
        await self.sender(pair, push)

    async def sender(self, pair: Pair, sock: Any, multipart: bool = False) -> None:
        rng = self.rng
        while not self.stats.stopping:
            msg = b"%d" % pair.sent
            ok, _ = await self.chaos(
                sock.send_multipart if multipart else sock.send,
                *(([msg],) if multipart else (msg,)),
            )
            if ok:
                pair.sent += 1
                if pair.sent % 20 == 0:
                    await self.anyio.sleep(rng.uniform(0, 0.003))
            else:
                self.stats.count("send.cancelled")
        pair.finished = True

    async def dealer_router(self) -> None:
        ask = self.stats.pair("dealer->router")
        answer = self.stats.pair("router->dealer")
        router = self.socket(zmq.ROUTER)
        router.router_mandatory = 1
        dealer = self.socket(zmq.DEALER)
        dealer.connect(f"{TCP}:{_bind_port(router)}")

        async def echo() -> None:
            last = -1
            while not (self.draining() or (self.stats.stopping and ask.complete())):
                ok, msg = await self.chaos(router.recv_multipart)
                if not ok:
                    continue
                last = ask.got(int(msg[-1]), last)
                while not (await self.chaos(router.send_multipart, msg))[0]:
                    self.stats.count("send.cancelled")
                answer.sent += 1
            answer.finished = True

        self.guard(echo)
        self.guard(self.receiver, answer, dealer)
        await self.sender(ask, dealer, True)

    async def shared(self) -> None:
        """Two senders share a PUSH (small HWM, SNDTIMEO changing), three receivers its PULL:
        3-frame messages arrive whole, exactly once, in order per sender."""
        rng = self.rng
        pairs = {tag: self.stats.pair(f"shared {tag.decode()}") for tag in (b"a", b"b")}
        push = self.socket(zmq.PUSH)
        push.sndhwm = 10
        pull = self.socket(zmq.PULL)
        pull.rcvhwm = 10
        push.connect(f"{TCP}:{_bind_port(pull)}")

        async def send(tag: bytes, pair: Pair) -> None:
            while not self.stats.stopping:
                if rng.random() < 0.05:
                    push.sndtimeo = rng.choice((-1, 0, 1, 5))
                seq = b"%d" % pair.sent
                try:
                    ok, _ = await self.chaos(push.send_multipart, [tag, seq, seq])
                except zmq.Again:
                    self.stats.count("sndtimeo.again")
                    continue
                if ok:
                    pair.sent += 1
            pair.finished = True

        async def receive() -> None:
            last = {tag: -1 for tag in pairs}
            while not (self.draining() or all(p.complete() for p in pairs.values())):
                ok, msg = await self.chaos(pull.recv_multipart)
                if ok:
                    last[msg[0]] = check_shared(self.stats, pairs, msg, last)

        for _ in range(3):
            self.guard(receive)
        for tag, pair in pairs.items():
            self.guard(send, tag, pair)

    async def storm(self) -> None:
        """Cancellation storms: up to 300 receives wait on one PULL, then all are cancelled at
        once while counted messages arrive; each message goes to exactly one of them."""
        anyio = self.anyio
        rng = self.rng
        pair = self.stats.pair("storm")
        pull = self.socket(zmq.PULL)
        push = self.socket(zmq.PUSH)
        push.connect(f"{TCP}:{_bind_port(pull)}")
        self.guard(self.sender, pair, push)

        async def one() -> None:
            pair.got(number(await pull.recv()), -1)

        while not (self.draining() or (self.stats.stopping and pair.complete())):
            with anyio.move_on_after(1.0 if self.stats.stopping else rng.uniform(0, 0.05)):
                async with anyio.create_task_group() as tg:
                    for _ in range(rng.randint(1, 300)):
                        tg.start_soon(one)
            self.stats.count("storm")

    async def req_rep(self) -> None:
        pair = self.stats.pair("req/rep")
        rep = self.socket(zmq.REP)
        req = self.socket(zmq.REQ)
        req.connect(f"{TCP}:{_bind_port(rep)}")

        async def server() -> None:
            while not self.draining():
                ok, msg = await self.chaos(rep.recv)
                if ok:
                    while not (await self.chaos(rep.send, msg))[0]:
                        pass

        self.guard(server)
        last = -1
        while not self.stats.stopping:
            msg = b"%d" % pair.sent
            await req.send(msg)
            pair.sent += 1
            while True:
                ok, reply = await self.chaos(req.recv)
                if ok:
                    last = pair.got(int(reply), last)
                    break
                if self.draining():
                    return
        pair.finished = True

    async def restarts(self) -> None:
        """A PULL that unbinds or closes and comes back on the same port; the PUSH reconnects."""
        anyio = self.anyio
        rng = self.rng
        pull = self.socket(zmq.PULL)
        port = _bind_port(pull)
        addr = f"{TCP}:{port}"
        push = self.socket(zmq.PUSH)
        push.sndtimeo = 0
        push.connect(addr)
        received = [0]

        async def feed() -> None:
            while not self.stats.stopping:
                with contextlib.suppress(zmq.Again):
                    await push.send(b"x")
                await anyio.sleep(0.002)

        async def drain(sock: Any) -> None:
            try:
                while True:
                    await sock.recv()
                    received[0] += 1
            except self.closed_errors():
                pass

        self.guard(feed)
        while not self.stats.stopping:
            self.tg.start_soon(drain, pull)
            before = received[0]
            deadline = _CLOCK() + WATCHDOG
            while received[0] == before and _CLOCK() < deadline:
                await anyio.sleep(0.01)
            if received[0] == before:
                self.stats.fail("reconnect", f"nothing arrived on {addr} for {WATCHDOG}s")
            await anyio.sleep(rng.uniform(0.05, 0.5))
            if rng.random() < 0.5:
                self.stats.count("restart.unbind")
                pull.unbind(pull.last_endpoint)
                await anyio.sleep(rng.uniform(0, 0.2))
                await self.rebind(pull, addr)
            else:
                self.stats.count("restart.close")
                pull.close(linger=0)
                await anyio.sleep(rng.uniform(0, 0.2))
                pull = self.ctx.socket(zmq.PULL)
                await self.rebind(pull, addr)
        pull.close(linger=0)

    async def rebind(self, sock: Any, addr: str) -> None:
        """Bind ``sock`` to ``addr`` again: the port may stay busy a moment after an unbind."""
        deadline = _CLOCK() + 5
        while True:
            try:
                sock.bind(addr)
                return
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or _CLOCK() > deadline:
                    raise
                await self.anyio.sleep(0.01)

    async def pending(self, sock: Any, op: str, closed_at: list[float]) -> None:
        """One operation pending on a socket that is about to go; it must end soon after."""
        try:
            if op == "recv":
                await sock.recv()
            elif op == "poll":
                await sock.poll()
            elif op == "send":
                while True:
                    await sock.send(b"x")
        except self.closed_errors():
            pass
        if closed_at and _CLOCK() - closed_at[0] > CLOSE_BOUND:
            self.stats.fail("close_wakes", f"{op} ended {_CLOCK() - closed_at[0]:.1f}s late")

    def doomed(self, tg: Any, ctx: Any, count: int, closed_at: list[float]) -> list[Any]:
        """Sockets of ``ctx`` with operations pending in ``tg``; the caller closes them."""
        rng = self.rng
        socks = []
        for _ in range(count):
            sock, ops = doomed_socket(ctx, rng)
            socks.append(sock)
            for _ in range(rng.randint(1, 4)):
                tg.start_soon(self.pending, sock, rng.choice(ops), closed_at)
        return socks

    async def going(self, ctx: Any, count: int, go: Callable[[list[Any]], None], what: str) -> None:
        """Operations pending on ``count`` sockets of ``ctx``, then ``go(sockets)``: they end."""
        anyio = self.anyio
        closed_at: list[float] = []
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                socks = self.doomed(tg, ctx, count, closed_at)
                await anyio.sleep(self.rng.uniform(0, 0.02))
                closed_at.append(_CLOCK())
                if self.rng.random() < 0.3:  # from another thread: handed to the loop
                    self.stats.count(f"{what}.from_thread")
                    await anyio.to_thread.run_sync(go, socks)
                else:
                    go(socks)
                scope.deadline = anyio.current_time() + CLOSE_BOUND + LATE
        if scope.cancelled_caught:
            self.stats.fail("close_wakes", f"pending operations outlived {what}")
        self.stats.count(f"{what}.sockets", count)

    async def close_churn(self) -> None:
        def close(socks: list[Any]) -> None:
            for sock in socks:
                sock.close(linger=0)

        while not self.stats.stopping:
            await self.going(self.ctx, self.rng.randint(1, 3), close, "close")

    async def side_contexts(self) -> None:
        while not self.stats.stopping:
            side = self.mod.Context()
            count = self.rng.randint(1, 4)
            if self.rng.random() < 0.7:
                await self.going(side, count, lambda _, c=side: c.destroy(0), "destroy")
            else:
                terming = Terming(side)
                await self.going(side, count, terming.start, "term")
                while not terming.finish(self.stats):
                    await self.anyio.sleep(0.01)
            await self.anyio.sleep(self.rng.uniform(0, 0.05))

    async def poller(self) -> None:
        """A Poller over a changing set of PULLs fed at random: what it reports is true."""
        rng = self.rng
        pair = self.stats.pair("poller")
        pulls = [self.socket(zmq.PULL) for _ in range(4)]
        pushes = []
        for pull in pulls:
            push = self.socket(zmq.PUSH)
            push.connect(f"{TCP}:{_bind_port(pull)}")
            pushes.append(push)
        last = [-1] * len(pulls)

        async def feed() -> None:
            while not self.stats.stopping:
                await rng.choice(pushes).send(b"%d" % pair.sent)
                pair.sent += 1
                await self.anyio.sleep(rng.uniform(0, 0.003))
            pair.finished = True

        self.guard(feed)
        poller = ChangingPoller(self.mod.Poller(), pulls, self.stats, rng)
        while not (self.draining() or (self.stats.stopping and pair.complete())):
            timeout = poller.regroup()
            began = _CLOCK()
            ok, events = await self.chaos(poller.poller.poll, timeout)
            for i in poller.ready(ok, events, began, timeout):
                sock = pulls[i]
                while True:
                    try:
                        msg = await sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    last[i] = pair.got(int(msg), last[i])
                    self.stats.count("poll.ready")
        for sock in (*pulls, *pushes):
            sock.close(linger=0)

    async def timeouts(self) -> None:
        """Idle receives end on time: RCVTIMEO raises zmq.Again, a framework timeout cancels."""
        anyio = self.anyio
        rng = self.rng
        sock = self.socket(zmq.PULL)
        sock.bind_to_random_port(TCP)
        while not self.stats.stopping:
            ms = rng.randint(1, 30)
            began = _CLOCK()
            roll = rng.random()
            if roll < 0.4:
                sock.rcvtimeo = ms
                try:
                    await sock.recv()
                    self.stats.fail("timeouts", "an idle receive returned a message")
                except zmq.Again:
                    self.stats.count("timeout.rcvtimeo")
                sock.rcvtimeo = -1
            elif roll < 0.7:
                with anyio.move_on_after(ms / 1000):
                    await sock.recv()
                    self.stats.fail("timeouts", "an idle receive returned a message")
                self.stats.count("timeout.framework")
            else:
                if await sock.poll(ms):
                    self.stats.fail("timeouts", "an idle poll returned events")
                self.stats.count("timeout.poll")
            took = _CLOCK() - began
            if took < ms / 1000 - 0.002 or took > ms / 1000 + LATE:
                kind = "RCVTIMEO" if roll < 0.4 else "framework" if roll < 0.7 else "poll"
                self.stats.fail("timeouts", f"a {ms} ms {kind} timeout took {took * 1000:.0f} ms")
        sock.close(linger=0)

    async def idle(self) -> None:
        """Idle sockets come and go, some with a receive pending that their close ends."""
        rng = self.rng
        idle: list[Any] = []
        while not self.stats.stopping:
            churn_idle(self.ctx, idle, rng, self.stats)
            await self.anyio.sleep(rng.uniform(0.01, 0.2))
        for sock in idle:
            sock.close(linger=0)


# -- the green scenario: gevent and eventlet, plain and monkeypatched --------------------------


def run_green(stats: Stats, flavour: str, rng: random.Random) -> None:
    """Run the green scenario with ``flavour``'s module and hub."""
    GreenScenario(stats, flavour, rng).main()


class GreenScenario:
    """The async scenario's workload in blocking calls, for gevent and eventlet."""

    def __init__(self, stats: Stats, flavour: str, rng: random.Random) -> None:
        self.stats = stats
        self.rng = rng
        self.flavour = flavour
        if flavour == "gevent":
            import gevent

            import zmq_async.green as mod

            self.spawn: Callable[..., Any] = gevent.spawn
            self.sleep: Callable[[float], None] = gevent.sleep
            self.Timeout: Any = gevent.Timeout
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import eventlet

            import zmq_async.green.eventlet as mod

            self.spawn = eventlet.spawn
            self.sleep = eventlet.sleep
            self.Timeout = eventlet.Timeout
        from greenlet import GreenletExit

        self.exit = GreenletExit
        self.mod = mod
        self.ctx: Any = None
        self.keep: list[Any] = []
        self.threads: list[Any] = []
        self.drained = False

    def kill(self, thread: Any) -> tuple[bool, Any]:
        """Kill a greenlet; ``(True, its result)`` if it had finished first."""
        if self.flavour == "gevent":
            thread.kill(block=True)
            if thread.successful() and not isinstance(thread.value, self.exit):
                return True, thread.value
            if thread.exception is not None and not isinstance(thread.exception, self.exit):
                raise thread.exception
            return False, None
        thread.kill()
        try:
            return True, thread.wait()
        except self.exit:
            return False, None

    def chaos(self, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``(True, fn(*args))``, or ``(False, None)`` if a random cancellation got it first."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.5 or self.stats.stopping:
            with self.Timeout(1.0, False):
                return True, fn(*args)
            return False, None
        if roll < 0.75:
            self.stats.count("cancel.timeout")
            with self.Timeout(rng.uniform(0, 0.005), False):
                return True, fn(*args)
            return False, None
        self.stats.count("cancel.kill")
        child = self.spawn(_outcome, fn, *args)
        self.sleep(rng.uniform(0, 0.005))
        ok, outcome = self.kill(child)
        if ok and isinstance(outcome, BaseException):
            raise outcome
        return ok, outcome

    def guard(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in a greenlet; any exception fails ``no_errors``."""

        def guarded() -> None:
            try:
                fn(*args)
            except Exception as exc:
                self.stats.error(fn.__name__, exc)

        self.threads.append(self.spawn(guarded))

    def socket(self, kind: int) -> Any:
        """A socket of the main context, kept open until the end (a dropped one would linger)."""
        sock = self.ctx.socket(kind)
        self.keep.append(sock)
        return sock

    def main(self) -> None:
        stats = self.stats
        self.sleep(0)  # the hub is running
        # Made once per process and kept to its end, so before the baseline (3 FDs, not a
        # leak): the context our first one gives pyzmq's zero-copy collector (eventlet,
        # patched) and the hub's wake pipe, made by a first wait (eventlet).
        warm = self.mod.Context()
        sock = warm.socket(zmq.PULL)
        sock.RCVTIMEO = 1
        with contextlib.suppress(zmq.Again):
            sock.recv()
        sock.close(linger=0)
        warm.term()
        stats.baseline_fds = _fds()
        self.ctx = self.mod.Context()
        for name, *args in COMPONENTS:
            self.guard(getattr(self, name), *args)
        end = _CLOCK() + stats.seconds
        while _CLOCK() < end:
            stats.sample()
            self.sleep(1)
        stats.stop()
        deadline = _CLOCK() + DRAIN
        while _CLOCK() < deadline and not all(p.complete() for p in stats.pairs):
            stats.sample()
            self.sleep(0.5)
        stats.drain_report()
        self.drained = True
        for thread in self.threads:
            thread.wait() if self.flavour == "eventlet" else thread.join()
        self.ctx.destroy(linger=0)

    def receiver(self, pair: Pair, sock: Any) -> None:
        last = -1
        while not (self.drained or (self.stats.stopping and pair.complete())):
            try:
                ok, msg = self.chaos(*receive_op(sock, self.rng))
            except zmq.Again:
                self.stats.count("rcvtimeo.again")
                continue
            if ok:
                last = pair.got(number(msg), last)

    def sender(self, pair: Pair, sock: Any, multipart: bool = False) -> None:
        while not self.stats.stopping:
            msg = b"%d" % pair.sent
            ok, _ = self.chaos(
                sock.send_multipart if multipart else sock.send,
                *(([msg],) if multipart else (msg,)),
            )
            if ok:
                pair.sent += 1
                if pair.sent % 20 == 0:
                    self.sleep(self.rng.uniform(0, 0.003))
            else:
                self.stats.count("send.cancelled")
        pair.finished = True

    def push_pull(self, name: str, receivers: int, rcvtimeo: int) -> None:
        pair = self.stats.pair(name)
        pull = self.socket(zmq.PULL)
        if rcvtimeo:
            pull.rcvtimeo = rcvtimeo
        push = self.socket(zmq.PUSH)
        push.connect(f"{TCP}:{_bind_port(pull)}")
        for _ in range(receivers):
            self.guard(self.receiver, pair, pull)
        self.sender(pair, push)

    def dealer_router(self) -> None:
        ask = self.stats.pair("dealer->router")
        answer = self.stats.pair("router->dealer")
        router = self.socket(zmq.ROUTER)
        router.router_mandatory = 1
        dealer = self.socket(zmq.DEALER)
        dealer.connect(f"{TCP}:{_bind_port(router)}")

        def echo() -> None:
            last = -1
            while not (self.drained or (self.stats.stopping and ask.complete())):
                ok, msg = self.chaos(router.recv_multipart)
                if not ok:
                    continue
                last = ask.got(int(msg[-1]), last)
                while not self.chaos(router.send_multipart, msg)[0]:
                    self.stats.count("send.cancelled")
                answer.sent += 1
            answer.finished = True

        self.guard(echo)
        self.guard(self.receiver, answer, dealer)
        self.sender(ask, dealer, True)

    def shared(self) -> None:
        """Two senders share a PUSH (small HWM, SNDTIMEO changing), three receivers its PULL:
        3-frame messages arrive whole, exactly once, in order per sender."""
        rng = self.rng
        pairs = {tag: self.stats.pair(f"shared {tag.decode()}") for tag in (b"a", b"b")}
        push = self.socket(zmq.PUSH)
        push.sndhwm = 10
        pull = self.socket(zmq.PULL)
        pull.rcvhwm = 10
        push.connect(f"{TCP}:{_bind_port(pull)}")

        def send(tag: bytes, pair: Pair) -> None:
            while not self.stats.stopping:
                if rng.random() < 0.05:
                    push.sndtimeo = rng.choice((-1, 0, 1, 5))
                seq = b"%d" % pair.sent
                try:
                    ok, _ = self.chaos(push.send_multipart, [tag, seq, seq])
                except zmq.Again:
                    self.stats.count("sndtimeo.again")
                    continue
                if ok:
                    pair.sent += 1
            pair.finished = True

        def receive() -> None:
            last = {tag: -1 for tag in pairs}
            while not (self.drained or all(p.complete() for p in pairs.values())):
                ok, msg = self.chaos(pull.recv_multipart)
                if ok:
                    last[msg[0]] = check_shared(self.stats, pairs, msg, last)

        for _ in range(3):
            self.guard(receive)
        for tag, pair in pairs.items():
            self.guard(send, tag, pair)

    def storm(self) -> None:
        """Cancellation storms: up to 300 receives wait on one PULL, then all are killed at
        once while counted messages arrive; each message goes to exactly one of them."""
        rng = self.rng
        pair = self.stats.pair("storm")
        pull = self.socket(zmq.PULL)
        push = self.socket(zmq.PUSH)
        push.connect(f"{TCP}:{_bind_port(pull)}")
        self.guard(self.sender, pair, push)

        def one() -> None:
            pair.got(number(pull.recv()), -1)

        while not (self.drained or (self.stats.stopping and pair.complete())):
            threads = [self.spawn(one) for _ in range(rng.randint(1, 300))]
            self.sleep(1.0 if self.stats.stopping else rng.uniform(0, 0.05))
            for thread in threads:
                self.kill(thread)
            self.stats.count("storm")

    def req_rep(self) -> None:
        pair = self.stats.pair("req/rep")
        rep = self.socket(zmq.REP)
        req = self.socket(zmq.REQ)
        req.connect(f"{TCP}:{_bind_port(rep)}")

        def server() -> None:
            while not self.drained:
                ok, msg = self.chaos(rep.recv)
                if ok:
                    while not self.chaos(rep.send, msg)[0]:
                        pass

        self.guard(server)
        last = -1
        while not self.stats.stopping:
            msg = b"%d" % pair.sent
            req.send(msg)
            pair.sent += 1
            while True:
                ok, reply = self.chaos(req.recv)
                if ok:
                    last = pair.got(int(reply), last)
                    break
                if self.drained:
                    return
        pair.finished = True

    def restarts(self) -> None:
        """A PULL that unbinds or closes and comes back on the same port; the PUSH reconnects."""
        rng = self.rng
        pull = self.ctx.socket(zmq.PULL)
        addr = f"{TCP}:{_bind_port(pull)}"
        push = self.socket(zmq.PUSH)
        push.sndtimeo = 0
        push.connect(addr)
        received = [0]

        def feed() -> None:
            while not self.stats.stopping:
                with contextlib.suppress(zmq.Again):
                    push.send(b"x")
                self.sleep(0.002)

        def drain(sock: Any) -> None:
            try:
                while True:
                    sock.recv()
                    received[0] += 1
            except zmq.ZMQError:
                pass

        self.guard(feed)
        while not self.stats.stopping:
            self.guard(drain, pull)
            before = received[0]
            deadline = _CLOCK() + WATCHDOG
            while received[0] == before and _CLOCK() < deadline:
                self.sleep(0.01)
            if received[0] == before:
                self.stats.fail("reconnect", f"nothing arrived on {addr} for {WATCHDOG}s")
            self.sleep(rng.uniform(0.05, 0.5))
            if rng.random() < 0.5:
                self.stats.count("restart.unbind")
                pull.unbind(pull.last_endpoint)
                self.sleep(rng.uniform(0, 0.2))
            else:
                self.stats.count("restart.close")
                pull.close(linger=0)
                self.sleep(rng.uniform(0, 0.2))
                pull = self.ctx.socket(zmq.PULL)
            deadline = _CLOCK() + 5
            while True:
                try:
                    pull.bind(addr)
                    break
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EADDRINUSE or _CLOCK() > deadline:
                        raise
                    self.sleep(0.01)
        pull.close(linger=0)

    def pending(self, sock: Any, op: str, closed_at: list[float]) -> None:
        """One operation pending on a socket that is about to go; it must end soon after."""
        try:
            if op == "recv":
                sock.recv()
            elif op == "poll":
                sock.poll()
            elif op == "send":
                while True:
                    sock.send(b"x")
        except zmq.ZMQError:
            pass
        if closed_at and _CLOCK() - closed_at[0] > CLOSE_BOUND:
            self.stats.fail("close_wakes", f"{op} ended {_CLOCK() - closed_at[0]:.1f}s late")

    def going(self, ctx: Any, count: int, go: Callable[[list[Any]], None], what: str) -> None:
        """Operations pending on ``count`` sockets of ``ctx``, then ``go(sockets)``: they end."""
        rng = self.rng
        closed_at: list[float] = []
        socks = []
        threads = []
        for _ in range(count):
            sock, ops = doomed_socket(ctx, rng)
            socks.append(sock)
            for _ in range(rng.randint(1, 4)):
                threads.append(self.spawn(self.pending, sock, rng.choice(ops), closed_at))
        self.sleep(rng.uniform(0, 0.02))
        closed_at.append(_CLOCK())
        go(socks)
        with self.Timeout(CLOSE_BOUND + LATE, False):
            for thread in threads:
                thread.wait() if self.flavour == "eventlet" else thread.join()
            threads = []
        if threads:
            self.stats.fail("close_wakes", f"pending operations outlived {what}")
            for thread in threads:
                self.kill(thread)
        self.stats.count(f"{what}.sockets", count)

    def close_churn(self) -> None:
        def close(socks: list[Any]) -> None:
            for sock in socks:
                sock.close(linger=0)

        while not self.stats.stopping:
            self.going(self.ctx, self.rng.randint(1, 3), close, "close")

    def side_contexts(self) -> None:
        while not self.stats.stopping:
            side = self.mod.Context()
            count = self.rng.randint(1, 4)
            if self.rng.random() < 0.7:
                self.going(side, count, lambda _, c=side: c.destroy(0), "destroy")
            else:
                terming = Terming(side)
                self.going(side, count, terming.start, "term")
                while not terming.finish(self.stats):
                    self.sleep(0.01)
            self.sleep(self.rng.uniform(0, 0.05))

    def poller(self) -> None:
        """A Poller over a changing set of PULLs fed at random: what it reports is true."""
        rng = self.rng
        pair = self.stats.pair("poller")
        pulls = [self.socket(zmq.PULL) for _ in range(4)]
        pushes = []
        for pull in pulls:
            push = self.socket(zmq.PUSH)
            push.connect(f"{TCP}:{_bind_port(pull)}")
            pushes.append(push)
        last = [-1] * len(pulls)

        def feed() -> None:
            while not self.stats.stopping:
                rng.choice(pushes).send(b"%d" % pair.sent)
                pair.sent += 1
                self.sleep(rng.uniform(0, 0.003))
            pair.finished = True

        self.guard(feed)
        poller = ChangingPoller(self.mod.Poller(), pulls, self.stats, rng)
        while not (self.drained or (self.stats.stopping and pair.complete())):
            timeout = poller.regroup()
            began = _CLOCK()
            ok, events = self.chaos(poller.poller.poll, timeout)
            for i in poller.ready(ok, events, began, timeout):
                sock = pulls[i]
                while True:
                    try:
                        msg = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    last[i] = pair.got(int(msg), last[i])
                    self.stats.count("poll.ready")

    def timeouts(self) -> None:
        """Idle receives end on time: RCVTIMEO raises zmq.Again, a framework timeout ends them."""
        rng = self.rng
        sock = self.socket(zmq.PULL)
        sock.bind_to_random_port(TCP)
        while not self.stats.stopping:
            ms = rng.randint(1, 30)
            began = _CLOCK()
            roll = rng.random()
            if roll < 0.4:
                sock.rcvtimeo = ms
                try:
                    sock.recv()
                    self.stats.fail("timeouts", "an idle receive returned a message")
                except zmq.Again:
                    self.stats.count("timeout.rcvtimeo")
                sock.rcvtimeo = -1
            elif roll < 0.7:
                with self.Timeout(ms / 1000, False):
                    sock.recv()
                    self.stats.fail("timeouts", "an idle receive returned a message")
                self.stats.count("timeout.framework")
            else:
                if sock.poll(ms):
                    self.stats.fail("timeouts", "an idle poll returned events")
                self.stats.count("timeout.poll")
            took = _CLOCK() - began
            if took < ms / 1000 - 0.002 or took > ms / 1000 + LATE:
                kind = "RCVTIMEO" if roll < 0.4 else "framework" if roll < 0.7 else "poll"
                self.stats.fail("timeouts", f"a {ms} ms {kind} timeout took {took * 1000:.0f} ms")

    def idle(self) -> None:
        """Idle sockets come and go."""
        rng = self.rng
        idle: list[Any] = []
        while not self.stats.stopping:
            churn_idle(self.ctx, idle, rng, self.stats)
            self.sleep(rng.uniform(0.01, 0.2))
        for sock in idle:
            sock.close(linger=0)


# -- the stream scenario: ZMQStream callbacks on asyncio ---------------------------------------


def run_stream(stats: Stats, rng: random.Random) -> None:
    """Run the stream scenario on a fresh asyncio loop."""
    import asyncio

    asyncio.run(StreamScenario(stats, rng).main())


class StreamScenario:
    """Streams under churn: receiving paused and resumed at random, closes, restarts, threads.

    A stream has no receive to cancel; its chaos is ``on_recv(None)`` and ``on_recv(cb)``
    again at random moments (no message may be lost or repeated), ``flush()``, sends queued
    behind a full HWM, sends from another thread (handed to the loop, in order), and streams
    closed or their context destroyed with receives and sends pending.
    """

    def __init__(self, stats: Stats, rng: random.Random) -> None:
        import asyncio
        import logging

        from zmq_async.stream import ZMQStream

        self.asyncio = asyncio
        self.stream = ZMQStream
        self.stats = stats
        self.rng = rng
        self.keep: list[Any] = []
        self.ctx: Any = None
        stats_ = stats

        class Fail(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                stats_.fail("no_errors", f"logged: {record.getMessage()}")

        logging.getLogger("zmq_async.stream").addHandler(Fail(logging.ERROR))

    def make(self, kind: int, ctx: Any = None) -> Any:
        """A stream on a new socket (of the main context: kept until the end)."""
        sock = (ctx or self.ctx).socket(kind)
        stream = self.stream(sock)
        if ctx is None:
            self.keep.append(stream)
        return stream

    async def main(self) -> None:
        asyncio = self.asyncio
        stats = self.stats
        stats.baseline_fds = _fds()
        self.ctx = zmq.Context()
        tasks = [
            asyncio.ensure_future(self.guarded(fn, *args))
            for fn, *args in (
                (self.push_pull,),
                (self.dealer_router,),
                (self.req_rep,),
                (self.from_thread,),
                (self.restarts,),
                (self.closes, False),
                (self.closes, True),
                (self.idle,),
            )
        ]
        end = _CLOCK() + stats.seconds
        while _CLOCK() < end:
            stats.sample()
            await asyncio.sleep(1)
        stats.stop()
        deadline = _CLOCK() + DRAIN
        while _CLOCK() < deadline and not all(p.complete() for p in stats.pairs):
            stats.sample()
            await asyncio.sleep(0.5)
        stats.drain_report()
        await asyncio.wait(tasks, timeout=DRAIN)
        for stream in self.keep:
            stream.close(linger=0)
        self.ctx.destroy(linger=0)

    async def guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception as exc:
            self.stats.error(fn.__name__, exc)

    def counted(self, pair: Pair, stream: Any) -> Callable[[list[bytes]], None]:
        """An on_recv callback recording the counted messages of ``pair``."""
        last = [-1]

        def on_recv(msg: list[bytes]) -> None:
            if stream.closed():
                self.stats.fail("close_wakes", f"{pair.name}: a message after the close")
            last[0] = pair.got(int(msg[-1]), last[0])

        return on_recv

    async def pausing(self, stream: Any, callback: Callable[..., Any]) -> None:
        """Pause and resume ``stream``'s receiving at random moments while the run lasts."""
        rng = self.rng
        stream.on_recv(callback)
        while not self.stats.stopping:
            await self.asyncio.sleep(rng.uniform(0, 0.02))
            roll = rng.random()
            if roll < 0.4:
                stream.on_recv(None)
                self.stats.count("stream.paused")
                await self.asyncio.sleep(rng.uniform(0, 0.01))
                stream.on_recv(callback)
            elif roll < 0.6:
                stream.flush()
                self.stats.count("stream.flush")
        stream.on_recv(callback)

    async def send_counted(self, pair: Pair, stream: Any, multipart: bool = False) -> None:
        rng = self.rng
        while not self.stats.stopping:
            for _ in range(rng.randint(1, 40)):
                msg = b"%d" % pair.sent
                stream.send_multipart([msg]) if multipart else stream.send(msg)
                pair.sent += 1
            while stream.sending() and stream.send_queue_size > 1000:
                await self.asyncio.sleep(0.001)
            await self.asyncio.sleep(rng.uniform(0, 0.003))
        pair.finished = True

    async def push_pull(self) -> None:
        pair = self.stats.pair("push_pull")
        pull = self.make(zmq.PULL)
        push = self.make(zmq.PUSH)
        push.connect(f"{TCP}:{_bind_port(pull.socket)}")
        self.asyncio.ensure_future(self.pausing(pull, self.counted(pair, pull)))
        await self.send_counted(pair, push)

    async def dealer_router(self) -> None:
        ask = self.stats.pair("dealer->router")
        answer = self.stats.pair("router->dealer")
        router = self.make(zmq.ROUTER)
        dealer = self.make(zmq.DEALER)
        dealer.connect(f"{TCP}:{_bind_port(router.socket)}")
        asked = self.counted(ask, router)

        def echo(msg: list[bytes]) -> None:
            asked(msg)
            router.send_multipart(msg)
            answer.sent += 1

        self.asyncio.ensure_future(self.pausing(router, echo))
        self.asyncio.ensure_future(self.pausing(dealer, self.counted(answer, dealer)))
        await self.send_counted(ask, dealer, True)
        while not ask.complete() and not self.stats.stalled:
            await self.asyncio.sleep(0.05)
        answer.finished = True

    async def req_rep(self) -> None:
        pair = self.stats.pair("req/rep")
        rep = self.make(zmq.REP)
        req = self.make(zmq.REQ)
        req.connect(f"{TCP}:{_bind_port(rep.socket)}")
        counted = self.counted(pair, req)

        def reply(msg: list[bytes]) -> None:
            counted(msg)
            if not self.stats.stopping:
                req.send(b"%d" % pair.sent)
                pair.sent += 1
            else:
                pair.finished = True

        self.asyncio.ensure_future(self.pausing(rep, rep.send_multipart))
        self.asyncio.ensure_future(self.pausing(req, reply))
        req.send(b"0")
        pair.sent = 1

    async def from_thread(self) -> None:
        """Counted sends from another OS thread: handed to the loop, in order."""
        import threading

        pair = self.stats.pair("thread->stream")
        pull = self.make(zmq.PULL)
        push = self.make(zmq.PUSH)
        push.connect(f"{TCP}:{_bind_port(pull.socket)}")
        pull.on_recv(self.counted(pair, pull))
        stop = threading.Event()

        def sender() -> None:
            while not self.stats.stopping:
                for _ in range(20):
                    push.send(b"%d" % pair.sent)
                    pair.sent += 1
                stop.wait(0.002)
            pair.finished = True

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        while thread.is_alive():
            await self.asyncio.sleep(0.1)

    async def restarts(self) -> None:
        """A PULL stream that unbinds or closes and comes back on the same port."""
        asyncio = self.asyncio
        rng = self.rng
        received = [0]

        def on_recv(msg: list[bytes]) -> None:
            received[0] += 1

        pull = self.make(zmq.PULL, self.ctx)
        pull.on_recv(on_recv)
        addr = f"{TCP}:{_bind_port(pull.socket)}"
        push = self.make(zmq.PUSH)
        push.connect(addr)

        async def feed() -> None:
            while not self.stats.stopping:
                if push.send_queue_size < 100:
                    push.send(b"x")
                await asyncio.sleep(0.002)

        self.asyncio.ensure_future(self.guarded(feed))
        while not self.stats.stopping:
            before = received[0]
            deadline = _CLOCK() + WATCHDOG
            while received[0] == before and _CLOCK() < deadline:
                await asyncio.sleep(0.01)
            if received[0] == before:
                self.stats.fail("reconnect", f"nothing arrived on {addr} for {WATCHDOG}s")
            await asyncio.sleep(rng.uniform(0.05, 0.5))
            if rng.random() < 0.5:
                self.stats.count("restart.unbind")
                pull.socket.unbind(pull.socket.last_endpoint)
                await asyncio.sleep(rng.uniform(0, 0.2))
            else:
                self.stats.count("restart.close")
                pull.close(linger=0)
                await asyncio.sleep(rng.uniform(0, 0.2))
                pull = self.make(zmq.PULL, self.ctx)
                pull.on_recv(on_recv)
            deadline = _CLOCK() + 5
            while True:
                try:
                    pull.socket.bind(addr)
                    break
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EADDRINUSE or _CLOCK() > deadline:
                        raise
                    await asyncio.sleep(0.01)
        pull.close(linger=0)

    async def closes(self, destroy: bool) -> None:
        """Streams receiving and with sends queued, closed (here or from a thread) or their
        context destroyed: the close callback runs, no callback after it, the stream is closed.
        """
        asyncio = self.asyncio
        rng = self.rng
        # A stream whose socket its context's destroy() closed warns as zmq.eventloop's does.
        warnings.filterwarnings("ignore", "Unregistering FD", UserWarning)
        while not self.stats.stopping:
            ctx = zmq.Context() if destroy else self.ctx
            streams = [self.doomed(ctx) for _ in range(rng.randint(1, 4))]
            closed = [0]
            for stream in streams:
                stream.set_close_callback(lambda c=closed: c.__setitem__(0, c[0] + 1))
            await asyncio.sleep(rng.uniform(0, 0.02))
            began = _CLOCK()
            if destroy:
                for stream in streams:
                    if rng.random() < 0.5:
                        stream.close(linger=0)
                ctx.destroy(linger=0)
            elif rng.random() < 0.3:
                await self.in_thread(lambda s=streams: [x.close(linger=0) for x in s])
            else:
                for stream in streams:
                    stream.close(linger=0)
            while _CLOCK() - began < CLOSE_BOUND and not all(s.closed() for s in streams):
                await asyncio.sleep(0.01)
            if not all(s.closed() for s in streams):
                self.stats.fail("close_wakes", "a stream not closed after its context went")
            elif not destroy and closed[0] != len(streams):
                await asyncio.sleep(0.1)
                if closed[0] != len(streams):
                    n = len(streams)
                    self.stats.fail("close_wakes", f"{closed[0]} close callbacks, not {n}")
            for stream in streams:  # after a destroy: close what the context left
                stream.close(linger=0)
            self.stats.count("destroy.streams" if destroy else "close.streams", len(streams))

    def doomed(self, ctx: Any) -> Any:
        """A stream receiving, or with sends queued that cannot go out."""
        kind = self.rng.choice((zmq.PULL, zmq.DEALER, zmq.PUSH))
        stream = self.make(kind, ctx)
        if kind == zmq.PUSH:
            stream.socket.sndhwm = 1
            stream.connect(f"{TCP}:9")  # nobody listens: sends stay queued
            for _ in range(self.rng.randint(1, 5)):
                stream.send(b"x")
        else:
            stream.socket.bind_to_random_port(TCP)

            def late(msg: list[bytes]) -> None:
                if stream.closed():
                    self.stats.fail("close_wakes", "a receive callback after the close")

            stream.on_recv(late)
        return stream

    async def in_thread(self, fn: Callable[[], object]) -> None:
        """Call ``fn()`` in another OS thread while the loop runs on."""
        import threading

        thread = threading.Thread(target=fn)
        thread.start()
        while thread.is_alive():
            await self.asyncio.sleep(0.001)

    async def idle(self) -> None:
        idle: list[Any] = []
        while not self.stats.stopping:
            churn_idle(self.ctx, idle, self.rng, self.stats)
            await self.asyncio.sleep(self.rng.uniform(0.01, 0.2))
        for sock in idle:
            sock.close(linger=0)


# -- main --------------------------------------------------------------------------------------


def run_layer(layer: str, seconds: float, seed: int, quiet: bool) -> dict[str, Any]:
    """Run one layer's scenario in this process; return its result."""
    warnings.simplefilter("default")
    faulthandler.enable()
    stats = Stats(layer, seconds, seed, quiet)
    rng = random.Random(seed)
    faulthandler.dump_traceback_later(WATCHDOG * 3, exit=True)  # start-up
    if layer in ("asyncio", "uvloop", "tornado", "anyio-asyncio", "anyio-trio"):
        run_async(stats, layer, rng)
    elif layer == "stream":
        run_stream(stats, rng)
    else:
        run_green(stats, layer.split("-")[0], rng)
    faulthandler.cancel_dump_traceback_later()
    return stats.finish()


def report(result: dict[str, Any]) -> str:
    slopes = result["slopes"]

    def fmt(key: str, scale: float, unit: str) -> str:
        value = slopes.get(key)
        return "n/a" if value is None else f"{value / scale:+.3f} {unit}"

    lines = [
        f"chaos {result['layer']} seed {result['seed']}: {result['seconds']} s, "
        f"{result['messages']:,} counted messages",
        "  pairs (sent, received): "
        + ", ".join(f"{k} {s:,}/{r:,}" for k, (s, r) in result["pairs"].items()),
        "  invariants: " + ", ".join(f"{k} {v}" for k, v in result["invariants"].items()),
        f"  slopes: RSS {fmt('rss', 1024, 'KiB/s')} (MiB {result['rss_mib']}), "
        f"FDs {fmt('fds', 1, '/s')} ({result['fds']}), threads {fmt('threads', 1, '/s')}, "
        f"waiters {fmt('waiters', 1, '/s')}",
        f"  longest gap between two 1-second samples: {result['max_sample_gap']} s",
        "  counts: " + ", ".join(f"{k} {v:,}" for k, v in result["counts"].items()),
    ]
    for invariant, failures in result["failures"].items():
        lines.extend(f"  FAIL {invariant}: {f}" for f in failures)
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.layer == "all":
        status = 0
        for layer in LAYERS:
            cmd = [sys.executable, __file__, "--layer", layer, "--seconds", str(args.seconds)]
            cmd += ["--seed", str(args.seed)] + (["--quiet"] if args.quiet else [])
            status |= subprocess.call(cmd)
        return status
    result = run_layer(args.layer, args.seconds, args.seed, args.quiet)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    assert ARGS is not None
    sys.exit(main(ARGS))
