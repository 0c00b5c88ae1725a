"""A task cancelled in the tick its queued receive gets a message loses nothing (rule 2).

asyncio cannot cancel a done Future: ``Task.cancel()`` then throws CancelledError into the
task, and the message its receive took was thrown away (verifiers#921's general form). A
queued receive's Future gives its frames back to the socket when that happens; it must not
when ``cancel()`` is called on it with no cancelling task awaiting it (``gather``, a user's
``fut.cancel()``), or a message would arrive twice. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import zmq

import zmq_async.asyncio
import zmq_async.tornado

WAIT = 10.0
pytestmark = pytest.mark.timeout(60)

#: Receive kinds: (how the message is sent, how it is received, what the receive gives for
#: message ``i`` once normalized).
KINDS: dict[str, tuple[Callable[[int], list[bytes]], Callable[[Any], Any]]] = {
    "recv": (lambda i: [b"%d" % i], lambda s: s.recv()),
    "recv_nocopy": (lambda i: [b"%d" % i], lambda s: s.recv(copy=False)),
    "multipart": (lambda i: [b"%d" % i, b"m"], lambda s: s.recv_multipart()),
    "multipart_nocopy": (lambda i: [b"%d" % i, b"m"], lambda s: s.recv_multipart(copy=False)),
    "string": (lambda i: [b"%d" % i], lambda s: s.recv_string()),
    "json": (lambda i: [b'{"i": %d}' % i], lambda s: s.recv_json()),
    "pyobj": (lambda i: [pickle.dumps(("p", i))], lambda s: s.recv_pyobj()),
    "serialized": (
        lambda i: [b"s", b"%d" % i],
        lambda s: s.recv_serialized(lambda frames: int(bytes(frames[1]))),
    ),
    # One message of two frames received by two recv(): a frame given back keeps RCVMORE.
    "frames": (lambda i: [b"%d" % i, b"%d-tail" % i], lambda s: s.recv()),
}


def normal(kind: str, value: Any) -> Any:
    """What a receive of ``kind`` gave, as comparable plain data."""
    if isinstance(value, zmq.Frame):
        return value.bytes
    if isinstance(value, list):
        return [normal(kind, v) for v in value]
    return value


def expected_units(kind: str, i: int) -> list[Any]:
    """What the receives of message ``i`` give, in order (two receives for "frames")."""
    units: dict[str, list[Any]] = {
        "recv": [b"%d" % i],
        "recv_nocopy": [b"%d" % i],
        "multipart": [[b"%d" % i, b"m"]],
        "multipart_nocopy": [[b"%d" % i, b"m"]],
        "string": [str(i)],
        "json": [{"i": i}],
        "pyobj": [("p", i)],
        "serialized": [i],
        "frames": [b"%d" % i, b"%d-tail" % i],
    }
    return units[kind]


def tcp_pull(ctx: Any) -> tuple[Any, zmq.Context[Any], zmq.Socket[Any]]:
    """``ctx``'s PULL bound on loopback, and a plain PUSH of a plain context connected to it."""
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    sync_ctx: zmq.Context[Any] = zmq.Context()
    push = sync_ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    return pull, sync_ctx, push


@pytest.fixture
def link(ctx: Any) -> Iterator[tuple[Any, zmq.Socket[Any]]]:
    """``ctx``'s PULL and a plain PUSH connected to it (see :func:`tcp_pull`), closed after."""
    pull, sync_ctx, push = tcp_pull(ctx)
    yield pull, push
    pull.close(linger=0)
    sync_ctx.destroy(linger=0)


