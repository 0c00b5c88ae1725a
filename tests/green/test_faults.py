"""Faults a long-running green service meets, on gevent and eventlet (one process each).

In this process (plain, and monkeypatched in the patched run): a peer process SIGKILLed
mid-stream and restarted on its endpoint, and errors that must reach the blocked green call.
In subprocesses, each both plain and monkeypatched (programs in tests/faultprocs.py): killing
blocked greenlets before exit, fork with a greenlet blocked, SIGINT while the main greenlet
waits in recv.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0
COUNT = 200
PATCHING = ["plain", "patched"]


def idle_cpu(green: Any, seconds: float = 1.0) -> float:
    """CPU seconds per second this process used while the hub ran idle for ``seconds``."""
    cpu, wall = time.process_time(), time.perf_counter()
    green.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def wait_for(green: Any, condition: Any, timeout: float = WAIT) -> None:
    """Let the hub run until ``condition()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        green.sleep(0.01)


# -- peer restarts ---------------------------------------------------------------------------


@pytest.mark.slow
def test_dealer_router_pub_sub_push_pull_restart(
    green: Any, zmq: Any, ctx: Any, peer: Any, procs: Any
) -> None:
    """Three peers killed mid-stream at once; one idle window measures the three waits."""
    peers = peer("echo", "pub", "pull")
    pull = peers[2]
    dealer, sub, push = procs.sockets_for_peers(ctx, zmq, *peers)
    with green.Timeout(WAIT):
        dealer.send(b"hello")
        assert dealer.recv() == b"hello"
        for _ in range(5):
            assert sub.recv().startswith(b"1 ")
        for i in range(20):
            push.send(b"before %d" % i)
        pull.expect("before 9")
        for i in range(50):  # requests in flight when the echo dies
            dealer.send(b"before %d" % i)
    for process in peers:
        process.kill()
    replies: list[bytes] = []
    sent = [0]

    def receive() -> None:
        while (reply := dealer.recv()) != b"after":
            replies.append(reply)
        replies.append(reply)

    def first_of_run_2() -> bytes:
        while not (message := sub.recv()).startswith(b"2 "):
            pass  # what was still on the wire from the first run
        return bytes(message)

    def fill() -> None:
        while True:  # until the pipe to the dead PULL is full and a send waits
            push.send(b"during %d" % sent[0])
            sent[0] += 1

    receiver, subscriber, filler = (green.spawn(f) for f in (receive, first_of_run_2, fill))
    used = idle_cpu(green)
    assert used < procs.IDLE_CPU, f"{used:.4f} s of CPU per second waiting for dead peers"
    assert not green.dead(subscriber) and not green.dead(receiver)
    stuck_at = sent[0]
    assert stuck_at < 1000, "sends to a dead peer never blocked"
    procs.start_all(peers)
    dealer.send(b"after")
    green.get(receiver, WAIT)  # each pending operation is served by the new peer
    seq = int(green.get(subscriber, WAIT).split()[1])
    wait_for(green, lambda: sent[0] > stuck_at)
    green.kill(filler)
    assert all(reply.startswith(b"before") for reply in replies[:-1])
    with green.Timeout(WAIT):
        for i in range(COUNT):
            dealer.send(b"%d" % i)
        assert [dealer.recv() for _ in range(COUNT)] == [b"%d" % i for i in range(COUNT)]
        for expected in range(seq + 1, seq + 51):
            assert sub.recv() == b"2 %d" % expected
        for i in range(COUNT):
            push.send(b"after %d" % i)
    arrived = [line for line in pull.expect(f"after {COUNT - 1}") if line.startswith("after")]
    assert arrived == [f"after {i}" for i in range(COUNT - 1)]


@pytest.mark.slow
def test_req_relaxed_correlate_restart(green: Any, zmq: Any, ctx: Any, peer: Any) -> None:
    server = peer("sink")
    req = ctx.socket(zmq.REQ)
    req.req_relaxed = 1
    req.req_correlate = 1
    req.connect(server.endpoint)
    req.send(b"lost")
    server.expect("got")
    server.kill()
    with pytest.raises(green.Timeout), green.Timeout(0.3):
        req.recv()
    server.start("echo")
    with green.Timeout(WAIT):
        for i in range(20):
            req.send(b"again %d" % i)
            assert req.recv() == b"again %d" % i


# -- errors surface in the blocked call ------------------------------------------------------


def router_and_dealer(procs: Any, zmq: Any, ctx: Any, **options: int) -> tuple[Any, Any]:
    """A ROUTER_MANDATORY and a DEALER of identity b"d" it has heard from."""
    router, dealer = procs.router_mandatory_pair(ctx, zmq, **options)
    dealer.send(b"hi")
    assert router.recv_multipart() == [b"d", b"hi"]
    return router, dealer


def test_router_mandatory_to_a_vanished_identity(
    green: Any, zmq: Any, ctx: Any, procs: Any
) -> None:
    router, dealer = router_and_dealer(procs, zmq, ctx)
    dealer.close(linger=0)
    with green.Timeout(2.0), pytest.raises(zmq.ZMQError) as raised:
        while True:
            router.send_multipart([b"d", b"x"])
            green.sleep(0.01)
    assert raised.value.errno == zmq.EHOSTUNREACH


