"""A peer process SIGKILLed mid-stream and restarted on the same endpoint, on every async layer.

The peer (tests/faultprocs.py) binds; our side connects and lives through the outage: the
exchange resumes, an operation pending when the peer died is served by the restarted one,
the wait costs no CPU meanwhile, and every message sent after the restart arrives. One
test serves each layer (``FAULT_LAYERS`` in conftest.py): zmq_async.asyncio and
zmq_async.tornado (under an IOLoop) on asyncio and uvloop, and zmq_async.anyio on asyncio,
uvloop and trio, all run by anyio's pytest plugin and awaited under its cancel scopes.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import zmq

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(60)]

WAIT = 10.0
IDLE_FOR = 1.0
#: Messages sent after the restart, each of which must arrive.
COUNT = 200


@pytest.fixture
def anyio_backend(fault_layer: tuple[str, Any]) -> Any:
    """anyio's plugin runs each test on the loop of its layer (see ``FAULT_LAYERS``)."""
    return fault_layer[1]


async def idle_cpu() -> float:
    """CPU seconds this process used per second over a quiet :data:`IDLE_FOR` seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    await anyio.sleep(IDLE_FOR)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def test_dealer_router_pub_sub_push_pull(layer_ctx: Any, peer: Any, procs: Any) -> None:
    """Three peers killed mid-stream at once; one idle window measures the three waits."""
    peers = peer("echo", "pub", "pull")
    pull = peers[2]
    dealer, sub, push = procs.sockets_for_peers(layer_ctx, zmq, *peers)
    with anyio.fail_after(WAIT):
        await dealer.send(b"hello")
        assert await dealer.recv() == b"hello"
        for _ in range(5):
            assert (await sub.recv()).startswith(b"1 ")
        for i in range(20):
            await push.send(b"before %d" % i)
        await anyio.to_thread.run_sync(pull.expect, "before 9")
        for i in range(50):  # requests in flight when the echo dies
            await dealer.send(b"before %d" % i)
    for process in peers:
        process.kill()
    replies: list[bytes] = []
    first_of_run_2: list[bytes] = []
    sent = 0

    async def receive() -> None:
        while (reply := await dealer.recv()) != b"after":
            replies.append(reply)
        replies.append(reply)

    async def subscribe() -> None:
        while not (message := await sub.recv()).startswith(b"2 "):
            pass  # what was still on the wire from the first run
        first_of_run_2.append(message)

    async def fill() -> None:
        nonlocal sent
        while True:  # until the pipe to the dead PULL is full and a send waits
            await push.send(b"during %d" % sent)
            sent += 1

    async with anyio.create_task_group() as tasks:
        for task in (receive, subscribe, fill):
            tasks.start_soon(task)
        used = await idle_cpu()
        assert used < procs.IDLE_CPU, f"{used:.4f} s of CPU per second waiting for dead peers"
        assert not first_of_run_2 and b"after" not in replies
        stuck_at = sent
        assert stuck_at < 1000, "sends to a dead peer never blocked"
        await anyio.to_thread.run_sync(procs.start_all, peers)
        with anyio.fail_after(WAIT):
            await dealer.send(b"after")
            while not (first_of_run_2 and replies[-1:] == [b"after"] and sent > stuck_at):
                await anyio.sleep(0.01)  # each pending operation served by the new peer
        tasks.cancel_scope.cancel()
    # DEALER/ROUTER: late echoes of the first run at most, then every request answered.
    assert all(reply.startswith(b"before") for reply in replies[:-1])
    with anyio.fail_after(WAIT):
        for i in range(COUNT):
            await dealer.send(b"%d" % i)
        assert [await dealer.recv() for _ in range(COUNT)] == [b"%d" % i for i in range(COUNT)]
    # PUB/SUB: the new run's stream, whole: consecutive sequence numbers.
    seq = int(first_of_run_2[0].split()[1])
    with anyio.fail_after(WAIT):
        for expected in range(seq + 1, seq + 51):
            assert await sub.recv() == b"2 %d" % expected
    # PUSH/PULL: every message sent after the restart arrives, in order.
    with anyio.fail_after(WAIT):
        for i in range(COUNT):
            await push.send(b"after %d" % i)
        arrived = [
            line
            for line in await anyio.to_thread.run_sync(pull.expect, f"after {COUNT - 1}")
            if line.startswith("after")
        ]
    assert arrived == [f"after {i}" for i in range(COUNT - 1)]
    for sock in (dealer, sub, push):
        sock.close(linger=0)


async def test_req_relaxed_correlate(layer_ctx: Any, peer: Any) -> None:
    server = peer("sink")

    req = layer_ctx.socket(zmq.REQ)
    req.req_relaxed = 1
    req.req_correlate = 1
    req.connect(server.endpoint)
    with anyio.fail_after(WAIT):
        await req.send(b"lost")
        await anyio.to_thread.run_sync(server.expect, "got")
    server.kill()  # it took the request and died without answering
    with anyio.move_on_after(0.3) as waited:
        await req.recv()
    assert waited.cancelled_caught  # nothing came, nothing was consumed
    server.start("echo")
    with anyio.fail_after(WAIT):
        for i in range(20):
            await req.send(b"again %d" % i)
            assert await req.recv() == b"again %d" % i
    req.close(linger=0)
