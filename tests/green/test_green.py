"""Behaviour shared by both green flavours, run once per flavour (see conftest.py)."""

from __future__ import annotations

import gc
import inspect
import os
import random
import subprocess
import sys
import threading
import time
import warnings
import weakref
from typing import Any

import pytest
import zmq as plain_zmq

from zmq_async import _thread

# -- the namespace and the classes --------------------------------------------------------


def test_the_whole_zmq_namespace_is_there(green, zmq):
    peer = green.peer
    public = {
        n for n in dir(peer) if not n.startswith("_") and not inspect.ismodule(getattr(peer, n))
    }
    # eventlet.green.zmq leaks two helpers it imported itself
    missing = public - set(dir(zmq)) - {"deque", "slurp_properties"}
    assert not missing
    assert set(plain_zmq.__all__) <= set(zmq.__all__)
    assert zmq.POLLIN == plain_zmq.POLLIN and zmq.Again is plain_zmq.Again
    assert zmq.ZMQError is plain_zmq.ZMQError and zmq.has is plain_zmq.has


def test_star_import_gives_the_green_classes(zmq):
    namespace: dict[str, Any] = {}
    exec(f"from {zmq.__name__} import *", namespace)
    for name in ("Context", "Socket", "Poller", "select", "device", "proxy", "proxy_steerable"):
        assert namespace[name] is getattr(zmq, name), name
        assert namespace[name] is not getattr(plain_zmq, name), name
    assert namespace["PUSH"] == plain_zmq.PUSH


def test_classes_are_zmq_subclasses(zmq, ctx):
    assert issubclass(zmq.Socket, plain_zmq.Socket)
    assert issubclass(zmq.Context, plain_zmq.Context)
    assert issubclass(zmq.Poller, plain_zmq.Poller)
    sock = ctx.socket(zmq.PUSH)
    assert type(sock) is zmq.Socket
    assert repr(sock).startswith(f"<{zmq.__name__}.Socket(zmq.PUSH) at ")
    assert repr(ctx).startswith(f"<{zmq.__name__}.Context(")
    assert zmq.Context.instance() is zmq.Context.instance()
    assert zmq.Context.instance() is not plain_zmq.Context.instance()


