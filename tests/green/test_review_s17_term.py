"""Review of round 17's green term (a lingering term() in a worker thread; eventlet's wake pipe
listened to only while needed), attacked as programs use term() and destroy(): interrupted,
raced, repeated, from a hub callback, from a finalizer. Both flavours, plain and patched."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest


def _lingering(ctx: Any, zmq: Any, endpoint: str, linger: int) -> Any:
    """A REQ of ``ctx`` with a request queued for ``endpoint``, where no one listens."""
    req = ctx.socket(zmq.REQ)
    req.linger = linger
    req.connect(endpoint)
    req.send(b"unsent")
    return req


def _hub_listeners(green: Any) -> set[tuple[str, int]]:
    """eventlet's hub listeners, as (event, FD) (eventlet's own tests check none is left)."""
    if green.name != "eventlet":
        return set()
    import eventlet.hubs

    hub = eventlet.hubs.get_hub()
    return {
        (listener.evtype, listener.fileno) for listener in [*hub.get_readers(), *hub.get_writers()]
    }


@pytest.fixture
def no_listener_left(green: Any) -> Iterator[None]:
    """Check that the test leaves eventlet's hub no listener it did not have before."""
    before = _hub_listeners(green)
    yield
    assert _hub_listeners(green) <= before


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["timeout", "kill"])
@pytest.mark.usefixtures("no_listener_left")
def test_an_interrupted_lingering_term_still_terminates(green, zmq, procs, how):
    """A Timeout or a kill thrown into a greenlet waiting out a lingering term() leaves the
    term running: the context ends terminated, a second term() waits for it, and eventlet's
    hub keeps no listener."""
    context = zmq.Context()
    _lingering(context, zmq, procs.free_endpoint(), 500).close()
    start = time.monotonic()
    if how == "timeout":
        with pytest.raises(green.Timeout), green.Timeout(0.1):
            context.term()
    else:
        terminator = green.spawn(context.term)
        green.sleep(0.1)
        green.kill(terminator)
        assert green.dead(terminator)
    assert not context.closed  # the linger is not over yet
    green.get(green.spawn(context.term), timeout=10)
    assert context.closed
    assert time.monotonic() - start >= 0.4


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_listener_left")
def test_term_wakes_every_greenlet_still_using_its_sockets(green, zmq, procs):
    """term() with sockets still open, parked in recv, poll and a full send: each greenlet
    gets ETERM, closes its socket, and the term (in its worker thread) then returns."""
    context = zmq.Context()
    a = context.socket(zmq.PAIR)
    port = a.bind_to_random_port("tcp://127.0.0.1")
    b = context.socket(zmq.PAIR)
    b.connect(f"tcp://127.0.0.1:{port}")
    push = context.socket(zmq.PUSH)
    push.sndhwm = 1
    push.linger = 200
    push.connect(procs.free_endpoint())
    poller = zmq.Poller()
    poller.register(b, zmq.POLLIN)
    errors: dict[str, Any] = {}

    def use(name: str, sock: Any, call: Any) -> None:
        try:
            while True:
                call()
        except zmq.ZMQError as exc:
            errors[name] = exc.errno
        sock.close()

    users = [
        green.spawn(use, "recv", a, a.recv),
        green.spawn(use, "poll", b, poller.poll),
        green.spawn(use, "send", push, lambda: push.send(b"x")),
    ]
    green.sleep(0.1)
    green.get(green.spawn(context.term), timeout=10)
    for user in users:
        green.get(user)
    assert errors == dict.fromkeys(("recv", "poll", "send"), zmq.ETERM)
    assert context.closed


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_listener_left")
def test_destroy_and_term_from_many_greenlets_at_once(green, zmq, procs):
    """Ten greenlets destroy or term one lingering context together: all return once it is
    terminated, none raises."""
    context = zmq.Context()
    for _ in range(2):
        _lingering(context, zmq, procs.free_endpoint(), 200)
    calls = [green.spawn(context.destroy if i % 2 else context.term) for i in range(10)]
    for call in calls:
        green.get(call, timeout=10)
    assert context.closed


def _count(path: str) -> int:
    return len(os.listdir(path))


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("no_listener_left")
def test_lingering_contexts_made_and_destroyed_in_a_loop_leave_nothing(green, zmq, procs):
    """A hundred contexts, each destroyed after a short linger, one after the other and then
    thirty at once: OS threads and FDs do not pile up (gevent's pool keeps its 10 workers;
    eventlet's threads end with their term), and eventlet's hub keeps no listener."""
    endpoint = procs.free_endpoint()

    def one(_: object = None) -> bool:
        context = zmq.Context()
        _lingering(context, zmq, endpoint, 5)
        context.destroy()
        return bool(context.closed)

    one()  # the first makes the hub's pool, driver and wake pipe
    threads, fds = _count("/proc/self/task"), _count("/proc/self/fd")
    assert all(one() for _ in range(70))
    assert all(green.pool_map(30, one, range(30)))
    # gevent's pool may grow to its 10 workers; eventlet's threads may be ending
    assert _count("/proc/self/task") <= threads + 10
    assert _count("/proc/self/fd") <= fds + 2


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("no_listener_left")
def test_a_lingering_destroy_in_a_hub_callback_waits_in_the_hub(green, zmq, procs):
    """``ctx.destroy()`` from a hub callback cannot park: libzmq's term waits there, inline,
    and the context ends terminated."""
    context = zmq.Context()
    _lingering(context, zmq, procs.free_endpoint(), 100)
    done: list[bool] = []

    def destroy() -> None:
        context.destroy()
        done.append(context.closed)

    if green.name == "gevent":
        import gevent

        gevent.get_hub().loop.run_callback(destroy)
    else:
        import eventlet.hubs

        eventlet.hubs.get_hub().schedule_call_global(0, destroy)
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        green.sleep(0.01)
    assert done == [True]


