"""Behaviour of ``zmq_async.asyncio`` as a drop-in for ``zmq.asyncio``: the public API.

Every test runs on the default asyncio loop and on uvloop (pytest-asyncio, through the
``pytest_asyncio_loop_factories`` hook of conftest.py). Waits are bounded with
``asyncio.wait_for`` and each test by pytest-timeout; sleeps only let a real deadline pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import parse_monitor_message

import zmq_async.asyncio
from zmq_async.asyncio._driver import thread_marker

WAIT = 5.0  # bound for anything that should happen "soon"
TIMEOUT = 20  # pytest-timeout's bound per test (setup included): twice the old runner's 10 s

pytestmark = pytest.mark.timeout(TIMEOUT)

LOOPBACK = "tcp://127.0.0.1"


async def roundtrip(push: Any, pull: Any, payload: bytes = b"ping") -> bytes:
    """Send ``payload`` PUSH -> PULL and return what arrived (bounded)."""
    await asyncio.wait_for(push.send(payload), WAIT)
    return await asyncio.wait_for(pull.recv(), WAIT)  # type: ignore[no-any-return]


def new_loop_of_this_kind() -> asyncio.AbstractEventLoop:
    """A new loop of the running loop's kind (asyncio's default or uvloop), for another thread."""
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# =============================================================================================
# Drop-in surface: types, repr, contexts, construction
# =============================================================================================


class TestDropInSurface:
    def test_socket_is_a_zmq_socket_of_our_class(self, ctx: Any) -> None:
        sock = ctx.socket(zmq.PUSH)
        assert isinstance(sock, zmq_async.asyncio.Socket)
        assert isinstance(sock, zmq.Socket)
        assert sock.context is ctx
        assert sock.type == zmq.PUSH

    def test_context_is_a_zmq_context(self, ctx: Any) -> None:
        assert isinstance(ctx, zmq.Context)
        assert isinstance(ctx, zmq_async.asyncio.Context)

    def test_repr_names_the_asyncio_socket(self, ctx: Any) -> None:
        sock = ctx.socket(zmq.PUSH)
        assert re.fullmatch(r"<zmq_async\.asyncio\.Socket\(zmq\.PUSH\) at 0x[0-9a-f]+>", repr(sock))
        sock.close()
        assert repr(sock).endswith(" closed>")

    @pytest.mark.asyncio
    async def test_every_io_method_returns_an_asyncio_future(self, pair: Any) -> None:
        push, pull = pair

        sends = [
            push.send(b"a"),
            push.send_multipart([b"b", b"c"]),
            push.send_string("d"),
            push.send_json({"e": 1}),
            push.send_pyobj(("f",)),
            push.send_serialized(["g"], lambda m: [m[0].encode()]),
            push.poll(0, zmq.POLLOUT),
        ]
        recvs = [
            pull.recv(),
            pull.recv_multipart(),
            pull.recv_string(),
            pull.recv_json(),
            pull.recv_pyobj(),
            pull.recv_serialized(lambda frames: frames[0].decode()),
            pull.poll(0),
        ]
        for fut in sends + recvs:
            assert isinstance(fut, asyncio.Future), fut
            assert fut.get_loop() is asyncio.get_running_loop()
        results = await asyncio.wait_for(asyncio.gather(*recvs[:-1]), WAIT)
        assert results == [b"a", [b"b", b"c"], "d", {"e": 1}, ("f",), "g"]
        assert await asyncio.wait_for(asyncio.gather(*sends[:-1]), WAIT) == [None] * 6

    def test_context_instance_is_our_own_singleton(self) -> None:
        first = zmq_async.asyncio.Context.instance()
        assert isinstance(first, zmq_async.asyncio.Context)
        assert zmq_async.asyncio.Context.instance() is first
        assert first is not zmq.Context.instance()
        assert not isinstance(zmq.Context.instance(), zmq_async.asyncio.Context)

    @pytest.mark.asyncio
    async def test_socket_class_argument_is_honoured(self, ctx: Any) -> None:
        class Traced(zmq_async.asyncio.Socket):
            pass

        pull = ctx.socket(zmq.PULL, socket_class=Traced)
        assert type(pull) is Traced
        plain = ctx.socket(zmq.PUSH, socket_class=zmq.Socket)
        assert not isinstance(plain, zmq_async.asyncio.Socket)
        port = pull.bind_to_random_port(LOOPBACK)
        plain.connect(f"{LOOPBACK}:{port}")
        fut = pull.recv()
        assert isinstance(fut, asyncio.Future)
        plain.send(b"from a blocking socket")  # plain zmq.Socket: a blocking call
        assert await asyncio.wait_for(fut, WAIT) == b"from a blocking socket"

    @pytest.mark.asyncio
    async def test_direct_socket_construction(self, ctx: Any) -> None:
        pull = zmq_async.asyncio.Socket(ctx, zmq.PULL)
        push = zmq_async.asyncio.Socket(ctx, zmq.PUSH)
        try:
            port = pull.bind_to_random_port(LOOPBACK)
            push.connect(f"{LOOPBACK}:{port}")
            assert await roundtrip(push, pull) == b"ping"
        finally:
            push.close(linger=0)
            pull.close(linger=0)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("how", ["shadow_kwarg", "positional_context"])
    async def test_context_shadowing_a_sync_context(self, sync_ctx: Any, how: str) -> None:
        """A shadow shares the libzmq context: inproc works between the two worlds."""
        if how == "shadow_kwarg":
            actx = zmq_async.asyncio.Context(shadow=sync_ctx.underlying)
        else:
            actx = zmq_async.asyncio.Context(sync_ctx)
        assert actx.underlying == sync_ctx.underlying
        addr = f"inproc://shadow-{how}-{id(actx)}"
        sync_push = sync_ctx.socket(zmq.PUSH)
        sync_push.bind(addr)
        pull = actx.socket(zmq.PULL)
        pull.connect(addr)
        try:
            fut = pull.recv()
            sync_push.send(b"across")
            assert await asyncio.wait_for(fut, WAIT) == b"across"
        finally:
            pull.close(linger=0)

    @pytest.mark.asyncio
    async def test_from_socket_wraps_a_blocking_socket(self, sync_ctx: Any) -> None:
        sync_pull = sync_ctx.socket(zmq.PULL)
        port = sync_pull.bind_to_random_port(LOOPBACK)
        sync_push = sync_ctx.socket(zmq.PUSH)
        sync_push.connect(f"{LOOPBACK}:{port}")
        pull = zmq_async.asyncio.Socket.from_socket(sync_pull)
        push = zmq_async.asyncio.Socket.from_socket(sync_push)
        assert isinstance(pull, zmq_async.asyncio.Socket)
        assert pull.underlying == sync_pull.underlying

        fut = pull.recv_multipart()
        await asyncio.wait_for(push.send_multipart([b"wrapped", b"twice"]), WAIT)
        assert await asyncio.wait_for(fut, WAIT) == [b"wrapped", b"twice"]
        pull.close(linger=0)
        push.close(linger=0)

    def test_option_attributes(self, ctx: Any) -> None:
        sock = ctx.socket(zmq.PULL)
        sock.rcvtimeo = 100
        sock.linger = 0
        sock.sndhwm = 7
        assert sock.rcvtimeo == 100
        assert sock.get(zmq.RCVTIMEO) == 100
        assert sock.getsockopt(zmq.LINGER) == 0
        assert sock.sndhwm == 7
        sock.setsockopt(zmq.RCVTIMEO, -1)
        assert sock.rcvtimeo == -1

    @pytest.mark.asyncio
    async def test_bind_to_random_port(self, ctx: Any) -> None:
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK, min_port=20000, max_port=60000)
        assert 20000 <= port < 60000
        assert pull.last_endpoint == f"{LOOPBACK}:{port}".encode()
        push = ctx.socket(zmq.PUSH)
        push.connect(f"{LOOPBACK}:{port}")
        assert await roundtrip(push, pull) == b"ping"


# =============================================================================================
# Messaging: copy/track, recv_into, serialization, patterns
# =============================================================================================


class TestMessaging:
    @pytest.mark.asyncio
    async def test_copy_false_gives_frames(self, pair: Any) -> None:
        push, pull = pair

        await push.send(b"one")
        await push.send_multipart([b"two", b"three"])
        frame = await asyncio.wait_for(pull.recv(copy=False), WAIT)
        assert isinstance(frame, zmq.Frame)
        assert frame.bytes == b"one"
        frames = await asyncio.wait_for(pull.recv_multipart(copy=False), WAIT)
        assert all(isinstance(f, zmq.Frame) for f in frames)
        assert [f.bytes for f in frames] == [b"two", b"three"]

    @pytest.mark.asyncio
    async def test_track_true_gives_a_message_tracker(self, pair: Any) -> None:
        push, pull = pair

        tracker = await asyncio.wait_for(push.send(b"x" * 1000, copy=False, track=True), WAIT)
        assert isinstance(tracker, zmq.MessageTracker)
        multi = await asyncio.wait_for(
            push.send_multipart([b"y" * 1000, b"z"], copy=False, track=True), WAIT
        )
        assert isinstance(multi, zmq.MessageTracker)
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"x" * 1000
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"y" * 1000, b"z"]
        tracker.wait(WAIT)  # raises zmq.NotDone if libzmq never released the message
        assert tracker.done

    @pytest.mark.asyncio
    async def test_send_without_track_resolves_to_none(self, pair: Any) -> None:
        push, _pull = pair

        assert await asyncio.wait_for(push.send(b"x"), WAIT) is None
        assert await asyncio.wait_for(push.send_multipart([b"x", b"y"]), WAIT) is None

    @pytest.mark.asyncio
    async def test_buffer_protocol_payloads(self, pair: Any) -> None:
        push, pull = pair

        await push.send(bytearray(b"ba"))
        await push.send(memoryview(b"mv"))
        await push.send_multipart([bytearray(b"1"), memoryview(b"2"), zmq.Frame(b"3")])
        await push.send_multipart((b"a", b"tuple"))
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"ba"
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"mv"
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"1", b"2", b"3"]
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"a", b"tuple"]

    @pytest.mark.asyncio
    async def test_recv_into_fills_the_buffer(self, pair: Any) -> None:
        push, pull = pair

        buf = bytearray(16)
        fut = pull.recv_into(buf)  # pending: nothing sent yet
        await push.send(b"hello")
        assert await asyncio.wait_for(fut, WAIT) == 5
        assert bytes(buf[:5]) == b"hello"

        # nbytes limits the copy; the return value is the full frame size (truncated)
        await push.send(b"0123456789")
        small = bytearray(16)
        assert await asyncio.wait_for(pull.recv_into(small, nbytes=4), WAIT) == 10
        assert bytes(small[:4]) == b"0123"
        assert bytes(small[4:]) == bytes(12)

    @pytest.mark.asyncio
    async def test_recv_part_by_part_with_rcvmore(self, pair: Any) -> None:
        push, pull = pair

        await push.send_multipart([b"head", b"tail"])
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"head"
        assert pull.rcvmore
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"tail"
        assert not pull.rcvmore

    @pytest.mark.asyncio
    async def test_serialization_helpers_roundtrip(self, pair: Any) -> None:
        push, pull = pair

        def serialize(obj: Any) -> list[bytes]:
            return [b"v1", json.dumps(obj).encode()]

        def deserialize(frames: list[bytes]) -> Any:
            assert frames[0] == b"v1"
            return json.loads(frames[1])

        await push.send_string("héllo")
        await push.send_string("latin-1 é", encoding="latin-1")
        await push.send_json({"a": [1, 2, None]})
        await push.send_pyobj({"set": {1, 2}})
        await push.send_serialized({"x": 1}, serialize)
        assert await asyncio.wait_for(pull.recv_string(), WAIT) == "héllo"
        assert await asyncio.wait_for(pull.recv_string(encoding="latin-1"), WAIT) == "latin-1 é"
        assert await asyncio.wait_for(pull.recv_json(), WAIT) == {"a": [1, 2, None]}
        assert await asyncio.wait_for(pull.recv_pyobj(), WAIT) == {"set": {1, 2}}
        assert await asyncio.wait_for(pull.recv_serialized(deserialize), WAIT) == {"x": 1}

    @pytest.mark.asyncio
    async def test_undecodable_json_fails_that_recv_only(self, pair: Any) -> None:
        """A bad payload raises in its own future and does not poison the next message."""
        push, pull = pair

        await push.send(b"{not json")
        await push.send_json([1])
        with pytest.raises(ValueError):
            await asyncio.wait_for(pull.recv_json(), WAIT)
        assert await asyncio.wait_for(pull.recv_json(), WAIT) == [1]

    @pytest.mark.asyncio
    async def test_router_dealer_without_routing_ids(self, socket_pair: Any) -> None:
        router, dealer = socket_pair(zmq.ROUTER, zmq.DEALER)

        await dealer.send_multipart([b"", b"request"])
        envelope = await asyncio.wait_for(router.recv_multipart(), WAIT)
        assert len(envelope) == 3
        peer_id, empty, body = envelope
        assert peer_id and empty == b"" and body == b"request"
        await router.send_multipart([peer_id, b"", b"reply"])
        assert await asyncio.wait_for(dealer.recv_multipart(), WAIT) == [b"", b"reply"]

    @pytest.mark.asyncio
    async def test_req_rep_lockstep(self, socket_pair: Any) -> None:
        rep, req = socket_pair(zmq.REP, zmq.REQ)

        async def server() -> None:
            for _ in range(5):
                request = await rep.recv()
                await rep.send(request.upper())

        async def client() -> list[bytes]:
            replies = []
            for i in range(5):
                await req.send(b"hi %d" % i)
                replies.append(await req.recv())
            return replies

        _, replies = await asyncio.wait_for(asyncio.gather(server(), client()), WAIT)
        assert replies == [b"HI %d" % i for i in range(5)]

    @pytest.mark.asyncio
    async def test_req_enforces_lockstep(self, socket_pair: Any) -> None:
        """The state machine errors of REQ come through as in pyzmq."""
        _rep, req = socket_pair(zmq.REP, zmq.REQ)

        await req.send(b"first")
        with pytest.raises(zmq.ZMQError) as info:
            await asyncio.wait_for(req.send(b"second"), WAIT)
        assert info.value.errno == zmq.EFSM

    @pytest.mark.asyncio
    async def test_pub_sub_subscribe_all(self, socket_pair: Any) -> None:
        pub, sub = socket_pair(zmq.PUB, zmq.SUB)
        sub.subscribe(b"")

        # PUB drops until the subscription arrives: publish until the first one lands.
        async def warm_up() -> None:
            while not await sub.poll(10):
                await pub.send(b"warm-up")

        await asyncio.wait_for(warm_up(), WAIT)
        await pub.send(b"last")
        while (msg := await asyncio.wait_for(sub.recv(), WAIT)) == b"warm-up":
            pass
        assert msg == b"last"

    @pytest.mark.asyncio
    async def test_pub_sub_topic_filter(self, socket_pair: Any) -> None:
        pub, sub = socket_pair(zmq.PUB, zmq.SUB)
        sub.subscribe(b"a")

        async def warm_up() -> None:
            while not await sub.poll(10):
                await pub.send(b"a-warm-up")

        await asyncio.wait_for(warm_up(), WAIT)
        await pub.send_multipart([b"b", b"filtered out"])
        await pub.send_multipart([b"a", b"wanted"])
        while (msg := await asyncio.wait_for(sub.recv_multipart(), WAIT)) == [b"a-warm-up"]:
            pass
        assert msg == [b"a", b"wanted"]

    @pytest.mark.asyncio
    async def test_monitor_socket_is_async_too(self, ctx: Any) -> None:
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK)
        push = ctx.socket(zmq.PUSH)
        monitor = push.get_monitor_socket(zmq.EVENT_CONNECTED)
        assert isinstance(monitor, zmq_async.asyncio.Socket)

        try:
            fut = monitor.recv_multipart()
            push.connect(f"{LOOPBACK}:{port}")
            event = parse_monitor_message(await asyncio.wait_for(fut, WAIT))
            assert event["event"] == zmq.EVENT_CONNECTED
        finally:
            push.disable_monitor()
            monitor.close(linger=0)


# =============================================================================================
# Iteration and context managers
# =============================================================================================


class TestProtocols:
    @pytest.mark.asyncio
    async def test_async_for_yields_multipart_messages(self, pair: Any) -> None:
        push, pull = pair

        for i in range(3):
            await push.send_multipart([b"msg", b"%d" % i])
        got = []

        async def consume() -> None:
            async for msg in pull:
                got.append(msg)
                if len(got) == 3:
                    break

        await asyncio.wait_for(consume(), WAIT)
        assert got == [[b"msg", b"0"], [b"msg", b"1"], [b"msg", b"2"]]

    @pytest.mark.asyncio
    async def test_async_with_closes_the_socket(self, ctx: Any) -> None:
        async with ctx.socket(zmq.PUSH) as sock:
            assert isinstance(sock, zmq_async.asyncio.Socket)
            assert not sock.closed
        assert sock.closed

    def test_sync_with_closes_the_socket(self, ctx: Any) -> None:
        with ctx.socket(zmq.PUSH) as sock:
            assert not sock.closed
        assert sock.closed


# =============================================================================================
# DONTWAIT: completes at once
# =============================================================================================


async def on_another_threads_loop(
    main: Any, outcome: dict[str, Any], timeout: float = 4 * WAIT
) -> None:
    """Run ``main()`` on a new loop (of this loop's kind) in another thread, while this loop
    goes on; its exception (if any) goes to ``outcome["raised"]``."""
    loop = new_loop_of_this_kind()

    def worker() -> None:
        try:
            loop.run_until_complete(asyncio.wait_for(main(), timeout))
        except BaseException as exc:  # recorded, asserted on by the caller
            outcome["raised"] = exc
        finally:
            loop.close()

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join, timeout + WAIT)
    assert not thread.is_alive()


@contextlib.contextmanager
def running_in_another_thread(loop: asyncio.AbstractEventLoop) -> Iterator[threading.Thread]:
    """Run ``loop`` in a new thread for the block (running when the block begins)."""
    running = threading.Event()
    loop.call_soon(running.set)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        assert running.wait(WAIT)
        yield thread
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
    assert not thread.is_alive()


async def wait_readable(sock: Any) -> None:
    """Wait (bounded) until ``sock`` has a message, without taking it."""
    assert await asyncio.wait_for(sock.poll(), WAIT) & zmq.POLLIN


class TestDontwait:
    def test_dontwait_is_noblock(self) -> None:
        assert zmq.DONTWAIT == zmq.NOBLOCK

    @pytest.mark.parametrize(
        "method", ["recv", "recv_multipart", "recv_string", "recv_json", "recv_pyobj"]
    )
    @pytest.mark.asyncio
    async def test_dontwait_recv_with_nothing_there_is_already_failed(
        self, pair: Any, method: str
    ) -> None:
        _push, pull = pair

        fut = getattr(pull, method)(flags=zmq.DONTWAIT)
        assert fut.done()
        assert isinstance(fut.exception(), zmq.Again)

    @pytest.mark.parametrize(
        ("method", "payload", "expected"),
        [
            ("recv", b"x", b"x"),
            ("recv_multipart", b"x", [b"x"]),
            ("recv_string", b"x", "x"),
            ("recv_json", b"[1]", [1]),
        ],
    )
    @pytest.mark.asyncio
    async def test_dontwait_recv_with_a_message_is_already_resolved(
        self, pair: Any, method: str, payload: bytes, expected: Any
    ) -> None:
        push, pull = pair

        await push.send(payload)
        await wait_readable(pull)
        fut = getattr(pull, method)(flags=zmq.NOBLOCK)
        assert fut.done()
        assert fut.result() == expected

    @pytest.mark.asyncio
    async def test_dontwait_recv_while_another_recv_is_pending(self, pair: Any) -> None:
        push, pull = pair

        pending = pull.recv()
        fut = pull.recv(zmq.DONTWAIT)
        assert fut.done()
        assert isinstance(fut.exception(), zmq.Again)
        assert not pending.done()
        await push.send(b"for the pending one")
        assert await asyncio.wait_for(pending, WAIT) == b"for the pending one"

    @pytest.mark.parametrize("method", ["send", "send_multipart"])
    @pytest.mark.asyncio
    async def test_dontwait_send_without_peer_is_already_failed(
        self, ctx: Any, method: str
    ) -> None:
        push = ctx.socket(zmq.PUSH)  # no peer: nowhere to queue

        payload = b"x" if method == "send" else [b"x", b"y"]
        fut = getattr(push, method)(payload, flags=zmq.DONTWAIT)
        assert fut.done()
        assert isinstance(fut.exception(), zmq.Again)

    @pytest.mark.asyncio
    async def test_dontwait_send_with_room_is_already_resolved(self, pair: Any) -> None:
        push, pull = pair

        assert await asyncio.wait_for(push.poll(WAIT * 1000, zmq.POLLOUT), WAIT)
        fut = push.send(b"now", zmq.DONTWAIT)
        assert fut.done()
        assert fut.result() is None
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"now"

    @pytest.mark.asyncio
    async def test_dontwait_send_waits_its_turn_behind_a_pending_send(self, ctx: Any) -> None:
        """As zmq.asyncio: queued behind, in order; never splits a multipart message."""
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK)
        push = ctx.socket(zmq.PUSH)

        first = push.send(b"multi", zmq.SNDMORE)  # no peer yet: pending
        assert not first.done()
        rest = push.send(b"part")
        fut = push.send(b"dontwait", zmq.DONTWAIT)
        assert not fut.done()
        push.connect(f"{LOOPBACK}:{port}")
        await asyncio.wait_for(asyncio.gather(first, rest, fut), WAIT)
        await push.send(b"after")
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"multi", b"part"]
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"dontwait"
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"after"


# =============================================================================================
# RCVTIMEO / SNDTIMEO
# =============================================================================================


class TestTimeouts:
    @pytest.mark.asyncio
    async def test_rcvtimeo_fails_with_again_and_consumes_nothing(self, pair: Any) -> None:
        push, pull = pair
        pull.rcvtimeo = 100

        start = time.monotonic()
        with pytest.raises(zmq.Again):
            await asyncio.wait_for(pull.recv(), WAIT)
        assert 0.05 <= time.monotonic() - start < 2.0
        pull.rcvtimeo = -1
        fut = pull.recv()
        await push.send(b"afterwards")
        assert await asyncio.wait_for(fut, WAIT) == b"afterwards"

    @pytest.mark.parametrize("method", ["recv_multipart", "recv_json", "recv_string"])
    @pytest.mark.asyncio
    async def test_rcvtimeo_applies_to_every_recv_form(self, pair: Any, method: str) -> None:
        _push, pull = pair
        pull.rcvtimeo = 50

        start = time.monotonic()
        with pytest.raises(zmq.Again):
            await asyncio.wait_for(getattr(pull, method)(), WAIT)
        assert 0.025 <= time.monotonic() - start < 2.0

    @pytest.mark.asyncio
    async def test_rcvtimeo_does_not_fire_after_success(self, pair: Any) -> None:
        """A recv that completed must not be failed later by its (stale) deadline."""
        push, pull = pair
        pull.rcvtimeo = 100

        fut = pull.recv()
        await push.send(b"quick")
        assert await asyncio.wait_for(fut, WAIT) == b"quick"
        await asyncio.sleep(0.2)  # let the 100 ms deadline pass
        assert fut.result() == b"quick"
        await push.send(b"next")
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"next"

    @pytest.mark.asyncio
    async def test_rcvtimeo_change_applies_to_the_next_recv(self, pair: Any) -> None:
        _push, pull = pair

        pull.rcvtimeo = 30
        with pytest.raises(zmq.Again):
            await asyncio.wait_for(pull.recv(), WAIT)
        pull.rcvtimeo = -1
        fut = pull.recv()
        await asyncio.sleep(0.1)  # longer than the old timeout
        assert not fut.done()
        fut.cancel()

    @pytest.mark.asyncio
    async def test_sndtimeo_fails_with_again_and_the_message_is_never_sent(self, ctx: Any) -> None:
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK)
        push = ctx.socket(zmq.PUSH)  # not connected yet: no peer
        push.sndtimeo = 100

        start = time.monotonic()
        with pytest.raises(zmq.Again):
            await asyncio.wait_for(push.send(b"lost"), WAIT)
        assert 0.05 <= time.monotonic() - start < 2.0
        push.sndtimeo = -1
        push.connect(f"{LOOPBACK}:{port}")
        await asyncio.wait_for(push.send(b"second"), WAIT)
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"second"
        assert await pull.poll(100) == 0  # and nothing else ever shows up


# =============================================================================================
# Poller and sock.poll
# =============================================================================================


class TestPoller:
    @pytest.mark.asyncio
    async def test_poll_returns_socket_event_tuples(self, pair: Any) -> None:
        push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        fut = poller.poll(WAIT * 1000)
        assert isinstance(fut, asyncio.Future)
        await push.send(b"x")
        assert await asyncio.wait_for(fut, WAIT) == [(pull, zmq.POLLIN)]
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"x"  # poll consumed nothing

    @pytest.mark.asyncio
    async def test_poll_pollout(self, pair: Any) -> None:
        push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(push, zmq.POLLOUT)
        poller.register(pull, zmq.POLLIN)
        assert await asyncio.wait_for(poller.poll(WAIT * 1000), WAIT) == [(push, zmq.POLLOUT)]

    @pytest.mark.asyncio
    async def test_poll_in_and_out_on_one_socket(self, socket_pair: Any) -> None:
        a, b = socket_pair(zmq.PAIR, zmq.PAIR)

        await b.send(b"x")
        await wait_readable(a)
        poller = zmq_async.asyncio.Poller()
        poller.register(a, zmq.POLLIN | zmq.POLLOUT)
        assert await asyncio.wait_for(poller.poll(0), WAIT) == [(a, zmq.POLLIN | zmq.POLLOUT)]
        assert await asyncio.wait_for(a.poll(0, zmq.POLLIN | zmq.POLLOUT), WAIT) == (
            zmq.POLLIN | zmq.POLLOUT
        )

    @pytest.mark.asyncio
    async def test_pollout_waits_for_room(self, socket_pair: Any) -> None:
        opts = {zmq.SNDHWM: 1, zmq.RCVHWM: 1}
        pull, push = socket_pair(
            zmq.PULL, zmq.PUSH, transport="inproc", bind_opts=opts, connect_opts=opts
        )

        sent = 0
        while push.send(b"%d" % sent, zmq.DONTWAIT).exception() is None:
            sent += 1
            assert sent < 100, "the HWM never pushed back"
        fut = push.poll(WAIT * 1000, zmq.POLLOUT)
        assert not fut.done()
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"0"
        assert await asyncio.wait_for(fut, WAIT) == zmq.POLLOUT

    @pytest.mark.asyncio
    async def test_pending_poller_poll_and_recv_on_one_socket_both_complete(
        self, pair: Any
    ) -> None:
        """The recv gets the message; the poll ends (reporting it or, once taken, timing out)."""
        push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        polled = poller.poll(200)
        received = pull.recv()
        await push.send(b"shared")
        assert await asyncio.wait_for(received, WAIT) == b"shared"
        assert await asyncio.wait_for(polled, WAIT) in ([], [(pull, zmq.POLLIN)])

    @pytest.mark.asyncio
    async def test_poll_plain_zmq_sockets(self, sync_ctx: Any) -> None:
        pull = sync_ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK)
        push = sync_ctx.socket(zmq.PUSH)
        push.connect(f"{LOOPBACK}:{port}")

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        fut = poller.poll(WAIT * 1000)
        push.send(b"plain")
        assert await asyncio.wait_for(fut, WAIT) == [(pull, zmq.POLLIN)]
        assert pull.recv(zmq.NOBLOCK) == b"plain"

    @pytest.mark.asyncio
    async def test_poll_raw_pipe_fd(self) -> None:
        r, w = os.pipe()

        try:
            poller = zmq_async.asyncio.Poller()
            poller.register(r, zmq.POLLIN)
            assert await asyncio.wait_for(poller.poll(0), WAIT) == []
            fut = poller.poll(WAIT * 1000)
            os.write(w, b"x")
            assert await asyncio.wait_for(fut, WAIT) == [(r, zmq.POLLIN)]
        finally:
            os.close(r)
            os.close(w)

    @pytest.mark.asyncio
    async def test_poll_raw_socket_object(self) -> None:
        """As with ``zmq.Poller``, an object with ``fileno()`` is reported by its fd."""
        a, b = socket.socketpair()
        fd = a.fileno()

        try:
            poller = zmq_async.asyncio.Poller()
            poller.register(a, zmq.POLLIN)
            fut = poller.poll(WAIT * 1000)
            b.send(b"x")
            assert await asyncio.wait_for(fut, WAIT) == [(fd, zmq.POLLIN)]
            poller.modify(a, zmq.POLLOUT)
            assert await asyncio.wait_for(poller.poll(WAIT * 1000), WAIT) == [(fd, zmq.POLLOUT)]
        finally:
            a.close()
            b.close()

    @pytest.mark.asyncio
    async def test_poll_mixed_zmq_and_raw(self, pair: Any) -> None:
        push, pull = pair
        r, w = os.pipe()

        try:
            poller = zmq_async.asyncio.Poller()
            poller.register(pull, zmq.POLLIN)
            poller.register(r, zmq.POLLIN)
            fut = poller.poll(WAIT * 1000)
            os.write(w, b"x")
            assert await asyncio.wait_for(fut, WAIT) == [(r, zmq.POLLIN)]
            os.read(r, 1)
            fut = poller.poll(WAIT * 1000)
            await push.send(b"y")
            assert await asyncio.wait_for(fut, WAIT) == [(pull, zmq.POLLIN)]
        finally:
            os.close(r)
            os.close(w)

    @pytest.mark.asyncio
    async def test_poll_timeout_zero_returns_at_once(self, pair: Any) -> None:
        _push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        fut = poller.poll(0)
        assert fut.done()
        assert fut.result() == []

    @pytest.mark.asyncio
    async def test_poll_timeout_returns_empty_list(self, pair: Any) -> None:
        _push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        start = time.monotonic()
        assert await asyncio.wait_for(poller.poll(50), WAIT) == []
        assert 0.025 <= time.monotonic() - start < 2.0

    @pytest.mark.asyncio
    async def test_poll_without_timeout_waits_for_the_event(self, pair: Any) -> None:
        push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        fut = poller.poll()
        await asyncio.sleep(0.05)  # longer than "at once"
        assert not fut.done()
        await push.send(b"x")
        assert await asyncio.wait_for(fut, WAIT) == [(pull, zmq.POLLIN)]

    @pytest.mark.asyncio
    async def test_unregistered_socket_is_not_reported(self, pair: Any) -> None:
        push, pull = pair

        poller = zmq_async.asyncio.Poller()
        poller.register(pull, zmq.POLLIN)
        poller.unregister(pull)
        await push.send(b"x")
        await wait_readable(pull)
        assert await asyncio.wait_for(poller.poll(50), WAIT) == []

    @pytest.mark.asyncio
    async def test_socket_poll_returns_mask_or_zero(self, pair: Any) -> None:
        push, pull = pair

        assert await asyncio.wait_for(pull.poll(timeout=50), WAIT) == 0
        assert await asyncio.wait_for(pull.poll(timeout=0), WAIT) == 0
        fut = pull.poll(timeout=WAIT * 1000)
        await push.send(b"x")
        assert await asyncio.wait_for(fut, WAIT) == zmq.POLLIN
        assert await asyncio.wait_for(push.poll(1000, zmq.POLLOUT), WAIT) == zmq.POLLOUT
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"x"


# =============================================================================================
# Loops and threads
# =============================================================================================


class TestLoopsAndThreads:
    @pytest.mark.asyncio
    async def test_socket_created_before_the_loop_works_inside_it(self, pair: Any) -> None:
        push, pull = pair  # made (bound, connected) by a sync fixture: before the loop ran
        fut = pull.recv()
        await push.send(b"made before")
        assert await asyncio.wait_for(fut, WAIT) == b"made before"

    def test_same_sockets_work_in_successive_loops(self, new_loop: Any, pair: Any) -> None:
        # Explicit loops: the plugin gives a test one loop, this one needs three in turn.
        push, pull = pair

        async def once(i: int) -> bytes:
            fut = pull.recv()  # pending: must be woken through the new loop's registration
            assert not fut.done()
            await push.send(b"loop %d" % i)
            return await asyncio.wait_for(fut, WAIT)  # type: ignore[no-any-return]

        for i in range(3):
            loop = new_loop()
            try:
                assert loop.run_until_complete(asyncio.wait_for(once(i), WAIT)) == b"loop %d" % i
            finally:
                loop.close()

    def test_timed_out_recv_in_a_closed_loop_does_not_break_the_next_loop(
        self, new_loop: Any, pair: Any
    ) -> None:
        # Explicit loops: the plugin gives a test one loop, this one closes one and needs a next.
        push, pull = pair

        async def time_out() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pull.recv(), 0.02)

        async def deliver() -> bytes:
            fut = pull.recv()
            await push.send(b"second loop")
            return await asyncio.wait_for(fut, WAIT)  # type: ignore[no-any-return]

        first = new_loop()
        try:
            first.run_until_complete(time_out())
        finally:
            first.close()
        second = new_loop()
        try:
            assert second.run_until_complete(deliver()) == b"second loop"
        finally:
            second.close()

    def test_thread_marker_names_the_thread_running_the_loop(self, new_loop: Any) -> None:
        """The contract streams and anyio sockets rely on, on every kind of loop (uvloop
        records no thread): ``_thread_id`` is the caller's thread only inside the loop."""
        loop = new_loop()
        marker = thread_marker(loop)

        async def inside() -> Any:
            return marker._thread_id

        try:
            assert marker._thread_id != threading.get_ident()  # not running
            assert loop.run_until_complete(inside()) == threading.get_ident()
            assert marker._thread_id != threading.get_ident()  # stopped
            with running_in_another_thread(loop) as thread:
                assert marker._thread_id != threading.get_ident()  # another thread's
                asked = asyncio.run_coroutine_threadsafe(inside(), loop)
                assert asked.result(WAIT) == thread.ident
        finally:
            loop.close()

    @pytest.mark.timeout(3 * TIMEOUT)
    def test_a_loop_that_ran_here_and_now_runs_in_another_thread_is_not_this_threads(
        self, new_loop: Any, pair: Any
    ) -> None:
        """The socket's loop ran in this thread, stopped, and now runs in another one: this
        thread's next loop must hand its operations to that thread, not run them itself (the
        fast "running here" check must not trust where the loop ran before)."""
        push, pull = pair
        owner = new_loop()

        async def bind() -> None:
            for i in range(3):  # more than once: the loop's fast check has seen it run here
                await push.send(b"bind %d" % i)
                assert await asyncio.wait_for(pull.recv(), WAIT) == b"bind %d" % i

        async def use() -> bytes:
            mine = asyncio.get_running_loop()
            sent = push.send(b"moved")
            got = pull.recv()
            # Futures of this loop, answered by the owner's: the operations were handed over.
            assert sent.get_loop() is mine and got.get_loop() is mine
            await asyncio.wait_for(sent, WAIT)
            return await asyncio.wait_for(got, WAIT)  # type: ignore[no-any-return]

        try:
            owner.run_until_complete(bind())  # both sockets now belong to ``owner``
            with running_in_another_thread(owner):
                mine = new_loop()
                try:
                    assert mine.run_until_complete(use()) == b"moved"
                finally:
                    mine.close()
        finally:
            owner.close()

    @pytest.mark.timeout(3 * TIMEOUT)
    def test_a_thread_without_a_loop_is_not_taken_for_the_loop_only_a_poller_used(
        self, new_loop: Any, ctx: Any
    ) -> None:
        """A socket bound to its loop by a Poller alone: its loop's fast "running here" check
        has learnt nothing yet, and must not match a thread that runs no loop either."""
        pull = ctx.socket(zmq.PULL)
        pull.bind_to_random_port(LOOPBACK)
        outcome: dict[str, Any] = {}

        def worker() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the peer's "no running loop" warning
                try:
                    outcome["future"] = pull.recv()
                except BaseException as exc:  # recorded, asserted on below
                    outcome["raised"] = exc

        async def main() -> None:
            poller = zmq_async.asyncio.Poller()
            poller.register(pull, zmq.POLLIN)
            polling = poller.poll(int(WAIT * 1000))  # binds pull to this loop; waits
            thread = threading.Thread(target=worker)
            thread.start()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT)
            assert not thread.is_alive()
            polling.cancel()

        loop = new_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        assert isinstance(outcome.get("raised"), RuntimeError), outcome

    @pytest.mark.parametrize("op", ["recv", "send"])
    @pytest.mark.asyncio
    async def test_use_from_a_thread_without_a_loop_raises_runtime_error_as_the_peer(
        self, pair: Any, op: str
    ) -> None:
        """As zmq.asyncio: no loop to give a Future to, so RuntimeError (after its warning)."""
        push, pull = pair
        sock = pull if op == "recv" else push
        outcome: dict[str, Any] = {}

        def worker() -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    outcome["future"] = sock.recv() if op == "recv" else sock.send(b"thread")
                except BaseException as exc:  # recorded, asserted on below
                    outcome["raised"] = exc
            outcome["warnings"] = [w.category for w in caught]

        await push.send(b"waiting")
        await wait_readable(pull)  # binds both sockets to this loop
        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT)
        assert not thread.is_alive()
        assert isinstance(outcome.get("raised"), RuntimeError), outcome
        assert RuntimeWarning in outcome["warnings"]
        # the socket is intact for its own loop; the thread took nothing
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"waiting"
        assert await roundtrip(push, pull, b"still fine") == b"still fine"

    @pytest.mark.asyncio
    @pytest.mark.timeout(3 * TIMEOUT)  # the old runner's 30 s: another thread's loop too
    async def test_use_from_a_loop_in_another_thread_is_handed_to_the_socket_loop(
        self, pair: Any
    ) -> None:
        """As with zmq.asyncio, another thread's loop may use the socket: here its operations
        run on the socket's loop, in order, and their outcome comes back to the caller."""
        push, pull = pair
        outcome: dict[str, Any] = {}
        served_in: set[int] = set()

        async def foreign() -> None:
            sends = [push.send(b"%d" % i) for i in range(100)]  # not awaited one by one
            sends.append(push.send_multipart([b"multi", b"part"]))
            assert await asyncio.wait_for(asyncio.gather(*sends), WAIT) == [None] * 101
            outcome["second"] = await asyncio.wait_for(pull.recv(), WAIT)
            outcome["poll"] = await asyncio.wait_for(pull.poll(), WAIT)
            outcome["rest"] = [await asyncio.wait_for(pull.recv(), WAIT) for _ in range(99)]
            outcome["multi"] = await asyncio.wait_for(pull.recv_multipart(), WAIT)
            bad = push.send_multipart([b"ok", object()])
            with pytest.raises(TypeError):
                await asyncio.wait_for(bad, WAIT)
            lost = pull.recv()
            await asyncio.sleep(0.05)
            lost.cancel()  # cancelled while waiting: it takes nothing
            await asyncio.sleep(0.05)

        pending = pull.recv()  # pull now belongs to this (running) loop
        pending.add_done_callback(lambda _: served_in.add(threading.get_ident()))
        await push.send(b"bind push here")
        await on_another_threads_loop(foreign, outcome)
        assert "raised" not in outcome, outcome
        # FIFO across threads: the pending receive of this loop was served first
        assert pending.result() == b"bind push here"
        assert served_in == {threading.get_ident()}
        assert outcome["second"] == b"0"
        assert outcome["poll"] == zmq.POLLIN
        assert outcome["rest"] == [b"%d" % i for i in range(1, 100)]
        assert outcome["multi"] == [b"multi", b"part"]
        assert await roundtrip(push, pull, b"after") == b"after"  # nothing was taken

    @pytest.mark.asyncio
    @pytest.mark.timeout(3 * TIMEOUT)  # the old runner's 30 s: another thread's loop too
    async def test_a_poller_on_another_threads_loop_is_handed_to_the_socket_loop(
        self, pair: Any
    ) -> None:
        """As zmq.asyncio's, a Poller on another thread's loop may poll the socket."""
        push, pull = pair
        outcome: dict[str, Any] = {}

        async def foreign() -> None:
            poller = zmq_async.asyncio.Poller()
            poller.register(pull, zmq.POLLIN)
            assert await asyncio.wait_for(poller.poll(0), WAIT) == []
            polling = poller.poll(int(WAIT * 1000))
            await asyncio.sleep(0.05)
            assert not polling.done()
            await push.send(b"wake")
            outcome["polled"] = await asyncio.wait_for(polling, WAIT)
            outcome["got"] = await asyncio.wait_for(pull.recv(), WAIT)

        await push.send(b"bind")
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"bind"  # both bound here
        await on_another_threads_loop(foreign, outcome)
        assert "raised" not in outcome, outcome
        assert outcome["polled"] == [(pull, zmq.POLLIN)]
        assert outcome["got"] == b"wake"

    @pytest.mark.asyncio
    async def test_independent_loops_in_two_threads(self, ctx: Any) -> None:
        """Each thread with its own sockets and loop: both run concurrently, unaffected."""
        results: dict[str, Any] = {}

        async def exchange(tag: bytes) -> list[bytes]:
            pull = ctx.socket(zmq.PULL)
            push = ctx.socket(zmq.PUSH)
            try:
                port = pull.bind_to_random_port(LOOPBACK)
                push.connect(f"{LOOPBACK}:{port}")
                got = []
                for i in range(200):
                    fut = pull.recv()
                    await push.send(tag + b"%d" % i)
                    got.append(await asyncio.wait_for(fut, WAIT))
                return got
            finally:
                push.close(linger=0)
                pull.close(linger=0)

        loop = new_loop_of_this_kind()  # the other thread's own loop

        def worker() -> None:
            try:
                results["thread"] = loop.run_until_complete(exchange(b"t"))
            except BaseException as exc:  # recorded, asserted on below
                results["thread"] = exc
            finally:
                loop.close()

        thread = threading.Thread(target=worker)
        thread.start()
        try:
            assert await exchange(b"m") == [b"m%d" % i for i in range(200)]
        finally:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, WAIT * 2)
        assert not thread.is_alive()
        assert results["thread"] == [b"t%d" % i for i in range(200)]