def _public_methods(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


@pytest.mark.parametrize("name", ["Socket", "Context", "Poller"])
def test_same_methods_and_parameters_as_the_peer(green, zmq, name):
    mine, theirs = getattr(zmq, name), getattr(green.peer, name)
    assert not _public_methods(theirs) - _public_methods(mine)
    for method in sorted(_public_methods(theirs)):
        try:
            expected = inspect.signature(getattr(theirs, method))
        except (TypeError, ValueError):
            continue
        actual = inspect.signature(getattr(mine, method))
        names = [p.name for p in expected.parameters.values() if p.kind is not p.VAR_KEYWORD]
        got = [p.name for p in actual.parameters.values() if p.kind is not p.VAR_KEYWORD]
        if any(p.kind is p.VAR_POSITIONAL for p in expected.parameters.values()):
            continue  # zmq.green's (*args, **kwargs) wrappers say nothing
        if got[: len(names)] == names or set(names) <= set(got):
            continue
        # zmq.green renames a few of zmq.Socket's parameters (get(opt)): pyzmq's names do too
        base = inspect.signature(getattr(getattr(plain_zmq, name), method))
        assert got == [p.name for p in base.parameters.values()], method


# -- sending and receiving ----------------------------------------------------------------


def test_every_send_and_recv_form(green, zmq, pair):
    push, pull = pair

    def receiver() -> list[Any]:
        out: list[Any] = [pull.recv()]
        out.append(pull.recv_multipart())
        out.append(pull.recv_string())
        out.append(pull.recv_json())
        out.append(pull.recv_pyobj())
        out.append(pull.recv_serialized(lambda frames: [bytes(f) for f in frames]))
        buf = bytearray(8)
        out.append((pull.recv_into(buf), bytes(buf)))
        out.append(pull.recv(copy=False).bytes)
        return out

    g = green.spawn(receiver)
    green.sleep(0.01)  # the receiver parks first: every form takes the slow path once
    push.send(b"one")
    push.send_multipart([b"a", b"b"])
    push.send_string("text")
    push.send_json({"k": [1]})
    push.send_pyobj((1, 2))
    push.send_serialized("x", lambda obj: [obj.encode(), b"y"])
    push.send(b"12345")
    push.send(b"frame", copy=False)
    assert green.get(g) == [
        b"one",
        [b"a", b"b"],
        "text",
        {"k": [1]},
        (1, 2),
        [b"x", b"y"],
        (5, b"12345\0\0\0"),
        b"frame",
    ]


def test_noblock_never_switches(green, zmq, pair):
    push, pull = pair
    ran = []
    other = green.spawn(ran.append, 1)
    with pytest.raises(zmq.Again):
        pull.recv(zmq.NOBLOCK)
    with pytest.raises(zmq.Again):
        pull.recv_multipart(zmq.DONTWAIT)
    push.send(b"x", zmq.NOBLOCK)
    assert pull.poll(0) in (0, zmq.POLLIN)
    assert ran == []  # no call above let the other greenlet run
    green.get(other)
    assert ran == [1]


def test_a_ready_message_is_returned_without_switching(green, zmq, pair):
    push, pull = pair
    push.send(b"x")
    assert pull.poll(2000) == zmq.POLLIN
    ran = []
    other = green.spawn(ran.append, 1)
    assert pull.recv() == b"x"
    assert ran == []
    green.get(other)


def test_bad_multipart_sends_nothing(zmq, pair):
    push, pull = pair
    with pytest.raises(TypeError):
        push.send_multipart([b"a", object()])
    push.send(b"only")
    assert pull.recv_multipart() == [b"only"]


def test_a_socket_that_fails_to_open_raises_that_alone(zmq, monkeypatch):
    # Its reactor failed to be made: the error is raised, and collecting the half-made socket
    # closes it without failing again, so that its context terminates.
    def broken(self: Any) -> Any:
        raise RuntimeError("no reactor")

    monkeypatch.setattr(zmq.Socket, "_new_reactor", broken)
    context = zmq.Context()
    unraisable: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # dropped without close()
            with pytest.raises(RuntimeError, match="no reactor"):
                context.socket(zmq.PULL)
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    context.term()  # would wait for ever for a socket left open


def test_state_errors_are_raised_at_once(zmq, ctx):
    req = ctx.socket(zmq.REQ)
    req.connect("tcp://127.0.0.1:1")
    with pytest.raises(zmq.ZMQError) as info:
        req.recv()
    assert info.value.errno == zmq.EFSM


def test_a_receive_out_of_turn_fails_after_one_found_nothing(green, zmq, ctx):
    """A receive that found nothing makes the next one ask EVENTS before trying: REQ and REP
    out of turn (no POLLIN there) must still fail with EFSM, not wait for ever."""
    rep = ctx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req = ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    request = green.spawn(rep.recv)  # finds nothing: waits
    green.sleep(0.01)
    req.send(b"q")
    reply = green.spawn(req.recv)  # finds nothing: waits
    assert green.get(request, timeout=3) == b"q"
    for sock in (rep, req):
        ran = []
        other = green.spawn(ran.append, 1)
        with pytest.raises(zmq.ZMQError) as info:
            sock.recv()  # out of turn
        assert info.value.errno == zmq.EFSM
        assert ran == []  # at once: the call did not wait
        green.get(other)
        if sock is rep:
            rep.send(b"a")
            assert green.get(reply, timeout=3) == b"a"


def test_a_waiter_is_served_after_others_touch_the_socket(green, zmq, pair):
    """Rule 1: reading EVENTS (ours, or through a plain shadow) may eat the FD's edge."""
    push, pull = pair
    shadow = plain_zmq.Socket.shadow(pull.underlying)
    for touch in (lambda: pull.getsockopt(zmq.EVENTS), lambda: shadow.get(zmq.EVENTS)):
        g = green.spawn(pull.recv)
        green.sleep(0.01)
        push.send(b"x")
        deadline = time.monotonic() + 2
        while not shadow.get(zmq.EVENTS) & zmq.POLLIN and time.monotonic() < deadline:
            os.sched_yield()  # no switch (a patched time.sleep would serve the waiter here)
        assert not green.dead(g)  # the message is there, the waiter not yet told
        touch()
        assert green.get(g, timeout=3) == b"x"


# -- many greenlets on one socket ----------------------------------------------------------


def test_many_receivers_are_served_fifo(green, zmq, pair):
    push, pull = pair
    got: list[tuple[int, bytes]] = []
    receivers = []
    for i in range(20):
        receivers.append(green.spawn(lambda i=i: got.append((i, pull.recv()))))
        green.sleep(0)  # parks in order
    for i in range(20):
        push.send(b"%d" % i)
    for g in receivers:
        green.get(g)
    assert got == [(i, b"%d" % i) for i in range(20)]


def test_a_new_caller_waits_behind_those_queued_ahead(green, zmq, pair):
    push, pull = pair
    shadow = plain_zmq.Socket.shadow(pull.underlying)
    got: list[tuple[str, bytes]] = []
    first = green.spawn(lambda: got.append(("first", pull.recv())))
    green.sleep(0.01)
    push.send(b"1")
    push.send(b"2")
    deadline = time.monotonic() + 2
    while not shadow.get(zmq.EVENTS) & zmq.POLLIN and time.monotonic() < deadline:
        os.sched_yield()  # no switch (a patched time.sleep would serve the waiter here)
    assert not green.dead(first)  # the messages are there, the waiter not yet served
    got.append(("late", pull.recv()))  # must not overtake the waiter queued first
    green.get(first)
    assert got == [("first", b"1"), ("late", b"2")]


def test_many_senders_are_served_fifo_and_multipart_never_interleaves(green, zmq, ctx):
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1)
    push.connect(f"tcp://127.0.0.1:{port}")

    def sender(i: int) -> None:
        for j in range(20):
            push.send_multipart([b"%d" % i, b"%d" % j, b"%d-%d" % (i, j)])

    senders = [green.spawn(sender, i) for i in range(5)]
    received = [pull.recv_multipart() for _ in range(100)]
    for g in senders:
        green.get(g)
    for i, j, whole in received:
        assert whole == i + b"-" + j  # each message whole
    for i in range(5):  # each sender's messages in order
        mine = [int(j) for s, j, _ in received if s == b"%d" % i]
        assert mine == list(range(20))


