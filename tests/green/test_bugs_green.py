"""Fault scenarios from real bug reports against gevent and eventlet with zmq (zmq.green,
gevent-zeromq, eventlet.green.zmq, zerorpc, locust), reduced to what the reported program did,
run against zmq_async in both flavours, plain and monkeypatched. Each test names its report;
the whole list, with what each report became, is in the project's bgreen-reports.md."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import pytest

from zmq_async._poller import PollWait


def _connected(ctx: Any, zmq: Any, server: int, client: int) -> tuple[Any, Any]:
    """A socket of type ``server`` bound on loopback tcp and one of type ``client``
    connected to it: (server, client)."""
    bound = ctx.socket(server)
    port = bound.bind_to_random_port("tcp://127.0.0.1")
    connected = ctx.socket(client)
    connected.connect(f"tcp://127.0.0.1:{port}")
    return bound, connected


def _ticker(green: Any, ticks: list[float]) -> Any:
    """A greenlet that notes the time every 10 ms: a heartbeat that shows a frozen hub."""

    def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            green.sleep(0.01)

    return green.spawn(tick)


def _ticks_between(ticks: list[float], start: float, end: float) -> int:
    return sum(1 for t in ticks if start <= t <= end)


# -- term and destroy ----------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["destroy", "close-then-term"])
def test_a_lingering_term_blocks_only_its_greenlet(green, zmq, procs, how):
    """pyzmq#809 (zmq.green.Context.destroy freezes all greenthreads): a REQ with an unsent
    request to a peer that never comes, closed with a LINGER, then its context destroyed.
    libzmq's term waits out the linger; the other greenlets must run meanwhile."""
    ticks: list[float] = []
    ticker = _ticker(green, ticks)
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.linger = 600
    req.connect(procs.free_endpoint())
    req.send_json({}, zmq.NOBLOCK)  # queued for the peer: the linger keeps it
    start = time.monotonic()
    if how == "destroy":
        green.get(green.spawn(context.destroy), timeout=10)
    else:
        req.close()
        green.get(green.spawn(context.term), timeout=10)
    end = time.monotonic()
    green.kill(ticker)
    assert context.closed
    assert end - start >= 0.4  # the linger was waited out...
    # ...while the heartbeat went on (about 60 ticks; none if the hub was blocked)
    assert _ticks_between(ticks, start + 0.1, end - 0.1) >= 5, (end - start, len(ticks))


def test_a_term_after_closes_without_linger_stays_in_the_greenlet(green, zmq, procs):
    """The other side of pyzmq#809: sockets closed with linger 0 leave libzmq nothing to
    wait for, and ``destroy(linger=0)`` terminates at once, in the calling greenlet."""
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.connect(procs.free_endpoint())
    req.send(b"x", zmq.NOBLOCK)
    others: list[int] = []
    other = green.spawn(others.append, 1)  # runs only if destroy() lets the hub run
    context.destroy(linger=0)
    assert context.closed
    assert others == []  # no worker thread, no switch
    green.get(other)


