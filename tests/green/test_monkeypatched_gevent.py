"""gevent-only: a monkeypatched program (the usual gevent setup) works the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
from gevent import monkey
monkey.patch_all()
import time
import gevent
import zmq_async.green as zmq

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

hb = gevent.spawn(heartbeat)
server = gevent.spawn(serve)
asks = [gevent.spawn(ask, d, i) for i, d in enumerate(dealers)]
gevent.joinall(asks, timeout=5, raise_error=True)
print(sorted(g.value for g in asks) == [b"%d!" % i for i in range(5)])
start = len(ticks)
deadline = time.monotonic() + 10
while len(ticks) < start + 10 and time.monotonic() < deadline:
    time.sleep(0.05)  # patched: the heartbeat ticks meanwhile, the server waits in recv
print(len(ticks) >= start + 10)
hb.kill()

def close_on_eterm():
    try:
        router.recv()
    except zmq.ContextTerminated:
        router.close()
        return "ETERM"
server.kill()
waiter = gevent.spawn(close_on_eterm)
gevent.sleep(0.01)
for dealer in dealers:
    dealer.close(linger=0)
ctx.term()  # the router is still open: the waiter gets ETERM and closes it
print(waiter.get(timeout=1))
"""


@pytest.mark.unpatched("the program patches itself, in a process of its own")
def test_monkeypatched_program_runs():
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROGRAM], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "ETERM"], (out.stdout, out.stderr)
    assert out.stderr == ""
