"""Review of the green layers (round 16): fork, FD reuse, and reported bugs; both flavours,
plain and monkeypatched (each run tests its own mode)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import zmq as plain_zmq

from zmq_async import _reactor

#: ``say(line)`` for a program that forks: one write (the parent's and the child's lines do
#: not interleave) with the OS's write, not eventlet's green one, which first waits for fd 1
#: in the hub: the child's hub shares the parent's epoll set (eventlet never renews it), so
#: either process unregistering fd 1 there took it from the other, which then waited for ever.
_SAY = r"""
import posix
def say(line):
    posix.write(1, (line + "\n").encode())
"""

#: One greenlet waits in each of :data:`_WAITS` (on a socket, or in a Poller over a green or a
#: plain socket); the main greenlet forks. The child reports each wait's outcome and how long
#: it took from the fork; the parent then serves each.
_WAITS = ("recv", "send", "poll", "poller", "poller-plain")
_FORKED_WAIT = (
    r"""
import zmq as plain
"""
    + _SAY
    + r"""
context = zmq.Context()
pulls = {}
for what in ("recv", "poll", "poller"):
    pulls[what] = context.socket(zmq.PULL)
    pulls[what].bind(f"inproc://forked-wait-{what}")
lonely = context.socket(zmq.PUSH)  # no peer: a send waits
plain_context = plain.Context()
plain_pull = plain_context.socket(plain.PULL)
plain_pull.bind("inproc://forked-wait-plain")
plain_push = plain_context.socket(plain.PUSH)
plain_push.connect("inproc://forked-wait-plain")

def wait(what):
    try:
        if what == "recv":
            return pulls[what].recv()
        if what == "send":
            return lonely.send(b"m")
        if what == "poll":
            return pulls[what].poll()
        poller = zmq.Poller()
        poller.register(plain_pull if what == "poller-plain" else pulls[what], zmq.POLLIN)
        return poller.poll()
    except RuntimeError as exc:
        return exc

waits = args[0].split(",")
waiting = [hub.spawn(wait, what) for what in waits]
hub.sleep(0.05)
pid = os.fork()
if pid == 0:
    if flavour == "gevent" and patching == "plain":
        hub.reinit()  # gevent's os.fork does it when patched
    started = time.monotonic()
    for what, greenlet in zip(waits, waiting):
        try:
            with hub.Timeout(5):
                result = greenlet.get() if flavour == "gevent" else greenlet.wait()
            outcome = f"{type(result).__name__} {result}"
        except BaseException as exc:
            outcome = f"raised {type(exc).__name__} {exc}"
        say(f"child: {what} {time.monotonic() - started:.3f} {outcome}")
    os._exit(0)
for what in ("recv", "poll", "poller"):
    push = context.socket(zmq.PUSH)
    push.connect(f"inproc://forked-wait-{what}")
    push.send(b"m")
plain_push.send(b"m")
pulled = context.socket(zmq.PULL)
pulled.bind("tcp://127.0.0.1:*")
lonely.connect(pulled.last_endpoint)
for what, greenlet in zip(waits, waiting):
    with hub.Timeout(5):
        result = greenlet.get() if flavour == "gevent" else greenlet.wait()
    say(f"parent: {what} {type(result).__name__}")
# No waitpid: the test's communicate() waits for the child, which holds the stdout pipe
# (and patched gevent's cooperative waitpid can miss a child that exits this soon).
"""
)

#: A greenlet polls a plain socket and a pipe; the main greenlet forks and waits until the
#: child, whose poll fails, is done; only then is the pipe written to. Only its FD can wake the
#: parent's poll in time (the re-check is pushed out of reach). args: none.
_FORKED_LEAVES_WATCHES = (
    r"""
import zmq as plain
from zmq_async import _reactor
_reactor.RECHECK_FIRST = _reactor.RECHECK_MAX = 60.0
"""
    + _SAY
    + r"""