def test_many_multipart_receivers(green, zmq, pair):
    push, pull = pair
    results: list[list[bytes]] = []

    def receiver() -> None:
        for _ in range(10):
            results.append(pull.recv_multipart())

    receivers = [green.spawn(receiver) for _ in range(5)]
    green.sleep(0)
    for i in range(50):
        push.send_multipart([b"%d" % i, b"x" * (i % 7), b"end-%d" % i])
    for g in receivers:
        green.get(g)
    assert sorted(int(m[0]) for m in results) == list(range(50))
    assert all(m[2] == b"end-" + m[0] and len(m) == 3 for m in results)


# -- timeouts and interruption -------------------------------------------------------------


def test_rcvtimeo_raises_again_and_consumes_nothing(green, zmq, pair):
    push, pull = pair
    pull.rcvtimeo = 100
    t0 = time.monotonic()
    with pytest.raises(zmq.Again):
        pull.recv()
    assert 0.08 <= time.monotonic() - t0 < 2.0
    push.send(b"later")
    assert pull.recv() == b"later"
    pull.setsockopt(zmq.RCVTIMEO, -1)
    g = green.spawn(pull.recv)
    green.sleep(0.15)
    assert not green.dead(g)  # -1 again: waits for ever
    push.send(b"x")
    assert green.get(g) == b"x"


def test_an_expired_timeo_is_a_timeout_for_eventlet(green, zmq, ctx):
    # eventlet's own zmq_test.py::test_recv_timeout: the Again that RCVTIMEO raises (and
    # SNDTIMEO here, which eventlet.green.zmq ignores) satisfies eventlet.is_timeout.
    sub = ctx.socket(zmq.SUB)
    sub.rcvtimeo = 50
    with pytest.raises(zmq.Again) as recv_error:
        sub.recv()
    push = ctx.socket(zmq.PUSH)
    push.sndtimeo = 50
    with pytest.raises(zmq.Again) as send_error:
        push.send(b"x")
    for error in (recv_error.value, send_error.value):
        assert error.is_timeout is True
        if green.name == "eventlet":
            assert green._eventlet.is_timeout(error)
    with pytest.raises(zmq.Again) as noblock_error:
        sub.recv(zmq.NOBLOCK)
    assert not getattr(noblock_error.value, "is_timeout", False)  # not a timeout: NOBLOCK


