"""A shadow socket dropped without ``close()`` stops its reactor on its loop.

A shadow never closes the libzmq socket, but once it has waited, its reactor watches the FD
and the loop's callback keeps that reactor alive, run at every wakeup of the FD: a service
that makes a shadow per request and drops it grew a callback per request, for ever.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import zmq

import zmq_async.asyncio as zaio
import zmq_async.tornado as ztornado

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]

SHADOWS = {"asyncio": zaio.Socket.shadow, "tornado": ztornado.Socket.shadow}


@pytest.mark.parametrize("kind", list(SHADOWS))
async def test_a_dropped_shadow_that_waited_stops_its_reactor(kind: str) -> None:
    ctx = zaio.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    try:
        pull.bind("inproc://dropped-shadows")
        push.connect("inproc://dropped-shadows")
        refs = []
        for index in range(20):
            shadow = SHADOWS[kind](pull.underlying)
            pending = shadow.recv()  # it waits: its reactor watches the FD
            await asyncio.sleep(0)
            await push.send(b"%d" % index)
            assert await asyncio.wait_for(pending, 10) == b"%d" % index
            refs.append(weakref.ref(shadow._reactor))
            del shadow, pending
        gc.collect()
        for _ in range(3):  # the stops were handed to the loop: let it run them
            await asyncio.sleep(0)
        live = [ref() for ref in refs if ref() is not None and not ref().closed]
        assert not live, f"{len(live)} of 20 dropped shadows still watch the FD"
        # The socket they shadowed is untouched and still served.
        await push.send(b"after")
        assert await asyncio.wait_for(pull.recv(), 10) == b"after"
    finally:
        ctx.destroy(linger=0)


async def test_a_dropped_shadow_with_an_operation_pending_still_serves_it() -> None:
    """A pending Future does not hold its socket: dropping the shadow must not cancel it."""
    ctx = zaio.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    try:
        pull.bind("inproc://dropped-shadow-pending")
        push.connect("inproc://dropped-shadow-pending")
        pending = zaio.Socket.shadow(pull.underlying).recv()
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)
        await push.send(b"kept")
        assert await asyncio.wait_for(pending, 10) == b"kept"
    finally:
        ctx.destroy(linger=0)
