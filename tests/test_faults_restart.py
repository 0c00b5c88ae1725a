"""A peer process SIGKILLed mid-stream and restarted on the same endpoint, on every async layer.

The peer (tests/faultprocs.py) binds; our side connects and lives through the outage: the
exchange resumes, an operation pending when the peer died is served by the restarted one,
the wait costs no CPU meanwhile, and every message sent after the restart arrives. One
scenario serves each layer: zmq_async.asyncio (asyncio, uvloop), zmq_async.tornado (under
an IOLoop) and zmq_async.anyio (asyncio, trio), all awaited under anyio's cancel scopes.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import zmq

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

WAIT = 10.0
#: CPU the waiting side may use per second while its peer is gone (the wait is measured).
IDLE_CPU = 0.01
IDLE_FOR = 1.0
#: Messages sent after the restart, each of which must arrive.
COUNT = 200


async def idle_cpu() -> float:
    """CPU seconds this process used per second over a quiet :data:`IDLE_FOR` seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    await anyio.sleep(IDLE_FOR)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def test_dealer_router(on_layer: Any, peer: Any) -> None:
    echo = peer("echo")

    async def scenario(ctx: Any) -> None:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(echo.endpoint)
        with anyio.fail_after(WAIT):
            await dealer.send(b"hello")
            assert await dealer.recv() == b"hello"
            for i in range(50):  # mid-stream: requests in flight when the peer dies
                await dealer.send(b"before %d" % i)
        echo.kill()
        replies: list[bytes] = []

        async def receive() -> None:
            while True:
                reply = await dealer.recv()
                replies.append(reply)
                if reply == b"after":
                    return

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            used = await idle_cpu()
            assert used < IDLE_CPU, f"{used:.4f} s of CPU per second waiting for a dead peer"
            echo.start()
            with anyio.fail_after(WAIT):
                await dealer.send(b"after")
        # The pending receive was served by the restarted peer (late echoes may come first).
        assert replies[-1] == b"after"
        assert all(reply.startswith(b"before") for reply in replies[:-1])
        with anyio.fail_after(WAIT):
            for i in range(COUNT):
                await dealer.send(b"%d" % i)
            assert [await dealer.recv() for _ in range(COUNT)] == [b"%d" % i for i in range(COUNT)]
        dealer.close(linger=0)

    on_layer(scenario)


def test_pub_sub(on_layer: Any, peer: Any) -> None:
    pub = peer("pub")

    async def scenario(ctx: Any) -> None:
        sub = ctx.socket(zmq.SUB)
        sub.subscribe(b"")
        sub.connect(pub.endpoint)
        with anyio.fail_after(WAIT):
            for _ in range(5):
                assert (await sub.recv()).startswith(b"1 ")
        pub.kill()  # mid-stream: it publishes every 2 ms
        first_of_run_2: list[bytes] = []

        async def receive() -> None:
            while not (message := await sub.recv()).startswith(b"2 "):
                pass  # what was still on the wire from the first run
            first_of_run_2.append(message)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            await anyio.sleep(0.2)  # the last of the first run drains
            used = await idle_cpu()
            assert used < IDLE_CPU, f"{used:.4f} s of CPU per second waiting for a dead peer"
            assert not first_of_run_2
            pub.start()
            with anyio.fail_after(WAIT):
                while not first_of_run_2:
                    await anyio.sleep(0.01)
        # The stream resumes whole: consecutive sequence numbers from the new run.
        seq = int(first_of_run_2[0].split()[1])
        with anyio.fail_after(WAIT):
            for expected in range(seq + 1, seq + 101):
                assert await sub.recv() == b"2 %d" % expected
        sub.close(linger=0)

    on_layer(scenario)


def test_push_pull(on_layer: Any, peer: Any) -> None:
    pull = peer("pull")

    async def scenario(ctx: Any) -> None:
        push = ctx.socket(zmq.PUSH)
        push.sndhwm = 10
        push.connect(pull.endpoint)
        with anyio.fail_after(WAIT):
            for i in range(20):
                await push.send(b"before %d" % i)
            pull.expect("before 9")
        pull.kill()  # mid-stream: messages in flight and in our pipe
        sent = 0

        async def fill() -> None:
            nonlocal sent
            while True:  # until the pipe to the dead peer is full and a send waits
                await push.send(b"during %d" % sent)
                sent += 1

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fill)
            used = await idle_cpu()
            assert used < IDLE_CPU, f"{used:.4f} s of CPU per second waiting for a dead peer"
            stuck_at = sent
            assert stuck_at < 1000, "sends to a dead peer never blocked"
            pull.start()
            with anyio.fail_after(WAIT):
                while sent <= stuck_at:  # the pending send went to the restarted peer
                    await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()
        with anyio.fail_after(WAIT):
            for i in range(COUNT):
                await push.send(b"after %d" % i)
            arrived = [
                line
                for line in await anyio.to_thread.run_sync(pull.expect, f"after {COUNT - 1}")
                if line.startswith("after")
            ]
        assert arrived == [f"after {i}" for i in range(COUNT - 1)]
        push.close(linger=0)

    on_layer(scenario)


def test_req_relaxed_correlate(on_layer: Any, peer: Any) -> None:
    server = peer("sink")

    async def scenario(ctx: Any) -> None:
        req = ctx.socket(zmq.REQ)
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

    on_layer(scenario)