def test_sndtimeo_raises_again(zmq, ctx):
    push = ctx.socket(zmq.PUSH)  # no peer: a send can never proceed
    push.sndtimeo = 100
    t0 = time.monotonic()
    with pytest.raises(zmq.Again):
        push.send(b"x")
    with pytest.raises(zmq.Again):
        push.send_multipart([b"a", b"b"])
    assert 0.15 <= time.monotonic() - t0 < 3.0


def test_a_timeout_interrupts_a_wait_without_consuming(green, zmq, pair):
    push, pull = pair
    with pytest.raises(green.Timeout), green.Timeout(0.05):
        pull.recv()
    assert not pull._reactor.recvq  # the waiter left the queue
    push.send(b"kept")
    assert pull.recv() == b"kept"


def test_killing_a_waiting_greenlet_consumes_nothing(green, zmq, pair):
    push, pull = pair
    g = green.spawn(pull.recv)
    green.sleep(0.01)
    green.kill(g)
    push.send(b"kept")
    assert pull.recv() == b"kept"


def test_timeout_and_kill_storm_loses_no_message(green, zmq, pair):
    push, pull = pair
    received: list[bytes] = []
    rng = random.Random(5)

    def receiver() -> None:
        while True:
            try:
                with green.Timeout(rng.choice([0.0005, 0.001, 0.005])):
                    received.append(pull.recv())
            except green.Timeout:
                pass

    sent = green.storm(
        receiver,
        lambda n: push.send(b"%d" % n),
        received,
        rng,
        waiters=8,
        rounds=40,
        burst=20,
        pauses=[0, 0.001, 0.002],
        kill_every=5,
    )
    assert sorted(int(m) for m in received) == list(range(sent))


def test_interrupted_senders_send_whole_messages_or_nothing(green, zmq, ctx):
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 1)
    pull.bind("inproc://interrupted")  # inproc: no kernel buffers, the HWMs are the queue
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1)
    push.connect("inproc://interrupted")
    sent: list[bytes] = []
    rng = random.Random(7)

    def sender(i: int) -> None:
        for j in range(30):
            tag = b"%d-%d" % (i, j)
            try:
                with green.Timeout(rng.choice([0.0005, 0.002, 0.01])):
                    push.send_multipart([tag, b"middle", tag])
            except green.Timeout:
                continue
            sent.append(tag)

    senders = [green.spawn(sender, i) for i in range(6)]
    received: list[list[bytes]] = []
    while not all(green.dead(g) for g in senders) or pull.poll(200):
        if pull.poll(50):
            received.append(pull.recv_multipart())
            green.sleep(0.001)  # a slow consumer: senders block and time out
    for g in senders:
        green.get(g)
    assert all(len(m) == 3 and m[0] == m[2] and m[1] == b"middle" for m in received)
    assert sorted(m[0] for m in received) == sorted(sent)
    assert 0 < len(sent) < 180  # some sends timed out, some went through


# -- close and term wake every waiter --------------------------------------------------------


def test_close_wakes_every_waiter_with_enotsock(green, zmq, pair):
    _push, pull = pair
    waiters = [green.spawn(pull.recv) for _ in range(5)]
    poller = green.spawn(pull.poll, 5000)
    green.sleep(0.01)
    fd = pull.FD
    t0 = time.monotonic()
    pull.close()
    # at once, before the hub ran: the FD is no longer watched when libzmq closes it
    assert fd not in _watched_fds(zmq)
    for g in [*waiters, poller]:
        with pytest.raises(zmq.ZMQError) as info:
            green.get(g)
        assert info.value.errno == zmq.ENOTSOCK
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(zmq.ZMQError):
        pull.recv()
    _assert_fd_closed_or_reused(fd)


