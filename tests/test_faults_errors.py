"""Errors surface where the caller waits, on every async layer (``FAULT_LAYERS``, conftest.py).

A send that can never succeed fails from the awaited call, promptly: ``EHOSTUNREACH`` for a
``ROUTER_MANDATORY`` send to an identity that vanished (also while the send waits at the
HWM), ``zmq.Again`` at ``SNDTIMEO`` behind a dead consumer, ``EFSM`` for a REQ used out of
turn. Nothing waits forever.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import zmq

# anyio's plugin runs each test on each layer, awaited under anyio's cancel scopes.
pytestmark = pytest.mark.anyio

WAIT = 5.0
#: How soon a vanished peer must show (libzmq notices a closed tcp peer within milliseconds).
PROMPT = 2.0


@pytest.fixture
def anyio_backend(fault_layer: tuple[str, Any]) -> Any:
    """anyio's plugin runs each test on the loop of its layer (see ``FAULT_LAYERS``)."""
    return fault_layer[1]


def ended_by_close(exc: BaseException | None) -> bool:
    """How a pending operation ends on close: cancelled (future layers) or ENOTSOCK (anyio)."""
    return exc is None or (isinstance(exc, zmq.ZMQError) and exc.errno == zmq.ENOTSOCK)


async def router_and_dealer(procs: Any, ctx: Any, **router_options: int) -> tuple[Any, Any]:
    """A ROUTER_MANDATORY and a DEALER with identity b"d" it has heard from, over tcp."""
    router, dealer = procs.router_mandatory_pair(ctx, zmq, **router_options)
    with anyio.fail_after(WAIT):
        await dealer.send(b"hi")
        assert await router.recv_multipart() == [b"d", b"hi"]
    return router, dealer


async def test_router_mandatory_send_to_a_vanished_identity(layer_ctx: Any, procs: Any) -> None:
    router, dealer = await router_and_dealer(procs, layer_ctx)
    await router.send_multipart([b"d", b"ok"])
    dealer.close(linger=0)
    started = time.monotonic()
    with anyio.fail_after(PROMPT), pytest.raises(zmq.ZMQError) as raised:
        while True:  # until the ROUTER has heard that the peer is gone
            await router.send_multipart([b"d", b"x"])
            await anyio.sleep(0.01)
    assert raised.value.errno == zmq.EHOSTUNREACH
    assert time.monotonic() - started < PROMPT
    router.close(linger=0)


async def test_router_mandatory_send_waiting_at_hwm_when_its_identity_vanishes(
    layer_ctx: Any, procs: Any
) -> None:
    """A blocking ROUTER_MANDATORY send waits at the HWM; if its peer goes, it fails then.

    Blocking pyzmq does (libzmq retries the send after each command it processes); EVENTS
    never shows POLLOUT again, since no pipe is left to write to.
    """
    router, dealer = await router_and_dealer(procs, layer_ctx, SNDHWM=1)
    outcome: list[BaseException | None] = []

    async def flood() -> None:
        try:
            while True:
                await router.send_multipart([b"d", b"x" * 1000])
        except zmq.ZMQError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(flood)
        with anyio.fail_after(WAIT):
            while router.get(zmq.EVENTS) & zmq.POLLOUT:
                await anyio.sleep(0.01)  # until a send waits at the HWM
        await anyio.sleep(0.05)
        assert not outcome
        dealer.close(linger=0)
        with anyio.move_on_after(PROMPT):
            while not outcome:
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert outcome, f"the waiting send was not failed within {PROMPT}s of its peer's exit"
    error = outcome[0]
    assert isinstance(error, zmq.ZMQError) and error.errno == zmq.EHOSTUNREACH, error
    router.close(linger=0)


async def test_a_send_blocked_behind_a_dead_consumer(layer_ctx: Any, procs: Any) -> None:
    """PUSH at its HWM to a PULL that is gone: SNDTIMEO raises Again; close(linger=0) wakes."""
    push, pull = procs.push_to_a_consumer(layer_ctx, zmq)
    pull.context.destroy(linger=0)  # the consumer dies: its end of the connection closes
    push.sndtimeo = 200
    with anyio.fail_after(WAIT), pytest.raises(zmq.Again):
        while True:
            await push.send(b"x")
    started = time.monotonic()
    with anyio.fail_after(WAIT), pytest.raises(zmq.Again):
        await push.send(b"x")
    assert 0.15 < time.monotonic() - started < 2.0
    push.sndtimeo = -1
    outcome: list[BaseException | None] = []

    async def send() -> None:
        try:
            await push.send(b"x")
        except BaseException as exc:
            outcome.append(None if isinstance(exc, anyio.get_cancelled_exc_class()) else exc)
            if not isinstance(exc, Exception):
                raise
        else:
            outcome.append(AssertionError("sent to a dead consumer"))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send)
            await anyio.sleep(0.1)
            assert not outcome
            push.close(linger=0)
    # Future layers see their awaited future cancelled; the anyio layer gets ENOTSOCK.
    assert len(outcome) == 1 and ended_by_close(outcome[0]), outcome


async def test_efsm_on_a_req_used_out_of_turn(layer_ctx: Any) -> None:
    req = layer_ctx.socket(zmq.REQ)
    rep = layer_ctx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req.connect(f"tcp://127.0.0.1:{port}")
    with anyio.fail_after(WAIT):
        with pytest.raises(zmq.ZMQError) as raised:
            await req.recv()  # nothing was asked
        assert raised.value.errno == zmq.EFSM
        await req.send(b"ask")
        with pytest.raises(zmq.ZMQError) as raised:
            await req.send(b"again")  # the answer is due first
        assert raised.value.errno == zmq.EFSM
        assert await rep.recv() == b"ask"
        with pytest.raises(zmq.ZMQError) as raised:
            await rep.recv()  # REP owes an answer
        assert raised.value.errno == zmq.EFSM
        await rep.send(b"answer")
        assert await req.recv() == b"answer"
    # A REQ with no peer yet: its first send waits; a second one queued behind it fails
    # with EFSM once the first goes, rather than staying queued.
    lonely = layer_ctx.socket(zmq.REQ)
    port = lonely.bind_to_random_port("tcp://127.0.0.1")
    outcomes: list[BaseException | None] = []

    async def send(message: bytes) -> None:
        try:
            await lonely.send(message)
        except zmq.ZMQError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send, b"first")
            await anyio.sleep(0.05)
            tasks.start_soon(send, b"second")
            await anyio.sleep(0.05)
            assert outcomes == []
            late = layer_ctx.socket(zmq.REP)
            late.connect(f"tcp://127.0.0.1:{port}")
        assert outcomes[0] is None
        second = outcomes[1]
        assert isinstance(second, zmq.ZMQError) and second.errno == zmq.EFSM, second
        assert await late.recv() == b"first"
    for sock in (req, rep, lonely, late):
        sock.close(linger=0)
