"""Regressions the model-checked reactor (tests/test_model.py) found, as plain tests."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest
import zmq

import zmq_async.anyio

#: Both regressions are trio's own (its one FD watcher per socket): anyio's plugin runs them
#: on trio alone.
TRIO_ONLY = pytest.mark.parametrize("anyio_backend", ["trio"])


@pytest.mark.anyio
@pytest.mark.timeout(30)
@TRIO_ONLY
async def test_trio_a_receive_queued_behind_one_that_timed_out_is_still_served() -> None:
    """trio: when the task watching the FD for everyone times out, the next waiter watches.

    The model (``--hypothesis-profile=long``) shrank it to two sends with SNDTIMEO behind a
    closed peer, the second still pending after its deadline: the first waiter's own timer
    ended its wait, and it left without handing the FD (and the timers) to the task parked
    behind it, which then slept for ever, through its deadline and through the message
    below.
    """

    ctx = zmq_async.anyio.Context()
    pull = ctx.socket(zmq.PULL)
    push = ctx.socket(zmq.PUSH)
    try:
        pull.bind("inproc://regression-handoff")
        push.connect("inproc://regression-handoff")
        results: dict[str, Any] = {}

        async def first() -> None:
            pull.rcvtimeo = 30
            with pytest.raises(zmq.Again):
                await pull.recv()
            results["first"] = "timed out"

        async def second() -> None:
            results["second"] = await pull.recv()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(first)
                await anyio.wait_all_tasks_blocked()
                pull.rcvtimeo = -1  # the second waits without a deadline
                tasks.start_soon(second)
                await anyio.wait_all_tasks_blocked()
                while "first" not in results:
                    await anyio.sleep(0.01)
                await push.send(b"after")
        assert results == {"first": "timed out", "second": b"after"}
    finally:
        ctx.destroy(linger=0)


@pytest.mark.anyio
@pytest.mark.timeout(30)
@TRIO_ONLY
async def test_trio_sends_with_sndtimeo_behind_a_closed_peer_all_time_out() -> None:
    """trio: each of several sends blocked at HWM raises Again at its SNDTIMEO (the model's
    own shrunk case: the second one never did)."""

    ctx = zmq_async.anyio.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        for sock in (a, b):
            sock.sndhwm = sock.rcvhwm = 1
            sock.linger = 0
        a.bind("inproc://regression-sndtimeo")
        b.connect("inproc://regression-sndtimeo")
        a.close()
        # The pipe to the closed peer may still take a message: fill it first.
        with contextlib.suppress(zmq.Again):
            while True:
                await b.send(b"fill", zmq.NOBLOCK)
        b.sndtimeo = 30
        outcomes: list[str] = []

        async def send() -> None:
            try:
                await b.send(b"x")
                outcomes.append("sent")
            except zmq.Again:
                outcomes.append("timed out")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tasks:
                for _ in range(2):
                    # Queued 10 ms apart: the first one's timer is not the second's.
                    tasks.start_soon(send)
                    await anyio.wait_all_tasks_blocked()
                    await anyio.sleep(0.01)
        assert outcomes == ["timed out", "timed out"]
    finally:
        ctx.destroy(linger=0)