def test_a_close_from_the_hub_finishes_before_its_waiters_run(green, zmq, pair):
    _push, pull = pair
    outcome: list[Any] = []

    def waiter() -> None:
        try:
            pull.recv()
        except zmq.ZMQError:
            try:  # the socket must be closed by now (ENOTSOCK), not still open (EAGAIN)
                outcome.append(pull.recv(zmq.NOBLOCK))
            except zmq.ZMQError as exc:
                outcome.append(exc.errno)

    g = green.spawn(waiter)
    green.sleep(0.01)
    zmq.Socket._current_hub().driver.call_soon(pull.close)  # close() in a hub callback
    green.get(g)
    assert outcome == [zmq.ENOTSOCK]


@pytest.mark.timeout(20)
def test_a_wait_in_a_hub_callback_is_refused_and_consumes_nothing(green, zmq, pair):
    push, pull = pair
    outcome: list[Any] = []

    def in_the_hub() -> None:
        for call in (pull.recv, lambda: pull.poll(1000), lambda: zmq.Poller().poll(1000)):
            try:
                outcome.append(call())
            except RuntimeError as exc:
                outcome.append("cannot block" in str(exc))

    zmq.Socket._current_hub().driver.call_soon(in_the_hub)
    green.sleep(0.05)
    assert outcome == [True, True, True]
    push.send(b"x")
    assert pull.recv() == b"x"  # the refused receive left nothing queued or taken


def _watched_fds(zmq: Any) -> set[int]:
    driver = zmq.Socket._current_hub().driver
    keys = getattr(driver, "_watchers", None) or getattr(driver, "_fan_outs", None) or {}
    return {fd for fd, _writable in keys}


def _assert_fd_closed_or_reused(fd: int) -> None:
    # libzmq closed the socket's FD (or something reused the number): either way no watcher
    # kept our hub on the old one, or the hub would have complained about a closed FD.
    try:
        os.fstat(fd)
    except OSError:
        return


@pytest.mark.parametrize("how", ["term", "destroy"])
def test_term_and_destroy_wake_waiters_with_eterm(green, zmq, how):
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind("inproc://term")
    push = context.socket(zmq.PUSH)  # no peer: the send waits
    closed = []

    def recv_then_close() -> None:
        try:
            pull.recv()
        finally:
            pull.close()
            closed.append(pull)

    def send_then_close() -> None:
        try:
            push.send(b"x")
        finally:
            push.close(linger=0)
            closed.append(push)

    waiters = [green.spawn(recv_then_close), green.spawn(send_then_close)]
    green.sleep(0.01)
    t0 = time.monotonic()
    terminator = green.spawn(getattr(context, how))
    for g in waiters:
        with pytest.raises(zmq.ContextTerminated):
            green.get(g)
    green.get(terminator)
    assert time.monotonic() - t0 < 2.0
    assert context.closed and len(closed) == 2


