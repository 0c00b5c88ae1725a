"""zmq_async.stream.ZMQStream: every method, on Tornado's IOLoop and on a plain asyncio loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.ioloop
import zmq

import zmq_async._reactor
import zmq_async.asyncio
import zmq_async.tornado
from zmq_async._reactor import BATCH
from zmq_async.stream import SendQueueFull, ZMQStream

LOG = "zmq_async.stream"

#: Where a test's streams are attached: ``ioloop``, to ``IOLoop.current()`` (Tornado's wrapper
#: of the running asyncio loop, the default when no io_loop is given); ``loop``, to the running
#: asyncio loop itself. pytest-asyncio runs each test on asyncio's loop and on uvloop's.
KINDS = ["ioloop", "loop"]

#: The bound of each test (the old hand-made runner's was 10 s on the loop alone).
pytestmark = pytest.mark.timeout(20)


def on_uvloop() -> bool:
    """Whether the running loop is uvloop's."""
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


def over_future_socket(sock: zmq_async.asyncio.Socket, **kwargs: Any) -> ZMQStream:
    """A stream over a zmq_async future socket: as the peer's, it warns and shows a plain
    shadow as ``stream.socket`` (pyzmq's test_shadow_socket); it shares the socket's reactor."""
    with pytest.warns(RuntimeWarning, match="plain shadow"):
        stream = ZMQStream(sock, **kwargs)
    assert type(stream.socket) is zmq.Socket and stream.socket.underlying == sock.underlying
    assert stream._reactor is sock._reactor
    return stream


class Env:
    """One test's stream kind, context and helpers; streams are closed at the end."""

    def __init__(self, kind: str, ctx: zmq.Context[Any]) -> None:
        self.kind = kind
        self.ctx = ctx
        self.streams: list[ZMQStream] = []

    def stream(self, sock: zmq.Socket[Any], **kwargs: Any) -> ZMQStream:
        """A stream on the running loop: by default on Tornado's IOLoop; else given the loop."""
        if self.kind == "loop":
            kwargs.setdefault("io_loop", asyncio.get_running_loop())
        if isinstance(sock, zmq_async.asyncio.Socket):
            stream = over_future_socket(sock, **kwargs)
        else:
            stream = ZMQStream(sock, **kwargs)
        self.streams.append(stream)
        return stream

    def socket(self, kind: int, **options: Any) -> zmq.Socket[Any]:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        for name, value in options.items():
            sock.set(getattr(zmq, name), value)
        return sock

    def pair(self, a: int = zmq.PUSH, b: int = zmq.PULL, **options: Any) -> tuple[Any, Any]:
        """Two connected streams over tcp: ``(a, b)``, ``b`` bound."""
        sb = self.stream(self.socket(b, **options))
        port = sb.bind_to_random_port("tcp://127.0.0.1")
        sa = self.stream(self.socket(a, **options))
        sa.connect(f"tcp://127.0.0.1:{port}")
        return sa, sb

    def push_to_future_pull(self, module: Any = zmq_async.asyncio) -> tuple[ZMQStream, Any]:
        """A PUSH stream connected to a bound PULL future socket of ``module`` (its Context
        shadowing this one), not a stream yet: ``(push, pull)``."""
        pull = module.Context.shadow(self.ctx).socket(zmq.PULL)
        pull.linger = 0
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push = self.stream(self.socket(zmq.PUSH))
        push.connect(f"tcp://127.0.0.1:{port}")
        return push, pull