class Once:
    """A callable that calls ``action`` the first time only."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self.action: Callable[[], Any] | None = action

    def __call__(self) -> None:
        action, self.action = self.action, None
        if action is not None:
            action()


async def storm(ctx: Any, n: int, seed: int) -> dict[str, int]:
    """``n`` counted messages, each received by one kind of receive, whose attempts are
    cancelled at random moments and in the tick they get their message (task.cancel() and
    asyncio.timeout). Asserts that every receive gives the next expected unit: every message
    once, in order. Returns how often each way of cancelling ended an attempt."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    pull, sync_ctx, push = tcp_pull(ctx)
    counts = dict.fromkeys(["tick-cancel", "tick-timeout", "cancel", "timeout", "got"], 0)
    try:

        async def settled(fut: Any) -> Any:
            return await fut

        async def timed(fut: Any) -> Any:
            async with asyncio.timeout(0.003):
                return await fut

        for i in range(n):
            kind = rng.choice(list(KINDS))
            encode, receive = KINDS[kind]
            send = Once(partial(push.send_multipart, encode(i)))

            for unit in expected_units(kind, i):
                deadline = time.monotonic() + WAIT
                while True:
                    assert time.monotonic() < deadline, f"message {i} ({kind}) never came"
                    mode = rng.choice(["await", "tick-cancel", "tick-timeout", "cancel", "timeout"])
                    fut = receive(pull)
                    value: Any = None
                    got = False
                    if fut.done() or mode == "await":
                        loop.call_later(rng.uniform(0, 0.002), send)
                        value, got = await asyncio.wait_for(fut, WAIT), True
                    elif mode == "tick-cancel":
                        # Cancelled in the tick the Future completes, before the task resumes
                        # (this callback runs before the task's own wake-up).
                        task = asyncio.ensure_future(settled(fut))
                        fut.add_done_callback(lambda _, task=task: task.cancel())
                        await asyncio.sleep(0)  # the task awaits the receive
                        send()
                        try:
                            value, got = await task, True
                        except asyncio.CancelledError:
                            counts[mode] += 1
                    elif mode == "tick-timeout":
                        fut.cancel()  # (a receive of its own, in the task)

                        task = asyncio.ensure_future(timed(receive(pull)))
                        await asyncio.sleep(0)
                        send()
                        time.sleep(0.005)  # the message is in and the deadline due: one tick
                        try:
                            value, got = await task, True
                        except TimeoutError:
                            counts[mode] += 1
                    else:
                        delay = rng.uniform(0, 0.002)
                        loop.call_later(rng.uniform(0, 0.002), send)
                        try:
                            if mode == "cancel":
                                task = asyncio.ensure_future(settled(fut))
                                # The task awaits the receive before the cancel may come: one
                                # cancelled before it starts never awaits it, and that receive,
                                # left pending, takes the message (uvloop runs a due timer
                                # before a ready task's first step).
                                await asyncio.sleep(0)
                                loop.call_later(delay, task.cancel)
                                value, got = await task, True
                            else:
                                async with asyncio.timeout(delay):
                                    value, got = await fut, True
                        except (asyncio.CancelledError, TimeoutError):
                            counts[mode] += 1
                    if got:
                        counts["got"] += 1
                        assert normal(kind, value) == unit, (i, kind, mode)
                        break
        assert await pull.poll(50) == 0  # nothing twice, nothing left
    finally:
        pull.close(linger=0)
        sync_ctx.destroy(linger=0)
    return counts


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("layer", ["asyncio", "tornado"])
async def test_cancellation_storm_every_message_once_in_order(layer: str) -> None:
    """Hundreds of counted messages, receives of every kind, cancelled at random moments and
    in the same-tick window: each message arrives exactly once, in order."""
    module: Any = zmq_async.asyncio if layer == "asyncio" else zmq_async.tornado
    ctx = module.Context()
    try:
        counts = await storm(ctx, 300, seed=17)
    finally:
        ctx.destroy(linger=0)
    # The same-tick window was hit (the deterministic one, every time it was chosen).
    assert counts["tick-cancel"] > 20, counts
    assert counts["got"] >= 300, counts


@pytest.mark.asyncio
async def test_gather_cancelling_done_children_gives_no_duplicate(link: Any) -> None:
    """``gather.cancel()`` in the tick its child receives complete, before gather's own
    callbacks run: the done children cannot be cancelled, so gather returns their results;
    their frames must not also go back to the socket."""
    pull, push = link
    first, second = pull.recv(), pull.recv_multipart()
    assert not first.done() and not second.done()
    cancelled: list[bool] = []
    gathered: Any = None
    # Added before gather's: runs first, as gather's callbacks wait in the ready queue.
    second.add_done_callback(lambda _: cancelled.append(gathered.cancel()))
    gathered = asyncio.gather(first, second)
    push.send(b"one")
    push.send_multipart([b"two", b"2"])
    assert await asyncio.wait_for(gathered, WAIT) == [b"one", [b"two", b"2"]]
    assert cancelled == [False]  # (called while both were done, gather not yet)
    assert await pull.poll(50) == 0  # nothing given back: no duplicate


@pytest.mark.asyncio
async def test_direct_cancel_of_a_done_receive_then_result_gives_no_duplicate(link: Any) -> None:
    """A user's ``fut.cancel()`` on a done receive (no task awaits it) returns False and
    leaves the result to the user: nothing is given back to the socket."""
    pull, push = link
    futures = [pull.recv(), pull.recv_string(), pull.recv_multipart()]
    assert not any(f.done() for f in futures)
    push.send(b"a")
    push.send(b"b")
    push.send_multipart([b"c", b"d"])
    await asyncio.wait_for(asyncio.wait(futures), WAIT)
    assert [f.cancel() for f in futures] == [False, False, False]
    assert [f.result() for f in futures] == [b"a", "b", [b"c", b"d"]]
    assert await pull.poll(50) == 0