#: A program (args: where, endpoint) whose contexts each leave a
#: request unsent (LINGER 300 ms) and are destroyed: ``atexit``, from an atexit handler, as
#: programs tidy up; ``thread``, one in the main thread, then one in another OS thread (a
#: plain one, also when patched), each thread with its own hub.
_LINGERING_DESTROY = r"""
import atexit
where, endpoint = args
if flavour == "gevent":
    from gevent.monkey import get_original
    start_thread = get_original("_thread", "start_new_thread")
    allocate_lock = get_original("_thread", "allocate_lock")
else:
    from eventlet.patcher import original
    start_thread = original("_thread").start_new_thread
    allocate_lock = original("_thread").allocate_lock

def lingering_destroy():
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.linger = 300
    req.connect(endpoint)
    req.send(b"unsent")
    context.destroy()
    print("destroyed", context.closed, flush=True)

if where == "atexit":
    atexit.register(lingering_destroy)
else:
    lingering_destroy()
    finished = allocate_lock()
    finished.acquire()
    start_thread(lambda: (lingering_destroy(), finished.release()), ())
    if not finished.acquire(timeout=20):  # blocks the main thread: only the other one runs
        print("the other thread's destroy hung", flush=True)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["atexit", "thread"])
def test_a_lingering_destroy_at_exit_or_in_another_thread(green, procs, where):
    """pyzmq#809's destroy where programs also put it. In an atexit handler no worker
    thread may be had (gevent's threadpool, first imported there, fails with "can't register
    atexit after shutdown"). In a second OS thread, eventlet's tpool answers through the hub
    of the thread that used it first: the second thread's destroy waited for ever. Both must
    terminate, waiting out the linger."""
    done = green.run(_LINGERING_DESTROY, where, procs.free_endpoint())
    runs = 1 if where == "atexit" else 2
    assert done.stdout == "destroyed True\n" * runs, done.stdout + done.stderr
    assert done.returncode == 0 and "Error" not in done.stderr, done.stderr


@pytest.mark.timeout(20)
def test_a_socket_closed_after_libzmq_reported_eterm_still_closes(green, zmq):
    """The common shutdown of pyzmq#809's programs: term() from one greenlet, the socket's
    own greenlet sees ETERM from libzmq, then closes it with its default LINGER. (Reading
    the LINGER there raises ETERM too: the close must not.)"""
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    terminator = green.spawn(context.term)
    deadline = time.monotonic() + 10
    while True:
        try:
            pull.recv(zmq.NOBLOCK)
        except zmq.Again:
            assert time.monotonic() < deadline, "libzmq never reported ETERM"
            green.sleep(0.01)
        except zmq.ContextTerminated:
            break
    pull.close()
    green.get(terminator, timeout=10)
    assert pull.closed and context.closed


# -- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["recv", "poll"])
def test_an_outer_timeout_is_not_swallowed_by_a_wait_with_its_own(green, zmq, pair, wait):
    """pyzmq#241/#242 (green _wait_read consumed external gevent.Timeouts): a recv or poll
    inside ``Timeout(...)`` gets that Timeout, even with a longer RCVTIMEO (or poll
    timeout) of its own; and its own timeout, shorter, raises its own error, not the
    outer one."""
    push, pull = pair
    pull.rcvtimeo = 5000
    call = pull.recv if wait == "recv" else lambda: pull.poll(5000)
    outer = green.Timeout(0.05)
    start = time.monotonic()
    with pytest.raises(green.Timeout) as info, outer:
        call()
    assert info.value is outer
    assert time.monotonic() - start < 2.0
    pull.rcvtimeo = 50
    with green.Timeout(5):  # the outer one, longer, stays out of it
        if wait == "recv":
            with pytest.raises(zmq.Again):
                pull.recv()
        else:
            assert pull.poll(50) == 0
    pull.rcvtimeo = 5000  # (tcp on a loaded machine: the message may take over 50 ms)
    push.send(b"kept")
    assert pull.recv() == b"kept"


@pytest.mark.timeout(30)
def test_timed_out_calls_leave_nothing_behind(green, zmq, ctx, procs):
    """zerorpc#236 (a client calling an unreachable server hung after about 1000 timeouts):
    a DEALER connected to no one, receives timing out 200 times (RCVTIMEO and a Timeout in
    turn: a waiter or an FD left behind by each would show), then the server comes, and the
    socket works, with no waiter left queued and no FD more open."""
    endpoint = procs.free_endpoint()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(endpoint)
    dealer.rcvtimeo = 1
    dealer.poll(0)  # the socket's own FD is made
    fds = len(os.listdir("/proc/self/fd"))
    for n in range(200):
        if n % 2:
            with pytest.raises(zmq.Again):
                dealer.recv()
        else:
            with pytest.raises(green.Timeout), green.Timeout(0.001):
                dealer.recv()
    reactor = dealer._reactor
    assert not reactor.recvq and not reactor.sendq
    assert len(os.listdir("/proc/self/fd")) <= fds + 5  # (libzmq's own may come and go)
    router = ctx.socket(zmq.ROUTER)
    router.bind(endpoint)
    dealer.rcvtimeo = 5000
    dealer.send(b"ping")
    identity, request = router.recv_multipart()
    router.send_multipart([identity, request + b"-pong"])
    assert dealer.recv() == b"ping-pong"


# -- sends -----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_greenlets_retrying_noblock_sends_lose_nothing(green, zmq, ctx):
    """pyzmq#374 (messages lost with zmq.green): many senders that retry
    ``send(NOBLOCK)`` on EAGAIN into small queues, a slow receiver; every message arrives."""
    pull = ctx.socket(zmq.PULL)
    pull.rcvhwm = 5
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    senders, each = 10, 100

    def sender(n: int) -> int:
        push = ctx.socket(zmq.PUSH)
        push.sndhwm = 5
        push.connect(f"tcp://127.0.0.1:{port}")
        retries = 0
        for i in range(each):
            while True:
                try:
                    push.send(b"%d-%d" % (n, i), zmq.NOBLOCK)
                    break
                except zmq.Again:
                    retries += 1
                    green.sleep(0.001)
        push.close()  # default linger: what is queued still goes
        return retries

    greenlets = [green.spawn(sender, n) for n in range(senders)]
    pull.rcvtimeo = 10000
    received = set()
    for _ in range(senders * each):
        received.add(pull.recv())
        if len(received) % 50 == 0:
            green.sleep(0.005)  # slow: the senders meet EAGAIN
    retries = [green.get(g, 10) for g in greenlets]
    assert received == {b"%d-%d" % (n, i) for n in range(senders) for i in range(each)}
    assert sum(retries) > 0  # the queues did fill


def test_a_send_waiting_for_its_first_peer_goes_when_it_connects(green, zmq, ctx, procs):
    """pyzmq#207/#199 (zmq.green missed the first send event: a send never woke): a PUSH
    with IMMEDIATE has nowhere to send; its blocked send goes once a peer binds."""
    endpoint = procs.free_endpoint()
    push = ctx.socket(zmq.PUSH)
    push.immediate = 1
    push.connect(endpoint)
    sender = green.spawn(push.send, b"first")
    green.sleep(0.05)
    assert not green.dead(sender)  # no peer: it waits
    pull = ctx.socket(zmq.PULL)
    pull.bind(endpoint)
    green.get(sender, timeout=10)
    pull.rcvtimeo = 5000
    assert pull.recv() == b"first"


def test_a_send_done_at_once_does_not_starve_a_waiting_recv(green, zmq, ctx):
    """pyzmq#1203/#1208 (a send that completed at once left a waiting recv unwoken): a
    DEALER's reader greenlet waits; the main one sends requests, each at once; the ROUTER's
    replies wake the reader every time."""
    router, dealer = _connected(ctx, zmq, zmq.ROUTER, zmq.DEALER)
    replies: list[bytes] = []

    def reader() -> None:
        while len(replies) < 50:
            replies.append(dealer.recv())

    g = green.spawn(reader)
    for i in range(50):
        dealer.send(b"%d" % i)
        identity, request = router.recv_multipart()
        router.send_multipart([identity, request])
    green.get(g, timeout=10)
    assert replies == [b"%d" % i for i in range(50)]


# -- polling ---------------------------------------------------------------------------------


def test_an_empty_poller_sleeps_greenly_for_its_timeout(green, zmq):
    """pyzmq#718 (an empty Poller's poll returned at once): with nothing registered,
    ``poll(ms)`` is a sleep of ``ms`` that lets the other greenlets run."""
    ticks: list[float] = []
    ticker = _ticker(green, ticks)
    start = time.monotonic()
    assert zmq.Poller().poll(200) == []
    end = time.monotonic()
    green.kill(ticker)
    assert end - start >= 0.18
    assert _ticks_between(ticks, start, end) >= 3


def test_a_poller_keeps_polling_after_one_socket_is_unregistered_and_closed(green, zmq, ctx):
    """pyzmq#1114 (closing a socket broke the poller polling it, even unregistered first,
    with an error no one could catch): one greenlet polls two sockets in a loop; another
    unregisters one and closes it. The poll in progress fails with ENOTSOCK, an error
    like any other (pyzmq's fix, #1115, made it catchable; zmq.green fails it with EBADF);
    the next poll serves the other socket."""
    pulls, pushes = [], []
    for n in range(2):
        pull = ctx.socket(zmq.PULL)
        pull.bind(f"inproc://unregistered-{n}")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"inproc://unregistered-{n}")
        pulls.append(pull)
        pushes.append(push)
    poller = zmq.Poller()
    for pull in pulls:
        poller.register(pull, zmq.POLLIN)
    got: list[bytes] = []
    errors: list[int] = []

    def listen() -> None:
        while len(got) < 3:
            try:
                ready = poller.poll(5000)
            except zmq.ZMQError as exc:
                errors.append(exc.errno)
                continue
            for sock, _ in ready:
                got.append(sock.recv())

    listener = green.spawn(listen)
    pushes[0].send(b"a")
    green.sleep(0.05)
    poller.unregister(pulls[0])
    pulls[0].close()
    green.sleep(0.05)
    pushes[1].send(b"b")
    green.sleep(0.05)
    pushes[1].send(b"c")
    green.get(listener, timeout=10)
    assert got == [b"a", b"b", b"c"]
    assert errors in ([], [zmq.ENOTSOCK])


@pytest.mark.timeout(30)
def test_polls_cut_short_leave_nothing_behind(green, zmq, ctx):
    """pyzmq#1888 and #1361 (zmq.asyncio: each poll cancelled before its event, of a socket
    or of a Poller over two sockets, left its waiter behind: memory grew without bound),
    the green way: 100 rounds of polls that time out or are cut short by a Timeout leave no
    waiter queued and no poll alive."""
    a, b = ctx.socket(zmq.PULL), ctx.socket(zmq.PULL)
    a.bind("inproc://cut-short-a")
    b.bind("inproc://cut-short-b")
    poller = zmq.Poller()
    poller.register(a, zmq.POLLIN)
    poller.register(b, zmq.POLLIN)
    for _ in range(100):
        assert poller.poll(1) == []
        assert a.poll(1) == 0
        for wait in (lambda: poller.poll(1000), lambda: a.poll(1000)):
            with pytest.raises(green.Timeout), green.Timeout(0.0005):
                wait()
    for sock in (a, b):
        assert not sock._reactor.pollq and not sock._reactor.recvq
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, PollWait)]


@pytest.mark.timeout(30)
def test_a_poller_in_a_background_thread_does_not_hold_up_the_main_hub(green, zmq, ctx):
    """eventlet#573 (green.zmq.Poller in a background thread blocks the main thread): a
    worker in a real OS thread polls with a 10 s timeout; the main thread's greenlets
    send once every 50 ms; each message wakes the poll at once."""
    ready = []

    def worker() -> list[float]:
        pull = ctx.socket(zmq.PULL)
        pull.bind("inproc://background-poller")
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        ready.append(True)
        waits = []
        try:
            for _ in range(3):
                start = time.monotonic()
                assert poller.poll(10000), "the poll timed out"
                pull.recv()
                waits.append(time.monotonic() - start)
        finally:
            pull.close()
        return waits

    thread = green.in_os_thread(worker)
    deadline = time.monotonic() + 10
    while not ready:
        assert time.monotonic() < deadline
        green.sleep(0.01)
    push = ctx.socket(zmq.PUSH)
    push.connect("inproc://background-poller")
    start = time.monotonic()
    for n in range(3):
        green.sleep(0.05)
        push.send(b"%d" % n)
    waits = green.get(thread, timeout=20)
    assert time.monotonic() - start < 5.0
    assert max(waits) < 3.0, waits


# -- other greenlets' work -------------------------------------------------------------------


def _green_subprocess(green: Any) -> Any:
    """The flavour's cooperative ``subprocess`` module."""
    if green.name == "gevent":
        import gevent.subprocess

        return gevent.subprocess
    import eventlet.green.subprocess

    return eventlet.green.subprocess