# =============================================================================================
# Ordering and atomicity
# =============================================================================================


class TestOrdering:
    @pytest.mark.asyncio
    async def test_concurrent_recv_waiters_are_served_fifo(self, pair: Any) -> None:
        push, pull = pair

        async def waiter(started: asyncio.Event) -> bytes:
            fut = pull.recv()
            started.set()
            return await fut  # type: ignore[no-any-return]

        tasks = []
        for _ in range(10):
            started = asyncio.Event()
            tasks.append(asyncio.create_task(waiter(started)))
            await asyncio.wait_for(started.wait(), WAIT)
        for i in range(10):
            await push.send(b"%d" % i)
        results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert results == [b"%d" % i for i in range(10)]

    @pytest.mark.asyncio
    async def test_mixed_recv_kinds_are_served_fifo(self, pair: Any) -> None:
        push, pull = pair

        futs = [pull.recv_multipart(), pull.recv_string(), pull.recv_json(), pull.recv()]
        await push.send_multipart([b"m", b"p"])
        await push.send_string("s")
        await push.send_json({"j": 1})
        await push.send(b"r")
        assert await asyncio.wait_for(asyncio.gather(*futs), WAIT) == [
            [b"m", b"p"],
            "s",
            {"j": 1},
            b"r",
        ]

    @pytest.mark.asyncio
    async def test_queued_sends_go_out_in_call_order(self, ctx: Any) -> None:
        pull = ctx.socket(zmq.PULL)
        port = pull.bind_to_random_port(LOOPBACK)
        push = ctx.socket(zmq.PUSH)  # no peer yet: every send queues

        futs = [push.send(b"%d" % i) for i in range(5)]
        futs.append(push.send_multipart([b"5", b"part"]))
        assert not any(f.done() for f in futs)
        push.connect(f"{LOOPBACK}:{port}")
        received = [await asyncio.wait_for(pull.recv_multipart(), WAIT) for _ in range(6)]
        assert received == [[b"%d" % i] for i in range(5)] + [[b"5", b"part"]]
        assert await asyncio.wait_for(asyncio.gather(*futs), WAIT) == [None] * 6

    @pytest.mark.asyncio
    async def test_concurrent_send_multipart_never_interleaves(self, socket_pair: Any) -> None:
        """Many senders, a slow consumer and small HWMs: every message arrives whole."""
        opts = {zmq.SNDHWM: 5, zmq.RCVHWM: 5}
        pull, push = socket_pair(zmq.PULL, zmq.PUSH, bind_opts=opts, connect_opts=opts)
        senders, per_sender, parts = 20, 20, 5
        blob = os.urandom(2000)

        async def sender(s: int) -> None:
            for seq in range(per_sender):
                await push.send_multipart(
                    [b"%d" % s, b"%d" % seq] + [blob + b"%d:%d:%d" % (s, seq, k) for k in range(3)]
                )

        async def consumer() -> dict[int, list[int]]:
            seen: dict[int, list[int]] = {}
            for n in range(senders * per_sender):
                msg = await pull.recv_multipart()
                assert len(msg) == parts, msg[:2]
                s, seq = int(msg[0]), int(msg[1])
                assert msg[2:] == [blob + b"%d:%d:%d" % (s, seq, k) for k in range(3)]
                seen.setdefault(s, []).append(seq)
                if n % 50 == 0:
                    await asyncio.sleep(0.001)  # be slow: let the HWMs fill
            return seen

        consuming = asyncio.create_task(consumer())
        await asyncio.wait_for(asyncio.gather(*(sender(s) for s in range(senders))), WAIT)
        seen = await asyncio.wait_for(consuming, WAIT)
        assert seen == {s: list(range(per_sender)) for s in range(senders)}


