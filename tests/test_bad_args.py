"""Bad arguments everywhere: every public I/O method of every layer, called with wrong types
and out-of-range values, fails as its peer fails, at once, and leaves the socket usable.

The cases are generated from the public surface: each method of ``zmq.Socket`` whose name
starts with ``send``/``recv`` (and ``poll``), and each method of ``zmq.Poller``, called with
good values except one parameter, which gets each bad value :data:`BAD` lists for its name;
plus every method on a closed socket and on a socket of a destroyed context. The expected
outcome is not written down: the same call is made on pyzmq's blocking ``zmq.Socket`` (with
a message waiting and short timeouts, so that it never blocks), and for the
Future-returning layers on their peer (``zmq.asyncio``, ``zmq.eventloop.future``) too. After
each call nothing may be left queued in the reactor, and a good message must still go both
ways. tests/green/test_bad_args_green.py runs the same cases on the green layers, and
test_stream_bad_args below checks that ``ZMQStream.send*`` neither hangs nor breaks the stream
(where exactly they fail is another test's business).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import zmq

import zmq_async.anyio
import zmq_async.asyncio

#: A waiting message: valid JSON, UTF-8 and bytes (recv_pyobj fails to unpickle it, as the
#: blocking socket does).
PRIMED = b"1"
#: The blocking reference never blocks longer than this (ms): a call that would wait is not
#: a bad call, and is left out.
REFERENCE_TIMEOUT_MS = 200
#: How long one of our calls may take before it counts as a hang (s).
HANG = 5.0


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


def _not_buffers(message: object) -> list[object]:
    return [object()]


#: Bad values by parameter name, as factories (a fresh object per call) with a label.
BAD: dict[str, list[tuple[str, Callable[[], Any]]]] = {
    "data": [
        ("object", object),
        ("float", lambda: 1.5),
        ("None", lambda: None),
        ("str", lambda: "text"),
    ],
    "msg_parts": [
        ("empty", list),
        ("object frame", lambda: [object()]),
        ("None frame", lambda: [b"a", None]),
        ("int", lambda: 5),
        ("str frames", lambda: ["a", "b"]),
    ],
    "u": [("bytes", lambda: b"bytes"), ("int", lambda: 5), ("None", lambda: None)],
    "obj": [("unserializable", Unpicklable)],
    "serialize": [("None", lambda: None), ("no buffers", lambda: _not_buffers)],
    "deserialize": [("None", lambda: None), ("str", lambda: "x")],
    "flags": [
        ("str", lambda: "x"),
        ("float", lambda: 1.5),
        ("None", lambda: None),
        ("huge", lambda: 2**70),
    ],
    "encoding": [("unknown codec", lambda: "no-such-codec"), ("int", lambda: 5)],
    "buffer": [("bytes", lambda: b"read-only"), ("object", object), ("None", lambda: None)],
    "nbytes": [("negative", lambda: -1), ("str", lambda: "x"), ("huge", lambda: 2**70)],
    "timeout": [
        ("str", lambda: "x"),
        ("nan", lambda: math.nan),
        ("negative", lambda: -5),
        ("huge", lambda: 1e30),
    ],
    "protocol": [("str", lambda: "x"), ("too high", lambda: 99)],
    "routing_id": [("str", lambda: "x")],
    "group": [("int", lambda: 5)],
}
#: ``poll``'s flags: None or 0 would unregister the socket and make the blocking poll wait
#: for ever on nothing, which is not a bad argument.
POLL_FLAGS = [entry for entry in BAD["flags"] if entry[0] != "None"]

#: Good values of the required parameters.
GOOD: dict[str, Callable[[], Any]] = {
    "data": lambda: b"data",
    "msg_parts": lambda: [b"part", b"part"],
    "u": lambda: "text",
    "obj": lambda: {"a": 1},
    "msg": lambda: [b"m"],
    "serialize": lambda: list,
    "deserialize": lambda: list,
    "buffer": lambda: bytearray(64),
}

SOCKET_METHODS = sorted(
    name
    for name in dir(zmq.Socket)
    if name.startswith(("send", "recv")) or name == "poll"
    if callable(getattr(zmq.Socket, name))
)
POLLER_METHODS = ["register", "modify", "poll"]


@dataclass(frozen=True)
class Case:
    """One call: ``method(*args, **kwargs)``, with the parameter ``param`` made bad."""

    method: str
    param: str  # "" for a good call in a bad state
    label: str
    state: str  # "open", "closed" (the socket), "destroyed" (its context)
    make: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]

    @property
    def id(self) -> str:
        bad = f"{self.param}={self.label}" if self.param else "good args"
        return f"{self.method}({bad}){'' if self.state == 'open' else ' on ' + self.state}"


def _call_maker(
    method: str, bad_param: str, bad: Callable[[], Any] | None
) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    parameters = list(inspect.signature(getattr(zmq.Socket, method)).parameters.values())[1:]

    def make() -> tuple[tuple[Any, ...], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for parameter in parameters:
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                continue
            if parameter.name == bad_param:
                assert bad is not None
                value = bad()
            elif parameter.default is parameter.empty:
                value = GOOD[parameter.name]()
            else:
                continue
            if parameter.kind is parameter.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[parameter.name] = value
        return tuple(args), kwargs

    return make


def socket_cases() -> Iterator[Case]:
    """Every public I/O method of ``zmq.Socket`` with each bad value of each parameter."""
    for method in SOCKET_METHODS:
        parameters = list(inspect.signature(getattr(zmq.Socket, method)).parameters)[1:]
        for param in parameters:
            bad_values = POLL_FLAGS if (method, param) == ("poll", "flags") else BAD.get(param, [])
            for label, bad in bad_values:
                yield Case(method, param, label, "open", _call_maker(method, param, bad))
        for state in ("closed", "destroyed"):
            yield Case(method, "", "", state, _call_maker(method, "", None))


# -- outcomes ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a call ended: ``shape`` is "ok", "raised" (at the call) or "future" (set on the
    returned Future, or raised when the coroutine was awaited); ``error`` its exception."""

    shape: str
    error: BaseException | None = None

    def __str__(self) -> str:
        if self.error is None:
            return self.shape
        return f"{self.shape} {type(self.error).__name__}({self.error})"