@pytest.fixture(params=KINDS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    ctx: zmq.Context[Any] = zmq.Context()
    e = Env(str(request.param), ctx)
    yield e
    for stream in e.streams:
        if not stream.closed():
            stream.close(linger=0)
    ctx.destroy(linger=0)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` is true, letting the loop run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


async def settle(seconds: float = 0.05) -> None:
    """Let the loop run a while: used only to show that something does NOT happen."""
    await asyncio.sleep(seconds)


# -- receiving -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_on_recv_gets_multipart_lists_of_bytes(env: Env) -> None:
    push, pull = env.pair()
    got: list[Any] = []
    pull.on_recv(got.append)
    push.send_multipart([b"a", b"b"])
    push.send(b"c")
    await until(lambda: len(got) == 2)
    assert got == [[b"a", b"b"], [b"c"]]


@pytest.mark.asyncio
async def test_req_and_rep_streams_wait_their_turn_without_spinning_or_logging(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A REQ stream listening before it sent (and a REP before its reply) is not an error.

    A receive out of turn fails with EFSM; the peer only receives once EVENTS shows POLLIN.
    Retrying instead logged "receive error" in a busy loop (a round trip took ~1 ms).
    """

    with caplog.at_level(logging.ERROR, logger=LOG):
        req, rep = env.pair(zmq.REQ, zmq.REP)
        rep.on_recv(rep.send_multipart)
        replies: list[Any] = []
        req.on_recv(replies.append)
        cpu = time.process_time()
        await settle(0.3)  # the REQ stream listens before its first send
        idle = (time.process_time() - cpu) / 0.3
        for i in range(20):
            req.send(b"%d" % i)
            await until(lambda n=i + 1: len(replies) == n)
        assert replies == [[b"%d" % i] for i in range(20)]
        assert idle < 0.3, f"{idle:.2f} s of CPU per second while a REQ stream waits its turn"
    assert [r.getMessage() for r in caplog.records if r.name == LOG] == []


def count_agains(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the ``zmq.Again`` errors built from now on (a failed NOBLOCK call builds one)."""
    built = [0]
    init = zmq.Again.__init__

    def counting_init(self: zmq.Again, *args: Any, **kwargs: Any) -> None:
        built[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(zmq.Again, "__init__", counting_init)
    return built


@pytest.mark.asyncio
async def test_streams_in_lockstep_look_before_receiving_instead_of_failing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages one per wakeup (a REQ/REP turn): after the first, a stream asks zmq_poll
    rather than fail a receive (a zmq.Again costs several times that), and still wakes for
    the next message; a burst after the trickle is received without asking, in order."""
    req, rep = env.pair(zmq.REQ, zmq.REP)
    rep.on_recv(rep.send_multipart)
    replies: list[Any] = []
    req.on_recv(replies.append)
    built = count_agains(monkeypatch)
    n = 40
    for i in range(n):
        req.send(b"%d" % i)
        await until(lambda k=i + 1: len(replies) == k)
    assert replies == [[b"%d" % i] for i in range(n)]
    assert built[0] <= n // 4, built  # (about one per round trip before)

    push, pull = env.pair()
    got: list[Any] = []
    pull.on_recv(got.append)
    for i in range(5):
        push.send(b"%d" % i)
        await until(lambda k=i + 1: len(got) == k)
    burst = 3 * BATCH
    for i in range(5, 5 + burst):
        push.send(b"%d" % i)
    await until(lambda: len(got) == 5 + burst)
    assert got == [[b"%d" % i] for i in range(5 + burst)]


@pytest.mark.asyncio
async def test_a_req_stream_sends_queued_requests_in_lockstep_as_the_peer(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The peer's stream sends only when EVENTS shows POLLOUT, so requests sent ahead of
    their replies on a REQ stream wait their turn. A send tried out of turn fails with
    EFSM: that is "not now", not an unsendable message (the batched send queue tried the
    next request right after the first, logged "SEND Error" and dropped it)."""
    with caplog.at_level(logging.ERROR, logger=LOG):
        req, rep = env.pair(zmq.REQ, zmq.REP)
        rep.on_recv(lambda msg: rep.send_multipart([b"re " + msg[0]]))
        replies: list[Any] = []
        sent: list[Any] = []
        req.on_recv(replies.append)
        req.on_send(lambda msg, status: sent.append(msg))
        for i in range(5):
            req.send(b"%d" % i)
        await until(lambda: len(replies) == 5)
    assert replies == [[b"re %d" % i] for i in range(5)]
    assert sent == [[b"%d" % i] for i in range(5)]
    assert [r.getMessage() for r in caplog.records if r.name == LOG] == []


@pytest.mark.asyncio
async def test_a_rep_stream_replying_ahead_of_the_request_waits_for_it(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply sent before its request arrived waits for it, as with the peer's stream
    (it sends on POLLOUT only), whether sent directly or behind a queue."""
    with caplog.at_level(logging.ERROR, logger=LOG):
        req, rep = env.pair(zmq.REQ, zmq.REP)
        got: list[Any] = []
        rep.on_recv(got.append)
        rep.send(b"early")  # no request yet: out of turn
        replies: list[Any] = []
        req.on_recv(replies.append)
        req.send(b"ask")
        await until(lambda: replies == [[b"early"]])
    assert got == [[b"ask"]]
    assert [r.getMessage() for r in caplog.records if r.name == LOG] == []


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.asyncio
async def test_a_trickle_then_a_multipart_burst_paused_and_replaced_midway_loses_nothing(
    env: Env, copy: bool
) -> None:
    """Messages one per wakeup (the receiver looks before a second receive), then a burst of
    multipart messages during which the callback stops receiving, resumes later, and is
    replaced: every message arrives once, in order (dropping the receiver after a look that
    found nothing fails this)."""
    push, pull = env.pair()
    got: list[list[bytes]] = []

    def as_bytes(msg: list[Any]) -> list[bytes]:
        return [part if copy else part.bytes for part in msg]

    def first(msg: list[Any]) -> None:
        got.append(as_bytes(msg))
        if len(got) == 3:
            pull.stop_on_recv()
            asyncio.get_running_loop().call_later(0.05, pull.on_recv, first, copy)
        elif len(got) == 10:
            pull.on_recv(lambda msg: got.append(as_bytes(msg)), copy=copy)

    pull.on_recv(first, copy=copy)
    for i in range(2):  # a trickle: one message per wakeup
        push.send_multipart([b"%d" % i, b"part"])
        await until(lambda n=i + 1: len(got) == n)
        await settle(0.02)
    total = 2 + 3 * BATCH
    for i in range(2, total):
        push.send_multipart([b"%d" % i, b"part"])
    await until(lambda: len(got) == total)
    await settle()
    assert got == [[b"%d" % i, b"part"] for i in range(total)]


@pytest.mark.asyncio
async def test_a_send_queue_meeting_the_hwm_mid_batch_goes_on_in_order_once_drained(
    env: Env,
) -> None:
    """The batched send queue stops where the socket refuses (HWM) and resumes on its edge,
    with on_send called once per message, in order."""
    push, pull = env.pair(SNDHWM=3, RCVHWM=3)
    sent: list[Any] = []
    push.on_send(lambda msg, status: sent.append(msg))
    total = 3 * BATCH + 7
    payload = b"x" * 65536  # beyond what the kernel's buffers take, with the HWMs
    for i in range(total):
        push.send_multipart([b"%d" % i, payload])
    await settle(0.2)
    assert 0 < len(sent) < total  # refused midway, not all in one batch
    got: list[Any] = []
    pull.on_recv(got.append)
    await until(lambda: len(got) == total)
    assert got == [[b"%d" % i, payload] for i in range(total)]
    await until(lambda: len(sent) == total)
    assert sent == got


@pytest.mark.asyncio
async def test_on_recv_wakes_after_idle_and_copy_false_gives_frames(env: Env) -> None:
    push, pull = env.pair()
    got: list[Any] = []
    pull.on_recv(got.append, copy=False)
    await settle(0.1)  # idle: the stream must wake on the FD
    push.send(b"frame")
    await until(lambda: got)
    (msg,) = got
    assert isinstance(msg[0], zmq.Frame) and msg[0].bytes == b"frame"
    pull.on_recv(got.append, copy=True)  # re-registering switches copy in place
    push.send(b"bytes")
    await until(lambda: len(got) == 2)
    assert got[1] == [b"bytes"]


@pytest.mark.asyncio
async def test_a_callback_replacing_itself_mid_batch_hands_over_the_next_message(
    env: Env,
) -> None:
    """One wakeup drains many messages; ``on_recv`` from a callback takes effect at once.

    The next message of the same batch goes to the new callback, with its ``copy``; none is
    lost, repeated or reordered.
    """
    push, pull = env.pair()
    for i in range(10):
        push.send(b"%d" % i)
    await settle()  # all ten wait in the socket: one drain serves them
    first: list[Any] = []
    second: list[Any] = []

    def before(msg: list[Any]) -> None:
        first.append(msg)
        if len(first) == 3:
            pull.on_recv(second.append, copy=False)

    pull.on_recv(before)
    await until(lambda: len(first) + len(second) == 10)
    assert first == [[b"0"], [b"1"], [b"2"]]
    assert all(isinstance(msg[0], zmq.Frame) for msg in second)
    assert [msg[0].bytes for msg in second] == [b"%d" % i for i in range(3, 10)]


@pytest.mark.asyncio
async def test_on_recv_none_pauses_and_nothing_is_lost_on_resume(env: Env) -> None:
    push, pull = env.pair()
    got: list[Any] = []
    pull.on_recv(got.append)
    push.send(b"0")
    await until(lambda: got)
    pull.on_recv(None)
    assert not pull.receiving()
    for i in range(1, 6):
        push.send(b"%d" % i)
    await settle()
    assert got == [[b"0"]]
    pull.on_recv(got.append)
    assert pull.receiving()
    await until(lambda: len(got) == 6)
    assert [m[0] for m in got] == [b"%d" % i for i in range(6)]


@pytest.mark.asyncio
async def test_stop_on_recv_and_on_recv_stream(env: Env) -> None:
    push, pull = env.pair()
    got: list[Any] = []
    pull.on_recv_stream(lambda stream, msg: got.append((stream, msg)))
    push.send(b"x")
    await until(lambda: got)
    assert got == [(pull, [b"x"])]
    pull.stop_on_recv()
    push.send(b"y")
    await settle()
    assert len(got) == 1
    pull.on_recv_stream(None)
    assert not pull.receiving()


@pytest.mark.asyncio
async def test_callbacks_must_be_callable(env: Env) -> None:
    _, pull = env.pair()
    for register in (pull.on_recv, pull.on_send):
        with pytest.raises(TypeError):
            register(1)  # type: ignore[arg-type]
        with pytest.raises(AssertionError):  # what the peer raises
            register(zmq)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_busy_stream_does_not_starve_the_loop(env: Env) -> None:
    """One dispatch delivers at most BATCH messages, then other callbacks get their turn."""

    push, pull = env.pair()
    n = 10 * BATCH
    for _ in range(n):
        push.send(b"m")
    await until(lambda: pull.socket.get(zmq.EVENTS) & zmq.POLLIN)
    await settle(0.1)  # let every message reach the PULL
    got: list[Any] = []
    seen_by_other: list[int] = []
    loop = asyncio.get_running_loop()

    def other() -> None:
        seen_by_other.append(len(got))
        if len(got) < n:
            loop.call_soon(other)

    pull.on_recv(got.append)
    loop.call_soon(other)
    await until(lambda: len(got) == n)
    # Other callbacks ran between batches, not only after everything was delivered.
    steps = sorted(set(seen_by_other))
    assert len(steps) >= n // BATCH - 1
    assert max(b - a for a, b in itertools.pairwise(steps)) <= 2 * BATCH


# -- sending ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_send_variants_and_on_send(env: Env) -> None:
    push, pull = env.pair()
    got: list[Any] = []
    sent: list[Any] = []
    pull.on_recv(got.append)
    push.on_send(lambda msg, status: sent.append((msg, status)))
    push.send(b"raw")
    push.send_multipart([b"m1", b"m2"])
    push.send_string("text")
    push.send_unicode("uni", encoding="utf-16")
    push.send_json({"a": 1})
    push.send_pyobj((1, 2))
    await until(lambda: len(got) == 6)
    assert got[:4] == [[b"raw"], [b"m1", b"m2"], [b"text"], ["uni".encode("utf-16")]]
    assert zmq.utils.jsonapi.loads(got[4][0]) == {"a": 1}
    assert pickle.loads(got[5][0]) == (1, 2)
    await until(lambda: len(sent) == 6)
    assert sent[0] == ([b"raw"], None) and sent[1] == ([b"m1", b"m2"], None)
    assert not push.sending()
    with pytest.raises(TypeError):
        push.send_string(b"not text")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_send_callback_registers_on_send_and_on_send_stream(env: Env) -> None:
    push, _pull = env.pair()
    first: list[Any] = []
    push.send(b"a", callback=lambda msg, status: first.append(msg))
    push.send(b"b")  # the callback given before stays registered, as with the peer
    await until(lambda: len(first) == 2)
    assert first == [[b"a"], [b"b"]]
    streamed: list[Any] = []
    push.on_send_stream(lambda stream, msg, status: streamed.append((stream, msg)))
    push.send(b"c")
    await until(lambda: streamed)
    assert streamed == [(push, [b"c"])]
    push.stop_on_send()
    push.send(b"d")
    push.on_send_stream(None)
    await settle()
    assert len(streamed) == 1 and len(first) == 2


@pytest.mark.asyncio
async def test_track_gives_a_message_tracker(env: Env) -> None:
    push, _pull = env.pair()
    statuses: list[Any] = []
    push.send(b"x" * 1000, copy=False, track=True, callback=lambda m, s: statuses.append(s))
    await until(lambda: statuses)
    assert isinstance(statuses[0], zmq.MessageTracker)


@pytest.mark.asyncio
async def test_sends_queue_while_the_socket_cannot_send_and_go_out_in_order(env: Env) -> None:
    push = env.stream(env.socket(zmq.PUSH))  # no peer yet: every send would block
    for i in range(20):
        push.send(b"%d" % i)
    assert push.sending() and push.send_queue_size == 20
    await settle()
    assert push.send_queue_size == 20
    pull = env.stream(env.socket(zmq.PULL))
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    got: list[Any] = []
    pull.on_recv(got.append)
    push.connect(f"tcp://127.0.0.1:{port}")
    push.send(b"20")  # queued behind the others
    await until(lambda: len(got) == 21)
    assert [m[0] for m in got] == [b"%d" % i for i in range(21)]
    assert not push.sending()


@pytest.mark.asyncio
async def test_queued_sends_go_out_in_batches_not_one_events_read_each(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send queue drains up to BATCH messages per wakeup, each followed by its on_send
    callback, in order: not one EVENTS read (pyzmq's costliest call) per message."""
    push, pull = env.pair()
    got: list[Any] = []
    sent: list[Any] = []
    pull.on_recv(got.append)
    await until(lambda: push.socket.get(zmq.EVENTS) & zmq.POLLOUT)
    events_reads = 0
    real_get = zmq_async._reactor._get

    def counting_get(socket: Any, option: int) -> Any:
        nonlocal events_reads
        events_reads += option == zmq.EVENTS
        return real_get(socket, option)

    monkeypatch.setattr(zmq_async._reactor, "_get", counting_get)
    n = 8 * BATCH
    push.on_send(lambda msg, status: sent.append(msg[0]))  # every send queues, in order
    for i in range(n):
        push.send(b"%d" % i)
    assert push.send_queue_size == n
    await until(lambda: not push.sending())
    assert sent == [b"%d" % i for i in range(n)]
    assert events_reads <= n // 8
    await until(lambda: len(got) == n)
    assert [m[0] for m in got] == sent


@pytest.mark.asyncio
async def test_an_unsendable_message_is_logged_in_its_turn_and_the_stream_goes_on(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """As the peer: send() returns, the error is logged when the message's turn comes.

    jupyter_client's test_stream_on_recv sends a dict from inside on_recv, then sets a flag.
    """

    with caplog.at_level(logging.ERROR, logger=LOG):
        a, b = env.pair(zmq.PAIR, zmq.PAIR)
        got: list[Any] = []
        b.on_recv(got.append)
        flag: list[bool] = []
        sent: list[Any] = []
        a.on_send(lambda msg, status: sent.append(msg))

        def on_recv(msg: list[Any]) -> None:
            a.send(b"before")
            assert a.send({"a": "dict"}) is None  # type: ignore[arg-type]
            a.send_multipart([b"ok", object()])
            a.send_multipart([])
            a.send(b"after")
            flag.append(True)

        a.on_recv(on_recv)
        b.send(b"go")
        await until(lambda: flag and len(got) == 2)
        assert got == [[b"before"], [b"after"]]
        assert sent == [[b"before"], [b"after"]]  # no send callback for the failed ones
        a.send(b"later")
        await until(lambda: len(got) == 3)
        assert got[2] == [b"later"] and not a.closed() and not a.sending()
    errors = [r for r in caplog.records if r.name == LOG and "SEND Error" in r.getMessage()]
    assert len(errors) == 3
    assert "buffer interface" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is TypeError


@pytest.mark.asyncio
async def test_flush_logs_an_unsendable_message_too(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=LOG):
        a, b = env.pair(zmq.PAIR, zmq.PAIR)
        got: list[Any] = []
        b.on_recv(got.append)
        await until(lambda: a.socket.get(zmq.EVENTS) & zmq.POLLOUT)
        a.on_send(lambda msg, status: None)  # queue, do not send at once
        a.send(object())
        a.send(b"after")
        assert a.send_queue_size == 2
        assert a.flush(zmq.POLLOUT) == 1
        assert a.send_queue_size == 0
        await until(lambda: got)
        assert got == [[b"after"]]
    assert any("SEND Error" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_max_send_queue_refuses_with_send_queue_full_then_drains(env: Env) -> None:
    push = env.stream(env.socket(zmq.PUSH), max_send_queue=3)
    drained: list[int] = []
    push.set_drain_callback(lambda: drained.append(push.send_queue_size))
    for i in range(3):
        push.send(b"%d" % i)
    with pytest.raises(SendQueueFull) as info:
        push.send(b"3")
    assert isinstance(info.value, zmq.Again) and info.value.errno == zmq.EAGAIN
    assert "full" in str(info.value)
    assert push.send_queue_size == 3
    pull = env.stream(env.socket(zmq.PULL))
    got: list[Any] = []
    pull.on_recv(got.append)
    push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
    await until(lambda: len(got) == 3)
    await until(lambda: drained)
    assert drained == [0]
    push.send(b"4")  # room again; the drain callback is not called without a refusal
    await until(lambda: len(got) == 4)
    await settle()
    assert drained == [0]
    assert [m[0] for m in got] == [b"0", b"1", b"2", b"4"]
    with pytest.raises(ValueError):
        ZMQStream(env.socket(zmq.PUSH), io_loop=asyncio.get_running_loop(), max_send_queue=0)


# -- flush -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_flush_sends_and_receives_now_and_counts(env: Env) -> None:
    push = env.stream(env.socket(zmq.PUSH))
    push.on_send(lambda msg, status: None)  # with a send callback, sends are queued
    for i in range(3):
        push.send(b"%d" % i)
    assert push.flush() == 0  # no peer: nothing can go
    pull = env.stream(env.socket(zmq.PULL))
    push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
    await until(lambda: push.socket.get(zmq.EVENTS) & zmq.POLLOUT)
    assert push.flush(zmq.POLLIN) == 0  # POLLIN only: a PUSH has nothing to receive
    assert push.flush(zmq.POLLOUT, limit=2) == 2
    assert push.send_queue_size == 1
    assert push.flush() == 1
    assert not push.sending()
    await until(lambda: pull.socket.get(zmq.EVENTS) & zmq.POLLIN)
    got: list[Any] = []
    pull.on_recv(got.append)
    assert pull.flush(limit=1) == 1
    assert got == [[b"0"]]  # delivered by flush itself, before the loop runs
    pull.on_recv(None)
    await until(lambda: pull.socket.get(zmq.EVENTS) & zmq.POLLIN)
    assert pull.flush(zmq.POLLIN) == 2  # no callback: received and dropped
    assert got == [[b"0"]]
    assert pull.flush() == 0


# -- callback errors -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_callback_exceptions_are_logged_and_the_stream_keeps_working(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=LOG):
        push, pull = env.pair()
        got: list[Any] = []

        def callback(msg: list[bytes]) -> None:
            got.append(msg)
            if msg == [b"boom"]:
                raise ValueError("boom")

        pull.on_recv(callback)
        push.on_send(lambda msg, status: 1 / 0)
        push.send(b"boom")
        push.send(b"after")
        await until(lambda: len(got) == 2)
        assert got == [[b"boom"], [b"after"]]
    errors = [r for r in caplog.records if r.name == LOG]
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in errors)
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in errors)
    assert all("Uncaught exception in ZMQStream callback" in r.getMessage() for r in errors)


@pytest.mark.asyncio
async def test_coroutine_callbacks_run_and_their_errors_are_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger=LOG):
        push, pull = env.pair()
        got: list[Any] = []

        async def callback(msg: list[bytes]) -> None:
            await asyncio.sleep(0.01)
            got.append(msg)
            if msg == [b"boom"]:
                raise KeyError("boom")

        pull.on_recv(callback)
        push.send(b"boom")
        push.send(b"ok")
        await until(lambda: len(got) == 2)
        await until(lambda: any(r.name == LOG for r in caplog.records))
    (record,) = [r for r in caplog.records if r.name == LOG]
    assert record.exc_info and record.exc_info[0] is KeyError


@pytest.mark.asyncio
async def test_stop_on_err_is_a_logged_no_op(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG):
        _, pull = env.pair()
        pull.stop_on_err()
        pull.on_err(print)
    assert [r.getMessage() for r in caplog.records if r.name == LOG] == [
        "on_err does nothing, and will be removed"
    ] * 2


# -- closing ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_close_stops_every_callback_and_calls_the_close_callback_once(env: Env) -> None:
    push, pull = env.pair()
    got: list[Any] = []
    closes: list[int] = []
    pull.set_close_callback(lambda: closes.append(1))

    def callback(msg: list[bytes]) -> None:
        got.append(msg)
        if len(got) == 3:
            pull.close()  # from inside a callback, with more messages waiting

    pull.on_recv(callback)
    for i in range(10):
        push.send(b"%d" % i)
    fd = pull.socket.FD
    await until(lambda: closes)
    await settle()
    assert len(got) == 3 and closes == [1]
    assert not asyncio.get_running_loop().remove_reader(fd)  # unwatched before closing
    assert pull.closed() and pull.socket is None
    pull.close()
    assert closes == [1]
    with pytest.raises(OSError, match="closed"):
        pull.on_recv(got.append)
    with pytest.raises(OSError, match="closed"):
        pull.send(b"x")
    with pytest.raises(OSError, match="closed"):
        pull.flush()


@pytest.mark.asyncio
async def test_close_drops_unsent_messages_and_their_callbacks(env: Env) -> None:
    push = env.stream(env.socket(zmq.PUSH))
    sent: list[Any] = []
    push.on_send(lambda msg, status: sent.append(msg))
    push.send(b"never")
    fd = push.socket.FD
    push.close(linger=0)
    assert not asyncio.get_running_loop().remove_reader(fd)  # unwatched before closing
    assert not push.sending()
    await settle()
    assert sent == []


@pytest.mark.asyncio
async def test_socket_closed_under_the_stream_closes_it(env: Env) -> None:
    _push, pull = env.pair()
    closes: list[int] = []
    pull.set_close_callback(lambda: closes.append(1))
    pull.on_recv(lambda msg: None)
    with pytest.warns(UserWarning, match="after closing socket"):
        pull.socket.close()
        assert pull.closed()
    assert closes == [1]


@pytest.mark.asyncio
async def test_context_terminated_under_the_stream_closes_it(env: Env) -> None:
    """The reactor's re-check sees ENOTSOCK/ETERM and the stream closes itself, once."""
    if on_uvloop():
        pytest.skip("libuv aborts the process when a watched FD is closed under it")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the FD is unregistered after libzmq closed it
        ctx: zmq.Context[Any] = zmq.Context()
        sock = ctx.socket(zmq.PULL)
        sock.linger = 0
        stream = env.stream(sock)
        closes: list[int] = []
        stream.set_close_callback(lambda: closes.append(1))
        stream.on_recv(lambda msg: None)
        ctx.destroy(linger=0)  # closes the socket without the stream's knowledge
        await until(lambda: closes)
        assert stream.closed() and closes == [1]


# -- the socket, and which sockets a stream takes ----------------------------------------------


@pytest.mark.asyncio
async def test_socket_methods_are_reachable_on_the_stream(env: Env) -> None:
    sub = env.stream(env.socket(zmq.SUB))
    assert sub.bind == sub.socket.bind and sub.connect == sub.socket.connect
    assert sub.getsockopt(zmq.TYPE) == zmq.SUB
    sub.setsockopt(zmq.RCVHWM, 7)
    assert sub.socket.get(zmq.RCVHWM) == 7
    sub.setsockopt_string(zmq.SUBSCRIBE, "topic")
    sub.subscribe(b"other")  # anything else the socket has
    assert sub.getsockopt_string(zmq.LAST_ENDPOINT) == ""
    with pytest.raises(AttributeError):
        sub.recv  # noqa: B018 - receiving is on_recv's job
    io_loop = sub.io_loop
    if env.kind == "ioloop":
        assert isinstance(io_loop, tornado.ioloop.IOLoop)
        assert io_loop.asyncio_loop is asyncio.get_running_loop()  # type: ignore[attr-defined]
    else:
        assert io_loop is asyncio.get_running_loop()
    assert "ZMQStream" in repr(sub)


@pytest.mark.parametrize("module", [zmq_async.asyncio, zmq_async.tornado])
@pytest.mark.asyncio
async def test_a_zmq_async_socket_shares_its_reactor_with_the_stream(env: Env, module: Any) -> None:
    push, pull = env.push_to_future_pull(module)
    push.send(b"for the future")
    assert await asyncio.wait_for(pull.recv(), 5) == b"for the future"
    stream = env.stream(pull)  # a plain shadow as stream.socket, the socket's reactor shared
    got: list[Any] = []
    stream.on_recv(got.append)
    push.send_multipart([b"for", b"the stream"])
    await until(lambda: got)
    assert got == [[b"for", b"the stream"]]  # plain frames, not Futures
    stream.on_recv(None)
    push.send(b"future again")
    assert await asyncio.wait_for(pull.recv(), 5) == b"future again"
    stream.close()
    assert pull.closed


@pytest.mark.asyncio
async def test_a_stream_and_futures_sharing_a_socket_take_turns(env: Env) -> None:
    """With futures waiting on the shared socket, the stream takes one message per turn."""

    push, pull = env.push_to_future_pull()
    stream = env.stream(pull)
    got: list[Any] = []
    stream.on_recv(lambda msg: got.append(msg[0]))
    futures = [pull.recv() for _ in range(3)]  # queued behind the stream's receiver
    for i in range(8):
        push.send(b"%d" % i)
    await until(lambda: len(got) == 5)
    # FIFO: the stream was first in line, the futures next; then the stream again.
    assert [f.result() for f in futures] == [b"1", b"2", b"3"]
    assert got == [b"0", b"4", b"5", b"6", b"7"]


@pytest.mark.asyncio
async def test_a_batch_of_multipart_messages_as_frames(env: Env) -> None:
    push, pull = env.pair()
    n = 3 * BATCH + 5
    for i in range(n):
        push.send_multipart([b"%d" % i, b"", b"x" * (i % 3)])
    got: list[Any] = []
    pull.on_recv(got.append, copy=False)
    await until(lambda: len(got) == n)
    assert all(isinstance(f, zmq.Frame) for msg in got for f in msg)
    assert [[f.bytes for f in msg] for msg in got] == [
        [b"%d" % i, b"", b"x" * (i % 3)] for i in range(n)
    ]


@pytest.mark.asyncio
async def test_a_zmq_async_socket_closed_by_its_owner_closes_the_stream(env: Env) -> None:
    ctx = zmq_async.asyncio.Context.shadow(env.ctx)
    pull = ctx.socket(zmq.PULL)
    stream = env.stream(pull)
    closes: list[int] = []
    stream.set_close_callback(lambda: closes.append(1))
    stream.on_recv(lambda msg: None)
    pull.close(linger=0)
    assert closes == [1] and stream.closed()


@pytest.mark.asyncio
async def test_a_peer_future_socket_becomes_a_plain_shadow_with_a_warning(env: Env) -> None:
    import zmq.asyncio

    peer_ctx = zmq.asyncio.Context.shadow(env.ctx)
    sock = peer_ctx.socket(zmq.PUSH)
    sock.linger = 0
    with pytest.warns(RuntimeWarning, match="shadow"):
        stream = env.stream(sock)
    assert type(stream.socket) is zmq.Socket
    assert stream.socket.underlying == sock.underlying
    stream.close()
    sock.close()


def test_what_is_not_a_socket_or_loop_is_refused(env: Env, monkeypatch: Any) -> None:
    with pytest.raises(TypeError, match=r"zmq\.Socket"):
        ZMQStream(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="io_loop"):
        ZMQStream(env.socket(zmq.PUSH), io_loop=object())
    monkeypatch.delitem(sys.modules, "tornado.ioloop")
    with pytest.raises(RuntimeError, match="event loop"):
        ZMQStream(env.socket(zmq.PUSH))


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_router_echo_server_with_many_dealers(env: Env) -> None:
    router = env.stream(env.socket(zmq.ROUTER))
    port = router.bind_to_random_port("tcp://127.0.0.1")
    router.on_recv(router.send_multipart)  # the one-line echo server
    replies: dict[int, list[bytes]] = {}
    for d in range(4):
        dealer = env.stream(env.socket(zmq.DEALER))
        dealer.connect(f"tcp://127.0.0.1:{port}")
        replies[d] = []
        dealer.on_recv(lambda msg, d=d: replies[d].extend(msg))
        for i in range(50):
            dealer.send(b"%d-%d" % (d, i))
    await until(lambda: all(len(r) == 50 for r in replies.values()))
    for d, r in replies.items():
        assert r == [b"%d-%d" % (d, i) for i in range(50)]


@pytest.mark.asyncio
async def test_no_wakeup_waits_for_the_slow_recheck(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 1: resuming receives, and queueing a send, look at EVENTS at once.

    With the reactor's safety-net re-check pushed beyond the test's timeout, a missing kick
    (the edge was consumed while no one waited) would leave these waiting for ever.
    """
    monkeypatch.setattr(zmq_async._reactor, "RECHECK_FIRST", 60.0)

    push, pull = env.pair()
    got: list[Any] = []
    sent: list[Any] = []
    pull.on_recv(got.append)
    pull.on_recv(None)
    push.send(b"while paused")
    await until(lambda: pull.socket.get(zmq.EVENTS) & zmq.POLLIN)  # consumes the edge
    pull.on_recv(got.append)
    await until(lambda: got, timeout=2)
    assert got == [[b"while paused"]]
    await until(lambda: push.socket.get(zmq.EVENTS) & zmq.POLLOUT)
    push.on_send(lambda msg, status: sent.append(msg))  # sends now go through the queue
    push.send(b"queued")
    await until(lambda: sent, timeout=2)
    await until(lambda: len(got) == 2, timeout=2)


@pytest.mark.asyncio
async def test_hwm_back_pressure_with_a_slow_consumer_loses_nothing(env: Env) -> None:
    push, pull = env.pair(SNDHWM=5, RCVHWM=5)
    n = 500
    for i in range(n):
        push.send_multipart([b"%d" % i, b"x" * 1000])
    await until(lambda: 0 < push.send_queue_size < n)  # the HWMs filled up
    got: list[bytes] = []

    def slow(msg: list[bytes]) -> None:
        got.append(msg[0])
        if len(got) % 50 == 0:
            pull.on_recv(None)  # pause, then resume a moment later
            asyncio.get_running_loop().call_later(0.005, pull.on_recv, slow)

    pull.on_recv(slow)
    await until(lambda: len(got) == n)
    assert got == [b"%d" % i for i in range(n)]
    assert not push.sending()


@pytest.mark.timeout(40)
@pytest.mark.asyncio
async def test_large_messages_and_many_streams(env: Env) -> None:
    big = b"y" * (4 * 1024 * 1024)
    pairs = [env.pair() for _ in range(20)]
    got: list[int] = []
    for _, pull in pairs:
        pull.on_recv(lambda msg: got.append(len(msg[0])))
    for push, _ in pairs:
        push.send(big, copy=False)
    await until(lambda: len(got) == 20, timeout=10)
    assert got == [len(big)] * 20


@pytest.mark.asyncio
async def test_a_callback_closing_the_shared_socket_closes_the_stream(env: Env) -> None:
    push, pull = env.push_to_future_pull()
    stream = env.stream(pull)
    closes: list[int] = []
    got: list[Any] = []
    stream.set_close_callback(lambda: closes.append(1))

    def callback(msg: list[bytes]) -> None:
        got.append(msg)
        pull.close()  # the socket, not the stream

    stream.on_recv(callback)
    push.send(b"1")
    push.send(b"2")
    await until(lambda: closes)
    assert got == [[b"1"]] and stream.closed() and closes == [1]


def test_classic_tornado_setup_before_the_loop_runs() -> None:
    """Streams made (and callbacks registered) before ``IOLoop.start``, as old code does."""
    # An explicit IOLoop: what is tested is the set-up before the loop starts.
    ctx: zmq.Context[Any] = zmq.Context()
    io_loop = tornado.ioloop.IOLoop(make_current=False)
    try:
        pull = ZMQStream(ctx.socket(zmq.PULL), io_loop=io_loop)
        push = ZMQStream(ctx.socket(zmq.PUSH), io_loop=io_loop)
        assert pull.io_loop is io_loop
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        got: list[Any] = []

        def on_recv(msg: list[bytes]) -> None:
            got.append(msg)
            io_loop.stop()

        pull.on_recv(on_recv)
        push.send(b"queued before start")
        io_loop.call_later(5, io_loop.stop)  # a bound, should the message never come
        io_loop.start()
        assert got == [[b"queued before start"]]
        pull.close(linger=0)
        push.close(linger=0)
    finally:
        io_loop.close(all_fds=False)
        ctx.term()


# -- the same observable behaviour as zmq.eventloop.zmqstream ----------------------------------


@pytest.mark.parametrize("impl", ["peer", "ours"])
@pytest.mark.asyncio
async def test_same_observable_behaviour_as_the_peer(impl: str) -> None:
    """One scenario, run on the peer's ZMQStream and on ours: the same things are seen."""
    if impl == "peer":
        from zmq.eventloop.zmqstream import ZMQStream as Stream
    else:
        Stream = ZMQStream
    ctx: zmq.Context[Any] = zmq.Context()
    seen: list[Any] = []
    try:
        pull = Stream(ctx.socket(zmq.PULL))
        push = Stream(ctx.socket(zmq.PUSH))
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        seen.append(("fresh", pull.receiving(), push.sending(), pull.closed()))
        got: list[Any] = []
        sent: list[Any] = []
        pull.on_recv(got.append)
        push.send_multipart([b"a", b"b"], callback=lambda msg, status: sent.append((msg, status)))
        push.send(b"c")
        push.send_string("d")
        await until(lambda: len(got) == 3 and len(sent) == 3)
        seen.append(("got", list(got)))
        seen.append(("sent", list(sent)))
        pull.on_recv(None)
        push.send(b"e")
        await settle()
        seen.append(("paused", len(got), pull.receiving()))
        seen.append(("flush-drops", pull.flush(zmq.POLLIN)))
        closes: list[int] = []
        pull.set_close_callback(lambda: closes.append(1))
        pull.close(linger=0)
        pull.close(linger=0)
        seen.append(("closed", pull.closed(), pull.socket, closes))
        for call in (lambda: pull.on_recv(print), lambda: pull.flush()):
            try:
                call()
            except Exception as exc:
                seen.append(("after close", type(exc).__name__, str(exc)))
        push.close(linger=0)
    finally:
        ctx.destroy(linger=0)
    assert seen == [
        ("fresh", False, False, False),
        ("got", [[b"a", b"b"], [b"c"], [b"d"]]),
        ("sent", [([b"a", b"b"], None), ([b"c"], None), ([b"d"], None)]),
        ("paused", 3, False),
        ("flush-drops", 1),
        ("closed", True, None, [1]),
        ("after close", "OSError", "Stream is closed"),
        ("after close", "OSError", "Stream is closed"),
    ]


def test_gen_log_names_the_logger_callback_errors_go_to() -> None:
    """pyzmq's test_zmqstream.py captures ``zmqstream.gen_log``; the module swap keeps it."""
    import zmq.eventloop.zmqstream as peer

    import zmq_async.stream

    assert isinstance(peer.gen_log, logging.Logger)
    assert zmq_async.stream.gen_log is logging.getLogger(LOG)
    assert "gen_log" not in zmq_async.stream.__all__


def test_ioloop_close_all_fds_closes_streams_as_the_peer() -> None:
    """pyzmq's unittest-style test_zmqstream.py ends with ``IOLoop.close(all_fds=True)`` then
    ``context.term()``: the streams' sockets must be closed by then, or term() hangs."""
    # An explicit IOLoop: the test is of what closing it does.
    ctx: zmq.Context[Any] = zmq.Context()
    io_loop = tornado.ioloop.IOLoop(make_current=False)
    closes: list[str] = []

    async def make() -> tuple[ZMQStream, ...]:
        plain = ZMQStream(ctx.socket(zmq.PULL))
        ours_sock = zmq_async.tornado.Context.shadow(ctx).socket(zmq.PULL)
        over_ours = over_future_socket(ours_sock)  # takes its socket's place in the listing
        gone = ZMQStream(ctx.socket(zmq.PUSH))
        for name, stream in (("plain", plain), ("over_ours", over_ours), ("gone", gone)):
            stream.set_close_callback(lambda name=name: closes.append(name))  # type: ignore[misc]
        gone.socket.close()  # closed under the stream: the peer does not warn at IOLoop close
        return plain, over_ours, gone

    try:
        plain, over_ours, gone = io_loop.run_sync(make)
        handlers = io_loop.handlers  # type: ignore[attr-defined]
        fd = over_ours._reactor.fd
        assert handlers[fd][0].owner() is over_ours
        assert len(handlers) == 3
    finally:
        io_loop.close(all_fds=True)  # warnings are errors here: none may be raised
    assert plain.closed() and over_ours.closed() and gone.closed()
    assert sorted(closes) == ["gone", "over_ours", "plain"]
    assert not handlers
    ctx.term()  # returns: every socket is closed


@pytest.mark.asyncio
async def test_a_closed_stream_leaves_the_ioloop_handlers() -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    io_loop = tornado.ioloop.IOLoop.current()  # Tornado's wrapper of the running loop
    try:
        assert io_loop.handlers == {}  # type: ignore[attr-defined]
        stream = ZMQStream(ctx.socket(zmq.PULL))
        assert stream.io_loop is io_loop
        assert len(io_loop.handlers) == 1  # type: ignore[attr-defined]
        stream.close()
        assert io_loop.handlers == {}  # type: ignore[attr-defined]
    finally:
        ctx.destroy(linger=0)


# -- threads -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_calls_from_another_thread_are_carried_out_by_the_loop_in_order(env: Env) -> None:
    """Every call that changes the stream, from a thread outside its running loop."""
    import threading

    loop_thread = threading.get_ident()
    push, pull = env.pair()
    got: list[Any] = []
    seen_in: set[int] = set()
    sent: list[Any] = []

    def on_recv(msg: list[Any]) -> None:
        seen_in.add(threading.get_ident())
        got.append(msg[0])

    def elsewhere() -> None:
        pull.on_recv(on_recv)
        push.on_send(lambda msg, status: sent.append((threading.get_ident(), msg[0])))
        for i in range(200):
            push.send(b"%d" % i)
        push.send_string("str")
        push.send_multipart([b"multi", b"part"])
        push.send(object())  # logged by the loop in its turn, the rest goes on
        push.send(b"last")
        assert push.flush() == 0  # handed over too: nothing known yet
        pull.set_close_callback(lambda: seen_in.add(-1))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    expected = [b"%d" % i for i in range(200)] + [b"str", b"multi", b"last"]
    await until(lambda: len(got) == len(expected))
    assert got == expected
    assert seen_in == {loop_thread}
    assert [m for _, m in sent] == expected and {t for t, _ in sent} == {loop_thread}
    assert pull.receiving() and not push.sending()
    pull.close()
    assert seen_in == {loop_thread, -1}


@pytest.mark.asyncio
async def test_state_seen_from_another_thread(env: Env) -> None:
    """Sends count at once (and against max_send_queue); closed() is true at once."""
    import threading

    push = env.stream(env.socket(zmq.PUSH), max_send_queue=3)  # no peer: sends wait
    seen: dict[str, Any] = {}

    def elsewhere() -> None:
        for i in range(3):
            push.send(b"%d" % i)
        seen["size"] = push.send_queue_size
        seen["sending"] = push.sending()
        try:
            push.send(b"3")
        except SendQueueFull:
            seen["full"] = True
        push.close(linger=0)
        seen["closed"] = push.closed()
        try:
            push.send(b"4")
        except OSError:
            seen["refused"] = True

    thread = threading.Thread(target=elsewhere)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert seen == {"size": 3, "sending": True, "full": True, "closed": True, "refused": True}
    await until(lambda: push.socket is None)  # the loop carried out the close
    assert push.send_queue_size == 0


def test_on_recv_from_the_main_thread_while_the_loop_runs_in_another(
    env: Env, new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    """ipykernel's start-up: the control stream's loop runs in its own thread, and
    Kernel.start() calls control_stream.on_recv(...) from the main thread."""
    # Explicit loops: the stream's loop runs in another thread, while this one calls on_recv.
    import threading

    loop = new_loop()  # asyncio's or uvloop's (conftest's loop_kind)
    io_loop: Any = loop
    if env.kind == "ioloop":
        io_loop = tornado.ioloop.IOLoop(asyncio_loop=loop, make_current=False)
    push = env.socket(zmq.PUSH)
    pull = env.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    stream = ZMQStream(pull, io_loop)
    env.streams.append(stream)
    running = threading.Event()
    loop.call_soon(running.set)
    control = threading.Thread(target=loop.run_forever)
    control.start()
    try:
        assert running.wait(10)
        for i in range(5):
            push.send(b"%d" % i)  # waiting before anyone listens
        got: list[bytes] = []
        threads: set[int] = set()
        done = threading.Event()

        def dispatch(msg: list[Any]) -> None:
            threads.add(threading.get_ident())
            got.append(msg[0].bytes)
            if len(got) == 10:
                done.set()

        stream.on_recv(dispatch, copy=False)
        for i in range(5, 10):
            push.send(b"%d" % i)
        assert done.wait(10)
        assert got == [b"%d" % i for i in range(10)]
        assert threads == {control.ident}
        stream.close(linger=0)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        control.join(10)
        push.close(linger=0)
        loop.close()
    assert stream.closed() and stream.socket is None


@pytest.mark.asyncio
async def test_close_from_another_thread_is_done_by_the_loop(env: Env) -> None:
    import threading

    _, pull = env.pair()
    closed_in: list[int] = []
    pull.set_close_callback(lambda: closed_in.append(threading.get_ident()))
    pull.on_recv(lambda msg: None)
    thread = threading.Thread(target=pull.close)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    await until(pull.closed)
    assert closed_in == [threading.get_ident()]  # once, on the loop's thread