# =============================================================================================
# Argument errors
# =============================================================================================


class TestArgumentErrors:
    @pytest.mark.parametrize("payload", ["str", 123, None, 1.5])
    @pytest.mark.asyncio
    async def test_send_non_buffer_raises_type_error(self, pair: Any, payload: Any) -> None:
        push, pull = pair

        with pytest.raises(TypeError):
            await asyncio.wait_for(push.send(payload), WAIT)
        assert await roundtrip(push, pull, b"ok") == b"ok"

    @pytest.mark.asyncio
    async def test_bad_multipart_sends_nothing_at_all(self, pair: Any) -> None:
        push, pull = pair

        with pytest.raises(TypeError):
            await asyncio.wait_for(push.send_multipart([b"a", 1]), WAIT)
        with pytest.raises(TypeError):
            await asyncio.wait_for(push.send_multipart([b"a", "text"]), WAIT)
        await push.send_multipart([b"ok"])
        assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == [b"ok"]

    @pytest.mark.asyncio
    async def test_bad_multipart_fails_even_when_queued(self, ctx: Any) -> None:
        """Type errors surface at once, not when the socket becomes writable (if ever)."""
        push = ctx.socket(zmq.PUSH)  # no peer: sends queue

        blocked = push.send(b"first")
        assert not blocked.done()
        with pytest.raises(TypeError):
            await asyncio.wait_for(push.send_multipart([b"a", 1]), 1)
        blocked.cancel()

    @pytest.mark.asyncio
    async def test_send_string_rejects_bytes(self, pair: Any) -> None:
        push, pull = pair

        with pytest.raises(TypeError):
            await asyncio.wait_for(push.send_string(b"bytes"), WAIT)
        assert await roundtrip(push, pull, b"ok") == b"ok"

    @pytest.mark.asyncio
    async def test_send_json_unserializable_raises_type_error(self, pair: Any) -> None:
        push, pull = pair

        with pytest.raises(TypeError):
            await asyncio.wait_for(push.send_json({"x": object()}), WAIT)
        assert await roundtrip(push, pull, b"ok") == b"ok"

    @pytest.mark.asyncio
    async def test_recv_into_readonly_buffer_fails_and_consumes_nothing(self, pair: Any) -> None:
        push, pull = pair

        await push.send(b"keep me")
        await wait_readable(pull)
        with pytest.raises((TypeError, BufferError)):
            await asyncio.wait_for(pull.recv_into(b"read-only"), WAIT)
        assert await asyncio.wait_for(pull.recv(), WAIT) == b"keep me"