#: A program (args: endpoint) whose client object, in a reference cycle with its context and
#: its socket (an unsent request, LINGER 300 ms), destroys the context in ``__del__``, as
#: programs tidy up. The collector runs it with the socket's weak reference already cleared:
#: destroy() cannot close that socket.
_DESTROY_IN_DEL = r"""
(endpoint,) = args
class Client:
    def __init__(self):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.REQ)
        self.socket.linger = 300
        self.socket.connect(endpoint)
        self.socket.send(b"unsent")
        self.me = self

    def __del__(self):
        self.context.destroy()
        contexts.append(self.context)  # kept, to see it terminated after the collection
        print("destroyed", flush=True)

contexts = []
hub.sleep(0)  # the hub is made, as in any running program
Client()
gc.collect()
print("collected", contexts[0].closed, flush=True)
"""


@pytest.mark.timeout(60)
def test_a_context_destroyed_by_a_finalizer_with_its_sockets_does_not_hang(green, procs):
    """A client object destroying its context in ``__del__``, collected with its socket in
    one cycle. The collector clears the socket's weak reference first, so destroy() cannot
    close it, and libzmq's term waited for that socket for ever, holding the whole program
    (its finalizer runs only after this one): zmq.green never hangs here (its hub holds its
    sockets). The context terminates once the collection has closed the socket."""
    done = green.run(_DESTROY_IN_DEL, procs.free_endpoint())
    assert done.stdout == "destroyed\ncollected True\n", done.stdout + done.stderr
    assert done.returncode == 0, done.stderr


#: A program whose lingering term() runs (in its worker thread) when another greenlet forks:
#: the child terms its copy of the context, then uses a context of its own.
_FORK_DURING_TERM = r"""
(endpoint,) = args
context = zmq.Context()
req = context.socket(zmq.REQ)
req.linger = 1500
req.connect(endpoint)
req.send(b"unsent")
req.close()
terminator = hub.spawn(context.term)
hub.sleep(0.1)
pid = os.fork()
if pid == 0:
    signal.alarm(10)
    if flavour == "gevent" and patching == "plain":
        hub.reinit()  # gevent requires it after a plain os.fork
    with hub.Timeout(5):
        context.term()
    print("child", context.closed, flush=True)
    own = zmq.Context()
    own.socket(zmq.PAIR).close()
    own.term()
    print("child's own", own.closed, flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
hub.sleep(0)
terminator.wait() if flavour == "eventlet" else terminator.get()
print("parent", context.closed, os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.timeout(60)
def test_a_child_forked_during_a_lingering_term_terms_its_copy(green, procs):
    """A fork while the parent's lingering term() runs in its worker thread: the child's copy
    of the context had that term's lock held, by a thread the child does not have, so a
    term() there waited for ever (pyzmq's term of a parent's context does nothing in the
    child). It must return at once, and the child's own contexts work."""
    done = green.run(_FORK_DURING_TERM, procs.free_endpoint())
    assert done.stdout == "child True\nchild's own True\nparent True 0\n", done.stdout + done.stderr


#: A program whose ten contexts each keep a request for a peer that never comes, with the
#: default LINGER (-1), destroyed by ten greenlets: those terms never end. Then it asks the
#: hub's pool for one call (gevent's default resolver runs getaddrinfo there).
_STUCK_TERMS = r"""
(endpoint,) = args
contexts = []
for _ in range(10):
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.connect(endpoint)
    req.send(b"unsent")
    contexts.append(context)
for context in contexts:
    hub.spawn(context.destroy)
hub.sleep(0.3)
try:
    with hub.Timeout(3):
        print("pool answers", hub.get_hub().threadpool.apply(lambda: 42), flush=True)
except hub.Timeout:
    print("pool starved", flush=True)
os._exit(0)
"""


@pytest.mark.timeout(60)
def test_terms_that_never_end_leave_gevents_pool_free(green, procs):
    """Ten terms waiting for ever (LINGER -1, unsent requests: pyzmq#809's programs) each
    hold one of the 10 workers of gevent's pool, which its default resolver also uses: every
    later DNS lookup (or other pool call) of the program waited for ever. (zmq.green froze
    the whole hub at the first such term.) Each term runs in an OS thread of its own."""
    if green.name != "gevent":
        pytest.skip("eventlet's terms never used a pool")
    done = green.run(_STUCK_TERMS, procs.free_endpoint())
    assert done.stdout == "pool answers 42\n", done.stdout + done.stderr