def _threads_beyond(baseline: int, timeout: float = 10.0) -> int:
    """How many more OS threads this process has than ``baseline``, once joined ones are gone.

    libzmq's term joins its threads, but pthread_join returns when the kernel clears the
    thread's tid, a moment before /proc/self/task stops listing it: on a loaded machine
    that moment was long enough to count one thread more (issue 10). So wait, at most
    ``timeout`` seconds, for the count to come down; a thread that does not end still counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        extra = len(os.listdir("/proc/self/task")) - baseline
        if extra <= 0 or time.monotonic() > deadline:
            return extra
        time.sleep(0.01)


def _count_terms(terms: list[int]) -> None:
    """Make ``zmq.Context.term`` append 1 to ``terms`` each time it has returned."""
    term = plain_zmq.Context.term

    def counted(self: Any) -> None:
        term(self)
        terms.append(1)

    plain_zmq.Context.term = counted  # type: ignore[method-assign]


def test_a_context_dropped_with_unclosed_sockets_is_collected(zmq, monkeypatch):
    # pyzmq's TestContext.test_gc with green classes: context and socket become garbage
    # together (the socket and its reactor form a cycle); collecting them must not hang,
    # and must terminate the context, within the collection (its libzmq threads then end).
    monkeypatch.setattr(plain_zmq.Context, "term", plain_zmq.Context.term)  # undone after
    terms: list[int] = []
    _count_terms(terms)
    collected = []

    def drop_and_collect() -> None:
        def make() -> weakref.ref[Any]:
            context = zmq.Context()
            context.socket(zmq.PUSH).bind("inproc://dropped")
            return weakref.ref(context)

        threads = len(os.listdir("/proc/self/task"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # "Unclosed context/socket"
            ref = make()
            gc.collect()
        collected.append((ref() is None, len(terms)))
        collected.append(_threads_beyond(threads))

    thread = threading.Thread(target=drop_and_collect, daemon=True)
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive(), "collecting a dropped context hangs"
    assert collected == [(True, 1), 0]


@pytest.mark.unpatched("the program patches itself, in a process of its own")
def test_a_dropped_context_is_collected_in_a_monkeypatched_program(green):
    # Monkeypatched, a thread started from a finalizer would be a greenlet switched to in
    # the middle of the collection: the context's term() must not take that road, and must
    # have returned when the collection does.
    if green.name == "gevent":
        setup = "from gevent import monkey; monkey.patch_all()\nimport zmq_async.green as zmq"
    else:
        setup = "import eventlet; eventlet.monkey_patch()\nimport zmq_async.green.eventlet as zmq"
    helpers = inspect.getsource(_threads_beyond) + inspect.getsource(_count_terms)
    code = f"""import warnings
warnings.simplefilter("ignore")
{setup}
import gc, os, time, weakref
from typing import Any
import zmq as plain_zmq
{helpers}
terms = []
_count_terms(terms)
threads = len(os.listdir("/proc/self/task"))
def make():
    context = zmq.Context()
    context.socket(zmq.PULL).bind("inproc://dropped")
    return weakref.ref(context)
ref = make()
gc.collect()
print(ref() is None, len(terms), flush=True)
print(_threads_beyond(threads))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "True 1\n0\n", "")