plain_context = plain.Context()
plain_pull = plain_context.socket(plain.PULL)
plain_pull.bind("inproc://forked-watch")
readable, writer = os.pipe()

def wait():
    poller = zmq.Poller()
    poller.register(plain_pull, zmq.POLLIN)
    poller.register(readable, zmq.POLLIN)
    try:
        return poller.poll()
    except RuntimeError as exc:
        return exc

waiting = hub.spawn(wait)
hub.sleep(0.05)
done, holder = os.pipe()
pid = os.fork()
if pid == 0:
    if flavour == "gevent" and patching == "plain":
        hub.reinit()
    with hub.Timeout(5):
        result = waiting.get() if flavour == "gevent" else waiting.wait()
    hub.sleep(0.1)  # the child's hub runs on after the failed poll
    say(f"child: {type(result).__name__}")
    os.write(holder, b"x")
    os._exit(0)
os.read(done, 1)  # the child is done (blocking the whole parent: none of it must run)
os.write(writer, b"x")
started = time.monotonic()
try:
    with hub.Timeout(5):
        result = waiting.get() if flavour == "gevent" else waiting.wait()
    say(f"parent: {result} after {time.monotonic() - started:.3f} s")
except hub.Timeout:
    say("parent: timed out")
"""
)


@pytest.mark.timeout(60)
def test_a_greenlet_parked_when_the_process_forks_fails_in_the_child(green):
    """In a forked child the reactors of the parent's sockets are abandoned, their queues
    emptied: a greenlet parked on one of them when the fork happened (on a socket, or in a
    Poller) stayed parked for ever. It must fail at once with the RuntimeError any use of an
    inherited socket raises, as pyzmq's convention for forked sockets; the parent's is served.
    (One process, a greenlet parked in each way.)"""
    done = green.run(_FORKED_WAIT, ",".join(_WAITS))
    out, lines = done.stdout + done.stderr, done.stdout.splitlines()
    served = {"recv": "bytes", "send": "NoneType", "poll": "int"}
    assert [line for line in lines if line.startswith("parent: ")] == [
        f"parent: {what} {served.get(what, 'list')}" for what in _WAITS
    ], out
    child = [line.split(maxsplit=3) for line in lines if line.startswith("child: ")]
    assert [what for _, what, *_ in child] == list(_WAITS), out
    for _, what, after, outcome in child:
        assert outcome.startswith("RuntimeError") and "fork()" in outcome, (what, out)
        assert float(after) < 2.0, (what, out)  # at once: not a timeout


@pytest.mark.timeout(60)
def test_a_forked_child_leaves_the_parents_fd_watches_alone(green):
    """eventlet never renews its hub at fork: the child's epoll set is the parent's. A child
    that unregistered there the FDs of the waits it inherited (its failed poll stopping its
    watch of a pipe) took them from the parent too: the parent's poll then slept through
    the pipe's data. The child must only forget its watches."""
    done = green.run(_FORKED_LEAVES_WATCHES)
    out, err = done.stdout, done.stderr
    lines = out.splitlines()
    assert "child: RuntimeError" in lines, out + err
    parent = [line for line in lines if line.startswith("parent: ")]
    assert len(parent) == 1 and parent[0].startswith("parent: [("), out + err


# -- an FD number reused while the driver watches the old FD ---------------------------------