async def given_back_whole(
    link: tuple[Any, zmq.Socket[Any]], fut: Any, message: list[bytes], cancels: int = 1
) -> None:
    """A task awaiting the queued receive ``fut`` is cancelled ``cancels`` times in the tick
    ``fut`` gets ``message``: the task raises CancelledError, and the next
    ``recv_multipart`` gets the whole message, once."""
    pull, push = link
    assert not fut.done()

    async def settled() -> Any:
        return await fut

    task = asyncio.ensure_future(settled())
    # Added before the task awaits: runs before the task's own wake-up.
    fut.add_done_callback(lambda _: [task.cancel() for _ in range(cancels)])
    await asyncio.sleep(0)
    push.send_multipart(message)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert await asyncio.wait_for(pull.recv_multipart(), WAIT) == message
    assert await pull.poll(50) == 0


@pytest.mark.asyncio
async def test_task_cancelled_twice_in_the_tick_gives_back_once(link: Any) -> None:
    """Two ``task.cancel()`` in the tick the receive completes: the frames go back once."""
    await given_back_whole(link, link[0].recv_multipart(), [b"x", b"y"], cancels=2)


@pytest.mark.asyncio
@pytest.mark.parametrize("copy", [True, False])
async def test_first_frame_given_back_keeps_its_message_whole(link: Any, copy: bool) -> None:
    """A ``recv()`` of a multipart message's first frame, its task cancelled in the tick it
    completes: the frame goes back with "more follow", so a ``recv_multipart`` then gets
    the whole message, not the first frame alone."""
    await given_back_whole(link, link[0].recv(copy=copy), [b"head", b"tail"])


@pytest.mark.asyncio
async def test_queued_receive_future_is_an_asyncio_future(link: Any) -> None:
    """A queued receive's Future (a subclass) works wherever an asyncio Future does:
    isinstance, isfuture, wrap_future, gather, wait, tornado's convert_yielded and
    gen.coroutine; its repr reads as a Future's."""
    from tornado import gen

    pull, push = link
    fut = pull.recv()
    assert not fut.done()
    assert isinstance(fut, asyncio.Future) and asyncio.isfuture(fut)
    assert asyncio.wrap_future(fut) is fut
    assert gen.convert_yielded(fut) is fut
    assert repr(fut).startswith("<Future pending"), repr(fut)

    @gen.coroutine
    def tornado_style() -> Any:
        value = yield fut
        return value

    push.send(b"t")
    assert await asyncio.wait_for(tornado_style(), WAIT) == b"t"
    assert repr(fut) == "<Future finished result=b't'>"
    pending = [pull.recv_string(), pull.recv_multipart()]
    push.send(b"u")
    push.send(b"v")
    done, _ = await asyncio.wait(pending, timeout=WAIT)
    assert len(done) == 2
    assert await asyncio.gather(*pending) == ["u", [b"v"]]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_anyio_on_asyncio_cancelled_as_its_recv_completes_loses_nothing(
    anyio_backend: str,
) -> None:
    """zmq_async.anyio on asyncio: a task awaiting a receive, cancelled (``task.cancel()``
    from a timer) in the tick the receive gets its message, returns the message (its own
    receive path keeps it; anyio's cancel scopes never cancel a task whose Future is
    done): every message once, in order."""
    import anyio

    import zmq_async.anyio

    ctx = zmq_async.anyio.Context()
    pull, sync_ctx, push = tcp_pull(ctx)
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    cancelled = 0
    try:
        for i in range(10):
            task = asyncio.ensure_future(pull.recv())
            await asyncio.sleep(0.002)  # the receive waits
            loop.call_later(0.001, task.cancel)
            push.send(b"%d" % i)
            time.sleep(0.005)  # the message is in and the cancel due: the same tick
            try:
                got.append(await task)
            except asyncio.CancelledError:
                cancelled += 1
                with anyio.fail_after(WAIT):
                    got.append(await pull.recv())
        assert got == [b"%d" % i for i in range(10)], cancelled
        assert await pull.poll(50) == 0
    finally:
        pull.close(linger=0)
        sync_ctx.destroy(linger=0)
        ctx.destroy(linger=0)