def same_error(ours: Outcome, theirs: Outcome) -> bool:
    """Whether both succeeded, or both failed with the same exception type (and errno)."""
    if (ours.error is None) != (theirs.error is None):
        return False
    if ours.error is None or theirs.error is None:
        return True
    if type(ours.error) is not type(theirs.error):
        return False
    return getattr(ours.error, "errno", None) == getattr(theirs.error, "errno", None)


_addresses = itertools.count()


def pair(ctx: Any) -> tuple[Any, Any]:
    """Two connected PAIR sockets of ``ctx`` over inproc: (a, b)."""
    addr = f"inproc://bad-args-{next(_addresses)}"
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    for sock in (a, b):
        sock.linger = 0
    a.bind(addr)
    b.connect(addr)
    return a, b


def enter_state(case: Case, ctx: Any, a: Any) -> None:
    if case.state == "closed":
        a.close()
    elif case.state == "destroyed":
        ctx.destroy(linger=0)


def reference(case: Case) -> Outcome | None:
    """The outcome on pyzmq's blocking socket; None if the call waited (it is not bad)."""
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        a, b = pair(ctx)
        for sock in (a, b):
            sock.rcvtimeo = sock.sndtimeo = REFERENCE_TIMEOUT_MS
        b.send(PRIMED)
        enter_state(case, ctx, a)
        args, kwargs = case.make()
        try:
            getattr(a, case.method)(*args, **kwargs)
        except zmq.Again:
            return None
        except Exception as exc:
            return Outcome("raised", exc)
        return Outcome("ok")
    finally:
        ctx.destroy(linger=0)