def test_router_mandatory_send_waiting_at_hwm_when_its_identity_vanishes(
    green: Any, zmq: Any, ctx: Any, procs: Any
) -> None:
    router, dealer = router_and_dealer(procs, zmq, ctx, SNDHWM=1)
    outcome: list[BaseException] = []

    def flood() -> None:
        try:
            while True:
                router.send_multipart([b"d", b"x" * 1000])
        except zmq.ZMQError as exc:
            outcome.append(exc)

    flooder = green.spawn(flood)
    wait_for(green, lambda: not router.get(zmq.EVENTS) & zmq.POLLOUT)
    green.sleep(0.05)
    assert not outcome
    dealer.close(linger=0)
    try:
        wait_for(green, lambda: outcome, 2.0)
    finally:
        green.kill(flooder)
    assert outcome[0].errno == zmq.EHOSTUNREACH, outcome


def test_a_send_blocked_behind_a_dead_consumer(green: Any, zmq: Any, ctx: Any, procs: Any) -> None:
    push, pull = procs.push_to_a_consumer(ctx, zmq)
    pull.context.destroy(linger=0)  # the consumer dies: its end of the connection closes
    push.sndtimeo = 200
    with green.Timeout(WAIT), pytest.raises(zmq.Again):
        while True:
            push.send(b"x")
    started = time.monotonic()
    with green.Timeout(WAIT), pytest.raises(zmq.Again):
        push.send(b"x")
    assert 0.15 < time.monotonic() - started < 2.0
    push.sndtimeo = -1
    sender = green.spawn(push.send, b"x")
    green.sleep(0.1)
    assert not green.dead(sender)
    push.close(linger=0)
    with pytest.raises(zmq.ZMQError) as raised:
        green.get(sender, WAIT)
    assert raised.value.errno == zmq.ENOTSOCK


def test_efsm_on_a_req_used_out_of_turn(green: Any, zmq: Any, ctx: Any) -> None:
    req = ctx.socket(zmq.REQ)
    with pytest.raises(zmq.ZMQError) as raised:
        req.recv()
    assert raised.value.errno == zmq.EFSM
    port = req.bind_to_random_port("tcp://127.0.0.1")
    first = green.spawn(req.send, b"first")  # no peer yet: it waits
    second = green.spawn(req.send, b"second")  # behind it: EFSM once the first goes
    green.sleep(0.05)
    assert not green.dead(first) and not green.dead(second)
    rep = ctx.socket(zmq.REP)
    rep.connect(f"tcp://127.0.0.1:{port}")
    green.get(first, WAIT)
    with pytest.raises(zmq.ZMQError) as raised:
        green.get(second, WAIT)
    assert raised.value.errno == zmq.EFSM
    with green.Timeout(WAIT):
        assert rep.recv() == b"first"


# -- whole programs: shutdown, fork, signals (plain and monkeypatched) ------------------------


@pytest.fixture
def programs(green: Any, procs: Any) -> Any:
    """tests/faultprocs.py, for the tests that run programs, each plain and monkeypatched:
    once, from the unpatched run (the monkeypatched run would repeat them as they are)."""
    if green.patched:
        pytest.skip("runs its own interpreters, plain and patched: in the unpatched run")
    return procs


@pytest.mark.parametrize("closing", ["close", "open"])
@pytest.mark.parametrize("patching", PATCHING)
def test_killing_blocked_greenlets_then_exit(
    green: Any, programs: Any, patching: str, closing: str
) -> None:
    env = {"PYTHONWARNINGS": "default,ignore::ResourceWarning"} if closing == "open" else {}
    code, out, err = programs.run_program("shutdown_green", green.name, patching, closing, **env)
    assert err == "", err
    assert out.splitlines() == ["next: after", "exit ok"], out
    assert code == 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["os.fork", "mp"])
@pytest.mark.parametrize("patching", PATCHING)
def test_fork_with_a_greenlet_blocked(green: Any, programs: Any, patching: str, how: str) -> None:
    code, out, err = programs.run_program("fork_green", green.name, patching, how)
    lines = out.splitlines()
    inherited = [line for line in lines if line.startswith("child: inherited socket")]
    assert len(inherited) == 2, out + err
    assert all("RuntimeError" in line and "fork()" in line for line in inherited), out
    idle = [line for line in lines if line.startswith("child: CPU while idle")]
    assert idle and float(idle[0].split()[-2]) < 0.1, lines  # not spinning on the parent's FD
    assert "child ok" in lines and "child exit 0" in lines, out + err
    assert "parent: FD still watched: True" in lines, out
    assert lines[-1] == "parent ok" and code == 0, out + err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("patching", PATCHING)
def test_sigint_in_a_green_recv(green: Any, programs: Any, patching: str) -> None:
    latency, lines, err, code = programs.interrupt_program("sigint_green", green.name, patching)
    assert lines[1].startswith("KeyboardInterrupt in recv"), [*lines, err]
    assert latency < 2.0
    assert "next: m1" in lines, lines  # the interrupted recv took nothing
    assert lines[-1] == "exit ok" and code == 0, [*lines, err]
    # gevent's hub reports the KeyboardInterrupt it passes to the main greenlet: no more.
    assert "Traceback" not in err, err