def _fd_closed(green: Any, fd: int) -> None:
    """Wait until ``fd`` is closed (libzmq's reaper closes a socket's FD after zmq_close)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.fstat(fd)
        except OSError:
            return
        green.sleep(0.005)
    raise AssertionError(f"fd {fd} still open")


def _watch_in_poller(green: Any, zmq: Any, item: Any) -> Any:
    """A greenlet polling ``item`` (its FD watched) for ever; kill it to stop."""
    poller = zmq.Poller()
    poller.register(item, zmq.POLLIN)
    return green.spawn(poller.poll)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("closed", ["plain socket", "pipe", "wrapped socket"])
def test_a_socket_reusing_the_fd_number_of_one_closed_while_watched_is_woken(
    green, zmq, ctx, monkeypatch, closed
):
    """An FD is closed while a green poller (or a wrapper's receive) watches it; a new green
    socket gets its number. eventlet's hub keeps the closed FD's listener (the OS dropped
    its registration), and the driver only added the new socket's callback to it: the new
    FD was never watched, its waiters served by the re-check alone (up to 2 s a wait)."""
    if closed == "pipe" and green.name == "gevent" and green.patched:
        pytest.skip("patched gevent reopens a closed pipe's FD number at once (no reuse)")
    # Only the FD can serve the new socket in time: the re-check is pushed out of reach.
    monkeypatch.setattr(_reactor, "RECHECK_FIRST", 60.0)
    monkeypatch.setattr(_reactor, "RECHECK_MAX", 60.0)
    plain_context = plain_zmq.Context()
    watching = None
    ctx.socket(zmq.PUSH).close()  # the context's own FDs (its threads') are made now
    try:
        if closed == "pipe":
            fd, write_end = os.pipe()  # (nothing written: quiet)
            watching = _watch_in_poller(green, zmq, fd)
            green.sleep(0.05)
            os.close(fd)
            os.close(write_end)
        else:
            old = plain_context.socket(plain_zmq.PULL)
            old.linger = 0
            fd = old.FD
            if closed == "plain socket":
                watching = _watch_in_poller(green, zmq, old)
            else:
                # A receive that waited once leaves the wrapper's reactor watching the FD.
                # It is killed before the close: a shadow of a socket closed elsewhere
                # aliases whatever socket libzmq next makes at its address, and would take
                # the new socket's message.
                wrapper = zmq.Socket.shadow(old.underlying)
                receiving = green.spawn(wrapper.recv)
                green.sleep(0.05)
                green.kill(receiving)
            green.sleep(0.05)
            old.close()
            _fd_closed(green, fd)
        extra = []
        pull = ctx.socket(zmq.PULL)
        while fd != pull.FD and len(extra) < 20:  # (a lower number may be free)
            extra.append(pull)
            pull = ctx.socket(zmq.PULL)
        for sock in extra:
            sock.close(linger=0)
        assert fd == pull.FD, "the new socket did not reuse the fd (test premise)"
        # inproc: a PUSH of another test (in any process) reconnecting to a tcp port this
        # test's bind happens to reuse would slip its messages in.
        pull.bind("inproc://fd-reuse")
        push = ctx.socket(zmq.PUSH)
        push.connect("inproc://fd-reuse")
        for n in range(3):
            receiving = green.spawn(pull.recv)
            green.sleep(0.05)  # parked, the FD watched
            push.send(b"%d" % n)
            assert green.get(receiving, 5) == b"%d" % n
    finally:
        if watching is not None:
            green.kill(watching)
        plain_context.destroy(linger=0)


#: eventlet's poll hub: a raw FD is closed while a green Poller waits on it (the look again
#: pushed out of reach). argv: flavour (eventlet), "patched" or "plain".
_POLL_HUB_CLOSED_FD = r"""
import eventlet
from zmq_async import _reactor
_reactor.RECHECK_FIRST = _reactor.RECHECK_MAX = 60.0
print(type(eventlet.hubs.get_hub()).__module__, flush=True)
read_end, write_end = os.pipe()
poller = zmq.Poller()
poller.register(read_end, zmq.POLLIN)
def close_it():
    eventlet.sleep(0.05)
    os.close(read_end)
eventlet.spawn(close_it)
try:
    with eventlet.Timeout(5):
        result = poller.poll()
    print("poll: POLLERR" if result == [(read_end, zmq.POLLERR)] else f"poll: {result}", flush=True)
except eventlet.Timeout:
    print("poll: hung", flush=True)
"""


@pytest.mark.timeout(60)
def test_eventlets_poll_hub_dropping_a_closed_fd_does_not_break_the_poll(green):
    """eventlet's poll and selects hubs (chosen by forking services: the epoll set is shared
    across fork) drop every listener of an FD the OS reports closed (POLLNVAL), ours too;
    the poll, woken by it, then failed to stop listening (KeyError in the hub's timer) and
    hung instead of reporting POLLERR."""
    if green.name != "eventlet":
        pytest.skip("eventlet's hubs")
    proc = green.run(_POLL_HUB_CLOSED_FD, env={"EVENTLET_HUB": "poll"})
    lines = proc.stdout.splitlines()
    assert lines[:1] == ["eventlet.hubs.poll"], proc.stdout + proc.stderr
    assert lines[1:] == ["poll: POLLERR"], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# -- threads -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("closing", ["close", "destroy"])
def test_a_close_from_another_os_thread_wakes_the_parked_greenlets(
    green, zmq, ctx, monkeypatch, closing
):
    """A program's other OS thread closes a socket (or destroys the context) while greenlets
    wait on it in the main thread's hub, which sleeps: their wake-ups were deferred with the
    hub's callback queue, not thread-safe, so nothing woke the hub until its next timer or
    event (the re-check, up to 2 s; with eventlet, 10 s measured, or never)."""
    # Only the wake can serve them in time: the re-check is pushed out of reach.
    monkeypatch.setattr(_reactor, "RECHECK_FIRST", 60.0)
    monkeypatch.setattr(_reactor, "RECHECK_MAX", 60.0)
    bound = 2.0
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://review-s16-thread-close")
    errors: list[Any] = []

    def wait() -> None:
        try:
            pull.recv()
        except zmq.ZMQError as exc:
            errors.append(exc)

    waiting = [green.spawn(wait) for _ in range(3)]
    green.sleep(0.1)  # all parked; the hub sleeps
    closed = []
    if closing == "close":
        green.start_os_thread(lambda: closed.append(pull.close(linger=0)))
    else:
        green.start_os_thread(lambda: closed.append(ctx.destroy(linger=0)))
    started = time.monotonic()
    for greenlet in waiting:
        green.get(greenlet, bound + 5)
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:  # (destroy's term may still run)
        green.sleep(0.01)
    assert closed == [None]
    expected = zmq.ENOTSOCK if closing == "close" else zmq.ETERM
    assert [exc.errno for exc in errors] == [expected] * 3
    assert elapsed < bound, elapsed


#: Zero-copy sends of large frames, tracked (pyzmq's garbage collector thread serves them).
_ZERO_COPY = r"""
context = zmq.Context()
pull = context.socket(zmq.PULL)
port = pull.bind_to_random_port("tcp://127.0.0.1")
push = context.socket(zmq.PUSH)
push.connect(f"tcp://127.0.0.1:{port}")
frame = b"x" * 200_000
receiving = hub.spawn(lambda: [len(pull.recv(copy=False)) for _ in range(20)])
with hub.Timeout(10):
    trackers = [push.send(frame, copy=False, track=True) for _ in range(20)]
    sizes = receiving.get() if flavour == "gevent" else receiving.wait()
    trackers[-1].wait(5)
print("received", sizes == [len(frame)] * 20, "tracked", all(t.done for t in trackers), flush=True)
context.destroy(linger=0)
"""


@pytest.mark.timeout(60)
def test_zero_copy_sends_in_a_monkeypatched_program(green):
    """pyzmq frees a zero-copy frame from a garbage collector thread that receives on a
    context of its own: a plain one but under gevent's patching. Under eventlet's, that
    thread is a green thread and its blocking receive stopped the whole process at the first
    ``send(copy=False)`` (eventlet.green.zmq hangs the same way)."""
    done = green.run(_ZERO_COPY)
    assert done.stdout.splitlines() == ["received True tracked True"], done.stdout + done.stderr
