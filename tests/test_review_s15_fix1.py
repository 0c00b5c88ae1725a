"""Review fixes (session 15, fix1): a plain socket wrapped by an asyncio/tornado socket and
closed under it, and a BaseException raised inside a queued operation. Each test fails
without the fix it names; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
import zmq

import zmq_async.asyncio as zaio
import zmq_async.tornado as ztornado

WAIT = 10.0

pytestmark = pytest.mark.timeout(30)
async_test = pytest.mark.asyncio

WRAPPERS = {
    "asyncio.from_socket": lambda plain: zaio.Socket.from_socket(plain),
    "asyncio.Socket(plain)": lambda plain: zaio.Socket(plain),
    "asyncio.shadow=plain": lambda plain: zaio.Socket(shadow=plain),
    "tornado.shadow(plain)": lambda plain: ztornado.Socket.shadow(plain),
    "tornado.from_socket": lambda plain: ztornado.Socket.from_socket(plain),
}


# -- 1. a plain socket closed (or its context destroyed) under its wrapper ---------------------


@async_test
@pytest.mark.parametrize("how", ["close", "destroy"])
@pytest.mark.parametrize("wrapper", list(WRAPPERS))
async def test_closing_the_plain_socket_under_a_wrapper_ends_its_waiters_at_once(
    wrapper: str, how: str
) -> None:
    """Closing the plain socket (or ``ctx.destroy()``, which does) closes the wrapper first: its
    pending receive ends at once and a socket made right after, which gets the same FD number,
    receives its own message. The stale waiter stayed queued on the freed FD (until the
    re-check noticed), taking the new socket's messages or keeping its FD unwatched.
    """
    contexts: list[zmq.Context[Any]] = [zmq.Context()]
    try:
        plain = contexts[0].socket(zmq.PULL)
        plain.bind("inproc://fix1-old")
        fd = plain.FD
        old = WRAPPERS[wrapper](plain)
        stale = old.recv()
        await asyncio.sleep(0.01)  # a loop iteration: the FD reader is added
        assert not stale.done()
        if how == "close":
            plain.close(linger=0)
        else:
            contexts[0].destroy(linger=0)
        assert old.closed
        assert old._reactor.closed
        assert stale.done()
        with pytest.raises((zmq.ZMQError, asyncio.CancelledError)):
            stale.result()
        if how == "destroy":
            contexts.append(zmq.Context())
        pull = contexts[-1].socket(zmq.PULL)
        pull.bind("inproc://fix1-new")
        push = contexts[-1].socket(zmq.PUSH)
        push.connect("inproc://fix1-new")
        # (else the test proves less; after a close, libzmq's reaper frees the FD later)
        assert how == "close" or fd == pull.FD
        new = WRAPPERS[wrapper](pull)
        got = new.recv()
        await asyncio.sleep(0.01)
        push.send(b"x")
        assert await asyncio.wait_for(got, WAIT) == b"x"
        new.close(linger=0)
    finally:
        for context in contexts:
            context.destroy(linger=0)


def test_the_close_hook_keeps_neither_socket_alive() -> None:
    """The hook refers to both sockets weakly: dropping the wrapper, then the plain socket,
    frees each at once (no cycle), and closing the plain socket after its wrapper went works.
    """
    import weakref

    ctx: zmq.Context[Any] = zmq.Context()
    try:
        plain = ctx.socket(zmq.PULL)
        wrapper = zaio.Socket.from_socket(plain)
        gone = weakref.ref(wrapper)
        del wrapper
        assert gone() is None
        plain_gone = weakref.ref(plain)
        plain.close()
        assert plain.closed
        del plain
        gc.collect()
        assert plain_gone() is None
    finally:
        ctx.destroy(linger=0)