def leftovers(sock: Any) -> list[str]:
    """What the socket's reactor still holds: live waiters and armed timers."""
    reactor = sock._reactor
    found = []
    for kind, queue in (("recv", reactor.recvq), ("send", reactor.sendq), ("poll", reactor.pollq)):
        live = [w for w in queue if not w.completion.done()]
        if live:
            found.append(f"{len(live)} {kind} waiter(s)")
        if any(w.timer is not None for w in queue):
            found.append(f"a {kind} timer")
    return found


def drain(sock: Any) -> None:
    """Take whatever the bad call left (a message it sent, the primed one) out of ``sock``."""
    shadow = zmq.Socket.shadow(sock.underlying)
    while shadow.poll(0, zmq.POLLIN):
        shadow.recv(zmq.NOBLOCK)


# -- the Future-returning layers: zmq_async.asyncio and zmq_async.tornado ----------------------


async def run_future_layer(ctx: Any, case: Case, ours: bool) -> tuple[Outcome, list[str]]:
    """The outcome of ``case`` on a pair of ``ctx``, then (ours only) the checks after it."""
    a, b = pair(ctx)
    await asyncio.wait_for(b.send(PRIMED), HANG)
    enter_state(case, ctx, a)
    args, kwargs = case.make()
    try:
        future = getattr(a, case.method)(*args, **kwargs)
    except Exception as exc:
        outcome = Outcome("raised", exc)
    else:
        try:
            await asyncio.wait_for(future, HANG)
        except asyncio.TimeoutError:
            return Outcome("hang"), []
        except Exception as exc:
            outcome = Outcome("future", exc)
        else:
            outcome = Outcome("ok")
    problems: list[str] = []
    if ours and case.state == "open":
        problems = leftovers(a)
        drain(a)
        drain(b)
        await asyncio.wait_for(a.send(b"ping"), HANG)
        if await asyncio.wait_for(b.recv(), HANG) != b"ping":
            problems.append("a good message a -> b did not arrive")
        await asyncio.wait_for(b.send(b"pong"), HANG)
        if await asyncio.wait_for(a.recv(), HANG) != b"pong":
            problems.append("a good message b -> a did not arrive")
        problems += leftovers(a)
    return outcome, problems


def in_new_loop(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def future_layer_mismatch(layer: Any, peer: Any, case: Case) -> str | None:
    """Compare ``layer`` with blocking pyzmq (the exception type) and with ``peer`` (where).

    The error is the blocking socket's, or the peer's where the peer differs from it (the
    peer raises TypeError for ``flags=1.5``, which the blocking socket takes as 1; a NaN poll
    timeout raises ValueError in the blocking socket, not in the peer). Where our error is
    the peer's, we fail where the peer fails (raised at the call, or set on the returned
    Future), since code written for the peer catches it there. Returns a description of
    the mismatch, or None.
    """
    expected = reference(case)
    if expected is None:
        return None

    async def run(module: Any, ours: bool) -> tuple[Outcome, list[str]]:
        ctx = module.Context()
        try:
            return await run_future_layer(ctx, case, ours)
        finally:
            ctx.destroy(linger=0)

    ours, problems = in_new_loop(run(layer, True))
    theirs, _ = in_new_loop(run(peer, False))
    report = ["hangs"] if ours.shape == "hang" else []
    if not (same_error(ours, expected) or same_error(ours, theirs)):
        report.append(f"blocking pyzmq: {expected}; peer: {theirs}")
    elif same_error(ours, theirs) and ours.shape != theirs.shape:
        report.append(f"peer: {theirs}")
    report += problems
    return f"{case.id}: ours {ours}; " + "; ".join(report) if report else None


CASES = list(socket_cases())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", SOCKET_METHODS)
def test_asyncio_socket_bad_args(method: str) -> None:
    import zmq.asyncio

    mismatches = [
        found
        for case in CASES
        if case.method == method
        if (found := future_layer_mismatch(zmq_async.asyncio, zmq.asyncio, case))
    ]
    assert not mismatches, "\n".join(mismatches)
