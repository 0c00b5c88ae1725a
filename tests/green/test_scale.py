"""Many idle green sockets cost (almost) nothing and do not slow down the ones that work.

The green half of ``tests/test_scale.py``: N = 100 vs N = 2,000 receivers (a greenlet each)
with a receive pending, then 2,000 pending ``poll()``s and a ``Poller`` over 2,000 sockets,
then an edge eaten by a shadow's poll beside them, found within the re-check's bound.
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Iterator
from typing import Any
from weakref import WeakKeyDictionary

import pytest
import zmq as plain_zmq

from zmq_async import _reactor
from zmq_async._bench.scale import ScaleParams, bind_pulls, climbed, measure

LARGE = 2000
SMALL = 100
#: As in tests/test_scale.py: generous for a loaded machine, yet several times below what
#: the per-socket re-check timers this replaced cost.
IDLE_BOUND = 0.03

pytestmark = pytest.mark.unpatched(
    "the re-check's cost and latency are the reactor's and the hub's watchers', which use "
    "only the original thread primitives"
)


@pytest.fixture(autouse=True)
def raised_limits() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(autouse=True)
def fresh_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-check of its own for each loop, timed by this test's RECHECK_* values.

    An earlier test of this process that stretched them (to 60 s, to take the re-check out
    of reach) can leave a generation's timer armed that long, and sockets joining that
    generation then climbed no further until it fired: the first measure waited out its
    10 s climb bound (14 s for this module's first test instead of 3).
    """
    monkeypatch.setattr(_reactor, "_recheckers", WeakKeyDictionary())


@pytest.fixture
def fast_climb(monkeypatch: pytest.MonkeyPatch) -> None:
    """New waiters climb the re-check's young generations in 0.3 s instead of 3."""
    monkeypatch.setattr(_reactor, "RECHECK_FIRST", _reactor.RECHECK_FIRST / 10)


@pytest.mark.timeout(120)
def test_idle_wake_up_and_req_rep_are_flat_in_the_number_of_waiting_sockets(
    green: Any, zmq: Any, fast_climb: None
) -> None:
    def params(n: int) -> ScaleParams:
        return ScaleParams(n, settle=0.4, span=0.8, wakes=60, round_trips=150, min_messages=0)

    small = measure(zmq.__name__, "green", green.name, params(SMALL))
    large = measure(zmq.__name__, "green", green.name, params(LARGE))
    assert large["idle_cpu"] < IDLE_BOUND, (small, large)
    assert large["idle_cpu"] < 4 * small["idle_cpu"] + 0.015, (small, large)  # not like N
    assert large["wake_us"] < 5 * small["wake_us"] + 2000, (small, large)
    assert large["reqrep_us"] < 5 * small["reqrep_us"] + 2000, (small, large)


def until_climbed(green: Any, n: int) -> None:
    """Wait (10 s at most) until ``n`` waiting sockets are in the re-check's oldest generation
    (on a loaded machine greenlets start and climb late)."""
    deadline = time.perf_counter() + 10
    while not climbed(n) and time.perf_counter() < deadline:
        green.sleep(0.05)
    assert climbed(n), "the waiting sockets never reached the re-check's oldest generation"


def _idle_cpu(green: Any, n: int) -> float:
    """CPU per second while ``n`` sockets wait: the lowest of three 0.3 s windows once they
    have climbed (see tests/test_scale.py)."""
    until_climbed(green, n)
    gc.collect()
    windows = []
    for _ in range(3):
        start_cpu, start = time.process_time(), time.perf_counter()
        green.sleep(0.3)
        windows.append((time.process_time() - start_cpu) / (time.perf_counter() - start))
    return min(windows)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["poll", "poller"])
def test_idle_pending_polls_and_a_poller_over_many_sockets_cost_little(
    green: Any, zmq: Any, ctx: Any, fast_climb: None, how: str
) -> None:
    pulls = bind_pulls(ctx, LARGE, f"inproc://green-scale-{id(ctx)}-")
    if how == "poll":
        waiting = [green.spawn(pull.poll) for pull in pulls]
    else:
        poller = zmq.Poller()
        for pull in pulls:
            poller.register(pull, zmq.POLLIN)
        waiting = [green.spawn(poller.poll)]
    try:
        idle = _idle_cpu(green, LARGE)
        assert not any(green.dead(greenlet) for greenlet in waiting)
    finally:
        for greenlet in waiting:
            green.kill(greenlet)
    assert idle < IDLE_BOUND


@pytest.mark.timeout(60)
def test_a_long_wait_whose_edge_a_shadow_ate_is_served_within_the_bound(
    green: Any, zmq: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside many idle sockets, after the re-check backed off as far as it goes."""
    for name in ("RECHECK_FIRST", "RECHECK_MAX", "RECHECK_PER_SOCKET"):
        monkeypatch.setattr(_reactor, name, getattr(_reactor, name) / 10)
    bound = max(_reactor.RECHECK_MAX, LARGE * _reactor.RECHECK_PER_SOCKET)  # as documented
    pulls = bind_pulls(ctx, LARGE, f"inproc://green-scale-{id(ctx)}-")
    got: list[float] = []

    def receive(pull: Any) -> None:
        pull.recv()
        got.append(time.perf_counter())

    receivers = [green.spawn(receive, pull) for pull in pulls]
    push = plain_zmq.Context.shadow(ctx.underlying).socket(plain_zmq.PUSH)
    try:
        push.connect(pulls[0].LAST_ENDPOINT.decode())
        until_climbed(green, LARGE)  # the re-check backed off as far as it goes
        push.send(b"eaten")
        shadow = plain_zmq.Socket.shadow(pulls[0].underlying)
        assert shadow.poll(1000) == plain_zmq.POLLIN  # consumes the edge behind our back
        sent = time.perf_counter()
        while not got and time.perf_counter() - sent < 10 * bound + 5:
            green.sleep(0.01)
        assert got, "stranded"
        assert got[0] - sent < bound + 1.0  # the bound, plus a loaded machine's lateness
    finally:
        push.close(linger=0)
        for greenlet in receivers:
            green.kill(greenlet)