# =============================================================================================
# Volume: HWM back-pressure, large messages, many sockets
# =============================================================================================


class TestVolume:
    @pytest.mark.parametrize("transport", ["inproc", "tcp"])
    @pytest.mark.asyncio
    async def test_hwm_back_pressure_delivers_everything_in_order(
        self, socket_pair: Any, transport: str
    ) -> None:
        pull, push = socket_pair(
            zmq.PULL,
            zmq.PUSH,
            transport=transport,
            bind_opts={zmq.RCVHWM: 10},
            connect_opts={zmq.SNDHWM: 10},
        )
        total = 2000

        async def sender() -> int:
            blocked = 0
            for i in range(total):
                fut = push.send(b"%d" % i)
                if not fut.done():
                    blocked += 1
                await fut
            return blocked

        async def consumer() -> list[bytes]:
            got = []
            for i in range(total):
                got.append(await pull.recv())
                if i % 200 == 0:
                    await asyncio.sleep(0.001)  # a slow consumer
            return got

        blocked, got = await asyncio.wait_for(asyncio.gather(sender(), consumer()), WAIT)
        assert got == [b"%d" % i for i in range(total)]
        if transport == "inproc":  # no kernel buffers: the HWM must have pushed back
            assert blocked > 0

    @pytest.mark.asyncio
    async def test_large_message_roundtrip(self, pair: Any) -> None:
        push, pull = pair
        big = os.urandom(10 * 1024 * 1024)

        fut = pull.recv_multipart(copy=False)
        await asyncio.wait_for(push.send_multipart([big, b"small", big[::-1]]), WAIT)
        frames = await asyncio.wait_for(fut, WAIT)
        assert len(frames) == 3
        assert frames[0].bytes == big
        assert frames[1].bytes == b"small"
        assert frames[2].bytes == big[::-1]
        await push.send(big)
        assert await asyncio.wait_for(pull.recv(), WAIT) == big

    @pytest.mark.asyncio
    async def test_many_socket_pairs_all_deliver(self, socket_pair: Any) -> None:
        pairs = [socket_pair(zmq.PAIR, zmq.PAIR, transport="inproc") for _ in range(200)]

        pending = [b.recv() for _a, b in pairs]  # 200 registered waiters
        for i, (a, _b) in enumerate(pairs):
            await a.send(b"%d" % i)
        got = await asyncio.wait_for(asyncio.gather(*pending), WAIT)
        assert got == [b"%d" % i for i in range(200)]
        # and back the other way, all concurrently
        replies = [a.recv() for a, _b in pairs]
        await asyncio.gather(*(b.send(b"r%d" % i) for i, (_a, b) in enumerate(pairs)))
        assert await asyncio.wait_for(asyncio.gather(*replies), WAIT) == [
            b"r%d" % i for i in range(200)
        ]


@pytest.mark.asyncio
async def test_a_receive_out_of_turn_fails_after_one_found_nothing(
    ctx: Any, inproc_addr: Any
) -> None:
    """A receive that found nothing makes the next one ask EVENTS before trying: REQ and REP
    out of turn (no POLLIN there) must still fail with EFSM, not wait for ever."""
    rep = ctx.socket(zmq.REP)
    addr = inproc_addr()
    rep.bind(addr)
    req = ctx.socket(zmq.REQ)
    req.connect(addr)

    request = rep.recv()  # finds nothing: waits
    await req.send(b"q")
    reply = req.recv()  # finds nothing: waits
    assert await asyncio.wait_for(request, 5) == b"q"
    for sock in (rep, req):
        out_of_turn = sock.recv()
        assert out_of_turn.done()  # failed at once, did not wait
        with pytest.raises(zmq.ZMQError) as info:
            await out_of_turn
        assert info.value.errno == zmq.EFSM
        if sock is rep:
            await rep.send(b"a")
            assert await asyncio.wait_for(reply, 5) == b"a"
    await req.send(b"q2")  # and the next exchange goes through
    assert await asyncio.wait_for(rep.recv(), 5) == b"q2"
