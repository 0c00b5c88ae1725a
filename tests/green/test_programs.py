"""Programs shaped like real gevent/eventlet programs, which nearly always monkeypatch first.

Run in the plain and in the monkeypatched process of each flavour (see conftest.py): patched,
``threading.get_ident()`` names a greenlet and ``threading.Thread`` makes greenlets, yet every
greenlet of one OS thread must share the socket's hub, while a real OS thread is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from zmq_async import _thread


def test_a_socket_used_in_the_main_greenlet_then_by_spawned_ones(green, zmq, pair):
    # issue 9's first program: the main greenlet parks on the socket, then others do.
    push, pull = pair
    sender = green.spawn(lambda: (green.sleep(0.01), push.send(b"w")))
    assert pull.recv() == b"w"  # parks: nothing has arrived yet
    green.get(sender)
    hub = zmq.Socket._current_hub()
    receivers = [green.spawn(lambda: (pull.recv(), zmq.Socket._current_hub())) for _ in range(3)]
    green.sleep(0.01)  # all three park in the hub the main greenlet used
    assert not any(green.dead(g) for g in receivers)
    for i in range(3):
        push.send(b"%d" % i)
    results = [green.get(g) for g in receivers]
    assert [message for message, _ in results] == [b"0", b"1", b"2"]  # FIFO
    assert all(their_hub is hub for _, their_hub in results)
    assert hub.thread == _thread.get_ident()


@pytest.mark.timeout(30)
def test_a_locust_style_server_answers_20_clients_each_with_its_req_socket(green, zmq, ctx):
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    rounds = 10

    def serve() -> None:
        while True:
            rid, empty, request = router.recv_multipart()
            router.send_multipart([rid, empty, b"re:" + request])

    def client(n: int) -> list[bytes]:
        req = ctx.socket(zmq.REQ)  # made and owned by this greenlet
        req.connect(f"tcp://127.0.0.1:{port}")
        try:
            answers = []
            for i in range(rounds):
                req.send(b"%d.%d" % (n, i))
                answers.append(req.recv())
            return answers
        finally:
            req.close(linger=0)

    server = green.spawn(serve)
    clients = [green.spawn(client, n) for n in range(20)]
    answers = [green.get(g, 20) for g in clients]
    assert answers == [[b"re:%d.%d" % (n, i) for i in range(rounds)] for n in range(20)]
    assert not green.dead(server)
    green.kill(server)


def test_a_threading_thread_receiver(green, zmq, pair):
    # Patched, a threading.Thread is a greenlet of this OS thread: it shares the socket with
    # a greenlet that waits on it first. Unpatched, it is a real thread: refused.
    push, pull = pair
    first = green.spawn(pull.recv)  # the main thread's hub now serves the socket
    green.sleep(0.01)
    received: list[Any] = []

    def receiver() -> None:
        try:
            for _ in range(3):
                received.append(pull.recv())
        except BaseException as exc:
            received.append(exc)

    thread = threading.Thread(target=receiver)
    thread.start()
    if green.patched:
        green.sleep(0.01)  # the "thread" parks behind the first waiter
        for i in range(4):
            push.send(b"%d" % i)
    thread.join(5)
    assert not thread.is_alive()
    if green.patched:
        assert received == [b"1", b"2", b"3"]
        assert green.get(first) == b"0"
    else:
        assert len(received) == 1 and isinstance(received[0], RuntimeError), received
        push.send(b"x")
        assert green.get(first) == b"x"


def test_a_pool_of_greenlets_each_with_its_own_socket(green, zmq, ctx):
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve() -> None:
        while True:
            rid, request = router.recv_multipart()
            router.send_multipart([rid, request[::-1]])

    def work(n: int) -> bytes:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(f"tcp://127.0.0.1:{port}")
        try:
            dealer.send(b"job-%d" % n)
            return dealer.recv()  # type: ignore[no-any-return]
        finally:
            dealer.close(linger=0)

    server = green.spawn(serve)
    with green.Timeout(15, AssertionError("the pool did not finish in 15s")):
        results = green.pool_map(5, work, range(30))
    assert results == [(b"job-%d" % n)[::-1] for n in range(30)]
    green.kill(server)


# -- whole programs, zmq_async imported before or after patching ------------------------------

PATCH = {
    "gevent": "from gevent import monkey; monkey.patch_all()",
    "eventlet": "import eventlet; eventlet.monkey_patch()",
}
IMPORT = {
    "gevent": "import zmq_async.green as zmq",
    "eventlet": "import zmq_async.green.eventlet as zmq",
}
#: The green classes (and the framework) load on first use: this loads them at once.
LOAD = "; zmq.Poller"
#: Runs after both lines, in either order; prints one line per check.
PROGRAM = """
import threading
import {flavour}
spawn = {flavour}.spawn

ctx = zmq.Context()
pull = ctx.socket(zmq.PULL)
port = pull.bind_to_random_port("tcp://127.0.0.1")
push = ctx.socket(zmq.PUSH)
push.connect(f"tcp://127.0.0.1:{{port}}")
spawn(lambda: ({flavour}.sleep(0.01), push.send(b"w")))
print(pull.recv())                                   # the main greenlet parks

g = spawn(lambda: [pull.recv() for _ in range(3)])   # then a spawned one
{flavour}.sleep(0.01)
for i in range(3):
    push.send(b"%d" % i)
print(g.{get}())

got = []
t = threading.Thread(target=lambda: got.append(pull.recv()))
t.start()
{flavour}.sleep(0.01)
push.send(b"t")
t.join(5)
print(got)

def other():
    try:
        pull.rcvtimeo = 10
        pull.recv()
    except RuntimeError as exc:
        return "RuntimeError"
    return "nothing raised"
waiter = spawn(pull.recv)
{flavour}.sleep(0.01)
print({real_thread})
push.send(b"end")
print(waiter.{get}())
ctx.destroy(linger=0)
"""
REAL_THREAD = {
    "gevent": "gevent.get_hub().threadpool.apply(other)",
    "eventlet": "__import__('eventlet.tpool').tpool.execute(other)",
}


@pytest.mark.unpatched("the program patches itself, in a process of its own")
@pytest.mark.parametrize("order", ["imported after patching", "imported before", "loaded before"])
def test_a_monkeypatched_program(green, order):
    first, second = PATCH[green.name], IMPORT[green.name]
    if order != "imported after patching":
        first, second = second + (LOAD if order == "loaded before" else ""), first
    body = PROGRAM.format(
        flavour=green.name,
        get="get" if green.name == "gevent" else "wait",
        real_thread=REAL_THREAD[green.name],
    )
    code = f"import warnings\nwarnings.simplefilter('ignore')\n{first}\n{second}\n{body}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.stdout.splitlines() == [
        "b'w'",
        "[b'0', b'1', b'2']",
        "[b't']",
        "RuntimeError",
        "b'end'",
    ], done.stderr
    assert (done.returncode, done.stderr) == (0, "")
