"""What pyzmq's own test suite found when run against ``zmq_async.asyncio`` (docs/asyncio.md,
"The peer's own test suite"): each test here is one that passed on ``zmq.asyncio`` and failed
on ours, checked again on our side.

Every test runs on the default asyncio loop and on uvloop (conftest.py's loop factories).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import zmq

import zmq_async.asyncio
import zmq_async.tornado
from zmq_async.stream import ZMQStream

WAIT = 5.0

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize("module", [zmq_async.asyncio, zmq_async.tornado])
@pytest.mark.asyncio
async def test_a_stream_over_a_future_socket_warns_and_shows_a_plain_shadow(module: Any) -> None:
    """pyzmq's test_zmqstream.py::test_shadow_socket: the peer's ZMQStream warns for a future
    socket and drives (and shows as ``stream.socket``) a plain ``zmq.Socket`` shadow of it,
    so ``stream.socket.recv_multipart()`` returns frames, not a Future. Ours shares the
    socket's reactor, so its futures still work beside the stream."""
    with module.Context() as ctx:
        pull = ctx.socket(zmq.PULL)
        push = ctx.socket(zmq.PUSH)
        pull.linger = push.linger = 0
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        with pytest.warns(RuntimeWarning, match="plain shadow"):
            stream = ZMQStream(pull)
        assert type(stream.socket) is zmq.Socket
        assert stream.socket.underlying == pull.underlying
        await push.send(b"sync")
        assert await asyncio.wait_for(pull.poll(), WAIT) == zmq.POLLIN
        assert stream.socket.recv_multipart(zmq.NOBLOCK) == [b"sync"]
        await push.send(b"future")
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"future"
        stream.close()
        # Closed through our socket: the shared reactor let go of the FD first.
        assert pull.closed and pull._reactor.closed
        push.close()
