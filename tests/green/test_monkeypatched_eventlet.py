"""eventlet-only: a monkeypatched program (the usual eventlet setup) works the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import warnings
warnings.filterwarnings("ignore", message="\\nEventlet is deprecated")
import eventlet
eventlet.monkey_patch()
import time

import zmq_async.green.eventlet as zmq

ctx = zmq.Context()
router = ctx.socket(zmq.ROUTER)
port = router.bind_to_random_port("tcp://127.0.0.1")
dealers = [ctx.socket(zmq.DEALER) for _ in range(5)]
for dealer in dealers:
    dealer.connect(f"tcp://127.0.0.1:{port}")

def serve():
    while True:
        rid, msg = router.recv_multipart()
        router.send_multipart([rid, msg + b"!"])

def ask(dealer, i):
    dealer.send(b"%d" % i)
    return dealer.recv()

ticks = []
def heartbeat():  # time.sleep is patched: it blocks only this greenlet
    while True:
        ticks.append(1)
        time.sleep(0.005)

hb = eventlet.spawn(heartbeat)
server = eventlet.spawn(serve)
asks = [eventlet.spawn(ask, d, i) for i, d in enumerate(dealers)]
with eventlet.Timeout(5):
    results = [g.wait() for g in asks]
print(sorted(results) == [b"%d!" % i for i in range(5)])
time.sleep(0.2)  # the server waits in recv meanwhile
print(len(ticks) >= 10)
hb.kill()

def close_on_eterm():
    try:
        router.recv()
    except zmq.ContextTerminated:
        router.close()
        return "ETERM"
server.kill()
waiter = eventlet.spawn(close_on_eterm)
eventlet.sleep(0.01)
for dealer in dealers:
    dealer.close(linger=0)
ctx.term()  # the router is still open: the waiter gets ETERM and closes it
with eventlet.Timeout(1):
    print(waiter.wait())
"""


@pytest.mark.unpatched("the program patches itself, in a process of its own")
def test_monkeypatched_program_runs():
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROGRAM], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "ETERM"], (out.stdout, out.stderr)
    assert out.stderr == ""


def test_a_thread_of_the_original_threading_module_is_refused(green, zmq, pair):
    # eventlet.patcher.original("threading") makes real OS threads, also when patched.
    import eventlet.patcher

    push, pull = pair
    first = green.spawn(pull.recv)
    green.sleep(0.01)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            pull.recv()
        except BaseException as exc:
            errors.append(exc)

    thread = eventlet.patcher.original("threading").Thread(target=other)
    thread.start()
    thread.join(5)  # blocks this OS thread: the other one does not need it
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
    push.send(b"x")
    assert green.get(first) == b"x"
