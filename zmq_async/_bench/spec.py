"""What a measurement is: the workloads, the parameters a worker gets, the sample it returns.

Shared by the parent (which builds :class:`Params`) and the workers (which run them), so both sides
agree on field names without importing anything heavier than the standard library.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from time import perf_counter, perf_counter_ns
from typing import Any, Literal, TypeVar

Metric = Literal["throughput", "latency", "requests"]
_T = TypeVar("_T")

#: One measurement's numbers, JSON-ready: ``count`` and ``seconds`` always; ``rate`` for throughput
#: and requests; ``median_us``, ``p99_us`` and friends for latency.
Sample = dict[str, float]

#: Requests/s in ``fanin`` come from this many DEALERs, each with exactly one request in flight.
FANIN_DEALERS = 8


@dataclass(frozen=True)
class Workload:
    """A named scenario: the socket pattern, message shape and what is reported."""

    name: str
    metric: Metric
    title: str
    size: int = 64
    frames: int = 1
    #: SNDHWM/RCVHWM to set on both sockets; ``None`` keeps libzmq's default (1000).
    hwm: int | None = 0
    #: Seconds of sending (or of round trips). With an unlimited HWM a sender that never yields
    #: queues everything before the receiver runs, and draining then takes several times longer,
    #: hence the shorter budget there.
    duration: float = 1.0
    #: Run on one CPU, libzmq's I/O thread included. A round trip is a chain of thread
    #: wake-ups; across CPUs their cost depends on where the scheduler puts the threads, which
    #: on a VM varies from process to process (55 vs 150 us seen), drowning the differences
    #: between layers. On one CPU the chain is repeatable and what remains is the layer's work.
    pin: bool = False
    #: ``tcp`` (loopback) or ``inproc``.
    transport: str = "tcp"
    #: The contender every ``vs limit`` ratio is taken against: plain pyzmq in one thread,
    #: non-blocking around a ``zmq.Poller`` (what an event loop could reach) for streams of
    #: messages, blocking for one round trip at a time.
    limit: str = "pyzmq.poller"


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "push_pull", "throughput", "64 B PUSH->PULL over tcp, SNDHWM=RCVHWM=0", duration=0.3
        ),
        Workload(
            "push_pull_inproc",
            "throughput",
            "64 B PUSH->PULL over inproc, SNDHWM=RCVHWM=0",
            duration=0.3,
            transport="inproc",
        ),
        Workload(
            "push_pull_hwm", "throughput", "64 B PUSH->PULL over tcp, default HWM 1000", hwm=None
        ),
        Workload(
            "multipart",
            "throughput",
            "3 x 64 B multipart PUSH->PULL over tcp, SNDHWM=RCVHWM=0",
            frames=3,
            duration=0.3,
        ),
        Workload(
            "reqrep",
            "latency",
            "64 B REQ/REP round trip over tcp",
            hwm=None,
            pin=True,
            limit="pyzmq",
        ),
        Workload(
            "fanin",
            "requests",
            f"{FANIN_DEALERS} DEALERs -> 1 ROUTER echo over tcp, 1 request in flight per DEALER",
            hwm=None,
        ),
    )
}


def for_workload(params: Params, by_metric: dict[Metric, _T]) -> _T:
    """A driver's function for ``params.workload``: a driver has one per metric (a PUSH/PULL
    stream, a REQ/REP round trip, a DEALER fan-in), whatever the transport, size or HWM."""
    return by_metric[WORKLOADS[params.workload].metric]


UNITS: dict[Metric, str] = {"throughput": "msgs/s", "latency": "us", "requests": "req/s"}


@dataclass(frozen=True)
class Params:
    """Everything a driver needs for one measurement (sent to the worker as JSON)."""

    workload: str
    size: int
    frames: int
    hwm: int | None
    #: Seconds of sending (or of round trips): the measurement stops after this or ``cap``.
    duration: float
    #: Upper bound on messages / round trips / requests, whichever the workload counts.
    cap: int
    #: Messages sent between two clock reads; also the send/recv chunk for blocking pyzmq with an
    #: HWM, so it must stay below 1000.
    batch: int = 500
    #: Untimed round trips first, so connection setup is not measured.
    warmup: int = 200
    dealers: int = FANIN_DEALERS
    #: The CPU the worker pins itself (and so libzmq's threads) to; ``None``: no pinning.
    cpu: int | None = None
    transport: str = "tcp"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Params:
        return cls(**known_fields(cls, data))


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of the dataclass ``cls`` (JSON may carry more)."""
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in known}


_inproc_names = itertools.count()


def bind(sock: Any, transport: str) -> str:
    """Bind ``sock`` to a fresh endpoint of ``transport`` (``tcp`` on loopback, ``inproc``).

    Returns the endpoint to connect to. Every driver binds through this.
    """
    if transport == "inproc":
        endpoint = f"inproc://bench-{next(_inproc_names)}"
        sock.bind(endpoint)
        return endpoint
    if transport != "tcp":
        raise ValueError(f"unknown transport {transport!r}")
    return f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"


def rate_sample(count: int, seconds: float) -> Sample:
    """A throughput / requests sample: ``count`` items in ``seconds``."""
    return {"count": count, "seconds": seconds, "rate": count / seconds if seconds > 0 else 0.0}


def latency_sample(samples_ns: list[int], seconds: float) -> Sample:
    """Summarise round-trip times (nanoseconds) as nearest-rank percentiles in microseconds."""
    if not samples_ns:
        raise ValueError("no round trips completed")
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pct(q: float) -> float:
        return ordered[max(0, math.ceil(q * n) - 1)] / 1000.0

    return {
        "count": n,
        "seconds": seconds,
        "min_us": ordered[0] / 1000.0,
        "median_us": pct(0.5),
        "p90_us": pct(0.9),
        "p99_us": pct(0.99),
        "max_us": ordered[-1] / 1000.0,
        "mean_us": sum(ordered) / n / 1000.0,
    }


async def timed_round_trips(round_trip: Callable[[], Awaitable[Any]], p: Params) -> Sample:
    """``p.warmup`` untimed round trips, then timed ones until ``p.duration`` or ``p.cap``.

    Every async driver's REQ/REP client is this loop around its own ``send``/``recv``.
    """
    for _ in range(p.warmup):
        await round_trip()
    times: list[int] = []
    start = perf_counter()
    deadline = start + p.duration
    while len(times) < p.cap and perf_counter() < deadline:
        t0 = perf_counter_ns()
        await round_trip()
        times.append(perf_counter_ns() - t0)
    return latency_sample(times, perf_counter() - start)


async def send_batches(
    send: Callable[[Any], Awaitable[Any]],
    send_end: Callable[[], Awaitable[Any]],
    payload: Any,
    p: Params,
    deadline: float,
) -> int:
    """A PUSH side: ``batch``-sized runs until ``deadline`` or ``p.cap``, then the end marker.

    Returns how many messages were sent. Every async driver's sender is this loop.
    """
    batch = min(p.batch, p.cap)
    sent = 0
    while True:
        for _ in range(batch):
            await send(payload)
        sent += batch
        if sent >= p.cap or perf_counter() >= deadline:
            break
    await send_end()
    return sent


async def receive_until_end(
    recv: Callable[[], Awaitable[Any]], multipart: bool
) -> tuple[int, float]:
    """A PULL side: count messages up to the end marker; returns (count, clock at the end)."""
    received = 0
    if multipart:
        while len(await recv()) != 1:
            received += 1
    else:
        while await recv():
            received += 1
    return received, perf_counter()