@pytest.mark.unpatched("the program, in a process of its own, never patches")
def test_unclosed_sockets_collected_at_exit_print_nothing(green):
    # Their close() ran when ZMQError() could no longer import: "Exception ignored ...".
    module = green.zmq.__name__
    code = f"""if True:
        import warnings
        warnings.simplefilter("ignore")
        import {module} as zmq
        ctx = zmq.Context()
        socks = [ctx.socket(zmq.PULL) for _ in range(3)]
        socks[0].bind("tcp://127.0.0.1:0")
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, env=env
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_no_watcher_or_fd_outlives_its_socket(green, zmq, ctx):
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    def round_trip() -> None:
        socks = [ctx.socket(zmq.PULL) for _ in range(30)]
        waiters = [green.spawn(s.recv) for s in socks]
        poller = zmq.Poller()
        for s in socks:
            poller.register(s, zmq.POLLIN)
        polling = green.spawn(poller.poll, 5000)
        green.sleep(0.01)
        for s in socks:
            s.close()
        for g in [*waiters, polling]:
            with pytest.raises(zmq.ZMQError):
                green.get(g)

    round_trip()  # libzmq's own first-use FDs
    before = open_fds()
    round_trip()
    assert open_fds() <= before
    driver = zmq.Socket._current_hub().driver
    assert not getattr(driver, "_watchers", None) and not getattr(driver, "_fan_outs", None)


# -- idle costs nothing ----------------------------------------------------------------------


def test_idle_waiting_sockets_cost_no_cpu(green, zmq, ctx):
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    router = ctx.socket(zmq.ROUTER)
    rport = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{rport}")
    dealer.send(b"hello")
    assert router.recv_multipart()[1] == b"hello"
    dealer.close(linger=0)  # the ROUTER's peer goes away
    waiters = [green.spawn(sub.recv), green.spawn(router.recv_multipart)]
    green.sleep(0.2)  # settle: the disconnect is processed
    cpu0, wall0 = time.process_time(), time.monotonic()
    green.sleep(0.5)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    assert not any(green.dead(g) for g in waiters)
    for g in waiters:
        green.kill(g)
    assert cpu / wall < 0.1, f"{cpu:.3f}s of CPU in {wall:.3f}s"


# -- polling ---------------------------------------------------------------------------------


def test_socket_poll(green, zmq, pair):
    push, pull = pair
    assert pull.poll(50) == 0
    assert push.poll(1000, zmq.POLLOUT) == zmq.POLLOUT
    g = green.spawn(pull.poll, 5000)
    green.sleep(0.01)
    push.send(b"x")
    assert green.get(g) == zmq.POLLIN
    assert pull.recv() == b"x"


def test_many_pollers_all_wake_and_poll_consumes_nothing(green, zmq, pair):
    push, pull = pair
    pollers = [green.spawn(pull.poll, 5000) for _ in range(5)]
    green.sleep(0.01)
    push.send(b"x")
    assert [green.get(g) for g in pollers] == [zmq.POLLIN] * 5
    assert pull.recv(zmq.NOBLOCK) == b"x"


def test_polling_a_closed_socket_fails(zmq, ctx):
    sock = ctx.socket(zmq.PULL)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    sock.close()
    with pytest.raises(zmq.ZMQError) as info:
        sock.poll(10)
    assert info.value.errno == zmq.ENOTSUP  # as pyzmq's Socket.poll
    with pytest.raises(zmq.ZMQError) as info:
        poller.poll(10)
    assert info.value.errno == zmq.ENOTSOCK


def test_poller_with_raw_fds_and_plain_sockets(green, zmq, ctx):
    sync_ctx: plain_zmq.Context[Any] = plain_zmq.Context()
    rfd, wfd = os.pipe()
    try:
        plain_pull = sync_ctx.socket(plain_zmq.PULL)
        port = plain_pull.bind_to_random_port("tcp://127.0.0.1")
        plain_push = sync_ctx.socket(plain_zmq.PUSH)
        plain_push.connect(f"tcp://127.0.0.1:{port}")
        green_pull = ctx.socket(zmq.PULL)
        green_pull.bind("inproc://poller")
        green_push = ctx.socket(zmq.PUSH)
        green_push.connect("inproc://poller")

        poller = zmq.Poller()
        poller.register(rfd, zmq.POLLIN)
        poller.register(plain_pull, zmq.POLLIN)
        poller.register(green_pull, zmq.POLLIN)
        assert poller.poll(20) == []

        for wake, item in [
            (lambda: os.write(wfd, b"x"), rfd),
            (lambda: plain_push.send(b"x"), plain_pull),
            (lambda: green_push.send(b"x"), green_pull),
        ]:
            g = green.spawn(poller.poll, 5000)
            green.sleep(0.01)
            assert not green.dead(g)
            wake()
            assert green.get(g) == [(item, zmq.POLLIN)]
            if item == rfd:
                os.read(rfd, 1)
            else:
                item.recv()
        assert zmq.select([green_pull], [green_push], [], 0.01) == ([], [green_push], [])
    finally:
        os.close(rfd)
        os.close(wfd)
        sync_ctx.destroy(linger=0)


def test_a_heartbeat_keeps_ticking_while_others_wait(green, zmq, pair):
    _push, pull = pair
    ticks = []

    def heartbeat() -> None:
        while True:
            ticks.append(time.monotonic())
            green.sleep(0.01)

    hb = green.spawn(heartbeat)
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    assert poller.poll(300) == []
    pull.rcvtimeo = 300
    with pytest.raises(zmq.Again):
        pull.recv()
    green.kill(hb)
    assert len(ticks) >= 20, len(ticks)


# -- device and proxy ------------------------------------------------------------------------


def test_green_proxy_and_device_forward_and_let_others_run(green, zmq, ctx):
    for run in (
        lambda f, b: zmq.proxy(f, b),
        lambda f, b: zmq.device(zmq.QUEUE, f, b),
    ):
        frontend = ctx.socket(zmq.PULL)
        fport = frontend.bind_to_random_port("tcp://127.0.0.1")
        backend = ctx.socket(zmq.PUSH)
        bport = backend.bind_to_random_port("tcp://127.0.0.1")
        source = ctx.socket(zmq.PUSH)
        source.connect(f"tcp://127.0.0.1:{fport}")
        sink = ctx.socket(zmq.PULL)
        sink.connect(f"tcp://127.0.0.1:{bport}")
        proxy = green.spawn(run, frontend, backend)
        for i in range(100):
            source.send(b"%d" % i)
        assert [sink.recv() for _ in range(100)] == [b"%d" % i for i in range(100)]
        frontend.close()
        with pytest.raises(zmq.ZMQError):
            green.get(proxy)
        for sock in (backend, source, sink):
            sock.close(linger=0)


def test_proxy_steerable_terminate(green, zmq, ctx):
    frontend, backend = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    frontend.bind("inproc://f")
    backend.bind("inproc://b")
    control_in = ctx.socket(zmq.PAIR)
    control_in.bind("inproc://control")
    control_out = ctx.socket(zmq.PAIR)
    control_out.connect("inproc://control")
    capture_in = ctx.socket(zmq.PAIR)
    capture_in.bind("inproc://capture")
    capture_out = ctx.socket(zmq.PAIR)
    capture_out.connect("inproc://capture")
    source, sink = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    source.connect("inproc://f")
    sink.connect("inproc://b")
    proxy = green.spawn(zmq.proxy_steerable, frontend, backend, capture_in, control_in)
    source.send(b"one")
    assert sink.recv() == b"one"
    assert capture_out.recv() == b"one"
    control_out.send(b"PAUSE")
    green.sleep(0.01)
    source.send(b"two")
    assert sink.poll(50) == 0
    control_out.send(b"RESUME")
    assert sink.recv() == b"two"
    control_out.send(b"TERMINATE")
    assert green.get(proxy) == 0


# -- threads -----------------------------------------------------------------------------------


def test_a_socket_waiting_in_another_threads_hub_is_refused(green, zmq, pair):
    # A real OS thread, patched or not (patched, threading.Thread would make a greenlet).
    push, pull = pair
    g = green.spawn(pull.recv)
    green.sleep(0.01)

    def other_thread() -> BaseException | None:
        try:
            pull.rcvtimeo = 10
            pull.recv()
        except BaseException as exc:
            return exc
        return None

    error = green.get(green.in_os_thread(other_thread))
    assert isinstance(error, RuntimeError) and "another thread" in str(error), error
    push.send(b"x")
    assert green.get(g) == b"x"  # the first waiter was not disturbed


def test_each_thread_waits_in_its_own_hub(green, zmq, ctx):
    def in_thread(n: int) -> Any:
        pull = ctx.socket(zmq.PULL)
        pull.bind(f"inproc://thread-{n}")
        push = ctx.socket(zmq.PUSH)
        push.connect(f"inproc://thread-{n}")
        try:
            g = green.spawn(pull.recv)
            green.sleep(0.02)  # parked in this thread's hub
            push.send(b"%d" % n)
            return (green.get(g), pull._hub.thread, _thread.get_ident())
        finally:
            pull.close()
            push.close()

    threads = [green.in_os_thread(in_thread, n) for n in range(2)]
    results = [green.get(t, 10) for t in threads]
    assert sorted(r for r, _, _ in results) == [b"0", b"1"]
    # The pool may run both calls in one worker (a loaded machine finishes the first before
    # the second starts), or a new worker may get a finished one's identifier: so each socket's
    # hub is compared with the OS thread that waited, not with the other's.
    assert all(hub == ident for _, hub, ident in results), results
    assert zmq.Socket._current_hub().thread not in {hub for _, hub, _ in results}


def test_a_dropped_socket_is_freed_at_once_and_term_returns(zmq: Any, green: Any) -> None:
    """As pyzmq's: a socket dropped without close() is closed when its last reference goes,
    so term() returns (not only after the cycle collector ran), also after it waited."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("tcp://127.0.0.1:*")
    assert pull.poll(10) == 0  # it waited in the hub, then timed out
    ref = weakref.ref(pull)
    gc.disable()
    try:
        del pull
        assert ref() is None, "the socket outlived its last reference"
    finally:
        gc.enable()
    ctx.term()  # returns: no socket is left open
    assert ctx.closed
