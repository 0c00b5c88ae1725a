"""ZMQStream (callbacks, on asyncio and uvloop) under a peer restart and errors it must report.

A SIGKILLed peer restarted on its endpoint (tests/faultprocs.py): the stream's standing
receive is served by the new peer, costs no CPU meanwhile, and loses nothing sent after the
restart. A ROUTER_MANDATORY send to a vanished identity reaches the stream's error path
(``on_send`` gets the error as its status, as the peer's stream does), also when the send
was waiting at the HWM.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from zmq_async.stream import ZMQStream

WAIT = 10.0
COUNT = 200


async def until(condition: Callable[[], Any], timeout: float = WAIT) -> None:
    """Let the loop run until ``condition()``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def idle_cpu() -> float:
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(1.0)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


@pytest.mark.slow
@pytest.mark.timeout(60)  # starts, kills and restarts peer processes
@pytest.mark.asyncio
async def test_dealer_router_pub_sub_restart(ctx: Any, peer: Any, procs: Any) -> None:
    echo, pub = peers = peer("echo", "pub")
    dealer = ZMQStream(ctx.socket(zmq.DEALER, socket_class=zmq.Socket))  # streams drive plain ones
    dealer.connect(echo.endpoint)
    replies: list[bytes] = []
    dealer.on_recv(lambda msg: replies.append(msg[0]))
    sock = ctx.socket(zmq.SUB, socket_class=zmq.Socket)
    sock.subscribe(b"")
    sub = ZMQStream(sock)
    sub.connect(pub.endpoint)
    published: list[bytes] = []
    sub.on_recv(lambda msg: published.append(msg[0]))
    dealer.send(b"hello")
    await until(lambda: replies == [b"hello"] and len(published) >= 5)
    for i in range(50):
        dealer.send(b"before %d" % i)
    for process in peers:
        process.kill()
    used = await idle_cpu()
    assert used < procs.IDLE_CPU, f"{used:.4f} s of CPU per second waiting for dead peers"
    assert all(message.startswith(b"1 ") for message in published)
    replies.clear()
    await asyncio.get_running_loop().run_in_executor(None, procs.start_all, peers)
    dealer.send(b"after")
    await until(lambda: b"after" in replies)
    assert all(reply.startswith(b"before") for reply in replies[:-1])
    replies.clear()
    for i in range(COUNT):
        dealer.send(b"%d" % i)
    await until(lambda: len(replies) >= COUNT)
    assert replies == [b"%d" % i for i in range(COUNT)]
    await until(lambda: sum(message.startswith(b"2 ") for message in published) >= 50)
    run_2 = [int(message.split()[1]) for message in published if message.startswith(b"2 ")]
    assert run_2 == list(range(run_2[0], run_2[0] + len(run_2)))  # no gap
    dealer.close(linger=0)
    sub.close(linger=0)


@pytest.mark.parametrize("at_hwm", [False, True], ids=["at-once", "waiting-at-hwm"])
@pytest.mark.timeout(30)
@pytest.mark.asyncio
async def test_router_mandatory_error_reaches_on_send(ctx: Any, at_hwm: bool) -> None:
    router = ctx.socket(zmq.ROUTER)
    router.router_mandatory = 1
    router.sndhwm = 1
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.identity = b"d"
    dealer.rcvhwm = 1
    dealer.connect(f"tcp://127.0.0.1:{port}")
    await dealer.send(b"hi")
    assert await asyncio.wait_for(router.recv_multipart(), WAIT) == [b"d", b"hi"]
    with pytest.warns(RuntimeWarning, match="plain shadow"):  # a future socket, as the peer
        stream = ZMQStream(router)
    statuses: list[Any] = []
    stream.on_send(lambda msg, status: statuses.append(status))
    if at_hwm:
        deadline = time.monotonic() + WAIT
        while not stream.sending():  # until the peer's buffers are full and sends wait
            assert time.monotonic() < deadline
            for _ in range(100):
                stream.send_multipart([b"d", b"x" * 10_000])
            await asyncio.sleep(0.05)
        assert all(status is None for status in statuses)
    dealer.close(linger=0)
    started = time.monotonic()
    if not at_hwm:
        while not any(isinstance(status, zmq.ZMQError) for status in statuses):
            stream.send_multipart([b"d", b"x"])
            await asyncio.sleep(0.01)
            assert time.monotonic() - started < WAIT, "no error after the peer left"
    else:
        # A ROUTER_MANDATORY socket shows POLLOUT while some pipe has room: libzmq may drop
        # the gone peer's pipe before a last POLLOUT (seen on a loaded machine), and the
        # waiting sends would wait on, here as with the peer's stream. Another peer gives
        # POLLOUT back; until libzmq sees the first gone, a waiting send may still go out.
        other = ctx.socket(zmq.DEALER)
        other.connect(f"tcp://127.0.0.1:{port}")
        await until(lambda: any(isinstance(status, zmq.ZMQError) for status in statuses))
        other.close(linger=0)
    errors = [status for status in statuses if isinstance(status, zmq.ZMQError)]
    assert errors and errors[0].errno == zmq.EHOSTUNREACH, statuses[-3:]
    stream.close(linger=0)