@pytest.mark.timeout(30)
def test_requests_go_on_while_another_greenlet_runs_subprocesses(green, zmq, ctx):
    """zerorpc#62 / gevent#282 (LostRemote while a background greenlet ran
    gevent.subprocess.Popen(...).wait() in a loop: the RPC stalled). One greenlet starts
    and reaps child processes (SIGCHLD, a child watcher) while the main one makes 100
    REQ/REP round trips, each bounded by RCVTIMEO."""
    subprocess = _green_subprocess(green)
    rep, req = _connected(ctx, zmq, zmq.REP, zmq.REQ)
    req.rcvtimeo = rep.rcvtimeo = 5000
    children: list[int] = []
    stop: list[bool] = []

    def spawner() -> None:
        while not stop:
            children.append(subprocess.Popen(["true"]).wait())

    def server() -> None:
        for _ in range(100):
            rep.send(rep.recv())

    background, answering = green.spawn(spawner), green.spawn(server)
    for i in range(100):
        req.send(b"%d" % i)
        assert req.recv() == b"%d" % i
        if i % 20 == 0:
            green.sleep(0.01)  # let a child or two come and go meanwhile
    stop.append(True)
    green.get(answering)
    green.get(background, timeout=10)
    assert children and set(children) == {0}


@pytest.mark.timeout(30)
def test_a_patched_blocking_sleep_lets_heartbeats_through(green, zmq, ctx):
    """zerorpc#37 (a long call in a monkeypatched server: the heartbeats must keep flowing
    meanwhile). One greenlet does the program's own blocking work, ``time.sleep(0.1)`` calls
    (green when patched: in the unpatched run it is gevent's or eventlet's sleep) until five
    heartbeats went by, 10 s at most; a DEALER sends a heartbeat every 20 ms that the
    ROUTER's greenlet answers. (A sleep that blocks the hub lets none through.)"""
    sleep = time.sleep if green.patched else green.sleep
    router, dealer = _connected(ctx, zmq, zmq.ROUTER, zmq.DEALER)
    dealer.rcvtimeo = 5000
    beats = 0

    def answer() -> None:
        while True:
            identity, beat = router.recv_multipart()
            router.send_multipart([identity, beat])

    def work() -> None:
        deadline = time.monotonic() + 10
        while beats < 5 and time.monotonic() < deadline:
            sleep(0.1)

    answering = green.spawn(answer)
    worker = green.spawn(work)
    while not green.dead(worker):
        dealer.send(b"beat")
        assert dealer.recv() == b"beat"
        beats += 1
        green.sleep(0.02)
    green.kill(answering)
    assert beats >= 5, beats
