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
import contextlib
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
#: The same for a peer's call, whose hang is only noted.
PEER_HANG = 0.5


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
#: ``zmq.Poller``'s methods and the parameters whose bad values they are called with.
POLLER_PARAMS = {
    "register": ("socket", "flags"),
    "modify": ("socket", "flags"),
    "unregister": ("socket",),
    "poll": ("timeout",),
}
BAD_SOCKETS: list[tuple[str, Callable[[], Any]]] = [
    ("object", object),
    ("str", lambda: "x"),
    ("None", lambda: None),
]
#: Stands for a socket of another, live, context: no bad argument, it must work.
FOREIGN: Any = object()


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


def _kwarg(
    name: str, value: Callable[[], Any]
) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    return lambda: ((), {name: value()})


def poller_cases() -> Iterator[Case]:
    """Every method of ``zmq.Poller`` with each bad value of each parameter, and our socket
    closed, of a destroyed context, or of another context."""
    for step, params in POLLER_PARAMS.items():
        method = f"Poller.{step}"
        assert callable(getattr(zmq.Poller, step))
        for param in params:
            if param == "socket":
                bad_values = BAD_SOCKETS
            elif param == "flags":
                bad_values = POLL_FLAGS
            else:
                bad_values = BAD[param]
            for label, bad in bad_values:
                yield Case(method, param, label, "open", _kwarg(param, bad))
        for state in ("closed", "destroyed"):
            yield Case(method, "", "", state, lambda: ((), {}))
    yield Case(
        "Poller.register", "socket", "another context's", "open", _kwarg("socket", lambda: FOREIGN)
    )


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


class Env:
    """The contexts and sockets of one call on one layer: ``ctx`` (its pair ``a``, ``b``) and
    a ``foreign`` context, all closed by :meth:`close` (sockets first: some peers' contexts
    do not close their sockets on ``destroy``, eventlet.green.zmq's hangs in ``term``)."""

    def __init__(self, layer: Any) -> None:
        self.ctx = layer.Context()
        self.foreign = layer.Context()
        self.sockets: list[Any] = []
        addr = f"inproc://bad-args-{next(_addresses)}"
        self.a, self.b = self.socket(), self.socket()
        self.a.bind(addr)
        self.b.connect(addr)

    def socket(self, foreign: bool = False) -> Any:
        sock = (self.foreign if foreign else self.ctx).socket(zmq.PAIR)
        sock.linger = 0
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.destroy(linger=0)
        self.foreign.destroy(linger=0)


def enter_state(case: Case, env: Env) -> None:
    if case.state == "closed":
        env.a.close()
    elif case.state == "destroyed":
        for sock in (env.a, env.b):
            if sock not in env.ctx._sockets:
                # eventlet.green.zmq's context does not list its sockets: its destroy would
                # not close them, and then hang in term().
                sock.close()
        env.ctx.destroy(linger=0)


def call(case: Case, layer: Any, env: Env, *args: Any, **kwargs: Any) -> Any:
    """Make the call of ``case`` on ``sock``: a method of it, or of a ``layer.Poller``.

    A poller case registers ``sock`` where it needs one registered, makes the call, then
    polls without waiting: a poller may take a bad socket and only fail when it polls.
    """
    sock = env.a
    if not case.method.startswith("Poller."):
        return getattr(sock, case.method)(*args, **kwargs)
    poller = layer.Poller()
    step = case.method.removeprefix("Poller.")
    target = kwargs.pop("socket", sock)
    if target is FOREIGN:
        target = env.socket(foreign=True)
    if step == "poll":
        poller.register(target, zmq.POLLIN | zmq.POLLOUT)
        return poller.poll(*args, **kwargs)
    if step != "register":
        poller.register(sock, zmq.POLLIN)
    getattr(poller, step)(target, *args, **kwargs)
    return poller.poll(0)


def reference(case: Case, layer: Any = zmq) -> Outcome | None:
    """The outcome on a blocking layer (pyzmq's, or a green peer); None if the call waited
    (then it is not bad: it would wait on ours too)."""
    env = Env(layer)
    try:
        for sock in (env.a, env.b):
            sock.rcvtimeo = sock.sndtimeo = REFERENCE_TIMEOUT_MS
        env.b.send(PRIMED)
        enter_state(case, env)
        args, kwargs = case.make()
        try:
            call(case, layer, env, *args, **kwargs)
        except zmq.Again:
            return None
        except Exception as exc:
            return Outcome("raised", exc)
        return Outcome("ok")
    finally:
        env.close()


def leftovers(sock: Any) -> list[str]:
    """What the socket's reactor still holds: live waiters and armed timers."""
    reactor = sock._reactor
    found = []
    for kind, queue in (("recv", reactor.recvq), ("send", reactor.sendq), ("poll", reactor.pollq)):
        live = [w for w in queue if not w.completion.done()]
        if live:
            found.append(f"{len(live)} {kind} waiter(s) left queued")
    return found


def drain(sock: Any) -> None:
    """Take whatever the bad call left (a message it sent, the primed one) out of ``sock``."""
    shadow = zmq.Socket.shadow(sock.underlying)
    while shadow.poll(0, zmq.POLLIN):
        shadow.recv(zmq.NOBLOCK)


async def still_usable(a: Any, b: Any) -> list[str]:
    """What is wrong with ``a`` after a bad call: waiters left in its reactor, or a good
    message that does not go both ways (after draining what the call left)."""
    problems = leftovers(a)
    drain(a)
    drain(b)
    await a.send(b"ping")
    if await b.recv() != b"ping":
        problems.append("a good message a -> b did not arrive")
    await b.send(b"pong")
    if await a.recv() != b"pong":
        problems.append("a good message b -> a did not arrive")
    return problems + leftovers(a)


def verdict(case: Case, ours: Outcome, expected: Outcome, peer: Outcome | None) -> list[str]:
    """What is wrong with ``ours``: never a hang; the error (type and errno) of the blocking
    socket, or of the peer where the peer differs from it (the async peers raise TypeError for
    ``flags=1.5``, which the blocking socket takes as 1; a NaN poll timeout raises ValueError
    in the blocking socket, not in zmq.asyncio); and where our error is the peer's, we fail
    where the peer fails (raised at the call, or set on the returned Future / raised when
    awaited), since code written for the peer catches it there."""
    if ours.shape == "hang":
        return ["hangs"]
    if documented(case, ours):
        return []
    alternatives = [expected] + ([peer] if peer is not None and peer.shape != "hang" else [])
    if not any(same_error(ours, other) for other in alternatives):
        return [f"blocking pyzmq: {expected}" + (f"; peer: {peer}" if peer else "")]
    if peer is not None and ours.error is not None and same_error(ours, peer):
        return [f"peer: {peer}"] if ours.shape != peer.shape else []
    return []


def documented(case: Case, ours: Outcome) -> bool:
    """Whether ``ours`` is a deliberate difference from a peer or the blocking socket:

    - a poller over a closed socket raises ZMQError(ENOTSOCK) (CHANGELOG), where zmq_poll
      reports a readable fd 0;
    - float ``flags`` raise TypeError in every layer, as zmq.asyncio's and zmq.green's sends
      and receives do, where the blocking socket (and eventlet.green.zmq's ``recv_into`` and
      zmq.green's ``poll``) truncate them: 1.5 would silently mean NOBLOCK.
    """
    if case.param == "flags" and case.label == "float":
        return isinstance(ours.error, TypeError)
    return (
        case.method.startswith("Poller.")
        and case.state != "open"
        and isinstance(ours.error, zmq.ZMQError)
        and ours.error.errno == zmq.ENOTSOCK
    )


def report(case: Case, ours: Outcome, problems: list[str]) -> str | None:
    return f"{case.id}: ours {ours}; " + "; ".join(problems) if problems else None


# -- the Future-returning layers: zmq_async.asyncio and zmq_async.tornado ----------------------


async def bounded(layer: Any, awaitable: Any, seconds: float) -> Any:
    """``await awaitable``, raising TimeoutError after ``seconds``: anyio's way for our anyio
    layer (it may run on trio), asyncio's for the others (an anyio scope did not end
    zmq.eventloop.future's hanging poll: the test hung)."""
    if layer is not zmq_async.anyio:
        return await asyncio.wait_for(awaitable, seconds)
    import anyio

    with anyio.fail_after(seconds):
        return await awaitable


async def run_async_layer(layer: Any, case: Case, ours: bool) -> tuple[Outcome, list[str]]:
    """The outcome of ``case`` on an async layer (Futures or coroutines; asyncio or trio),
    then (ours only) what is wrong after it (:func:`still_usable`)."""
    env = Env(layer)
    a, b = env.a, env.b
    try:
        await b.send(PRIMED)
        enter_state(case, env)
        args, kwargs = case.make()
        try:
            pending = call(case, layer, env, *args, **kwargs)
        except Exception as exc:
            outcome = Outcome("raised", exc)
        else:
            try:
                # The peers do hang on some (a poll for flags=2**70): no need to wait long.
                await bounded(layer, pending, HANG if ours else PEER_HANG)
            except (TimeoutError, asyncio.TimeoutError):
                return Outcome("hang"), []
            except Exception as exc:
                outcome = Outcome("future", exc)
            else:
                outcome = Outcome("ok")
        problems: list[str] = []
        if ours and case.state == "open":
            problems = await bounded(layer, still_usable(a, b), HANG)
        return outcome, problems
    finally:
        env.close()


def in_new_loop(coro: Any) -> Any:
    """Run ``coro`` on a fresh asyncio loop of this thread (one with no loop running)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def async_mismatch(layer: Any, peer: Any, case: Case) -> str | None:
    """``case`` on ``layer`` against blocking pyzmq and ``peer`` (see :func:`verdict`), both
    on the running loop."""
    expected = reference(case)
    if expected is None:
        return None
    ours, problems = await run_async_layer(layer, case, True)
    theirs, _ = await run_async_layer(peer, case, False)
    return report(case, ours, verdict(case, ours, expected, theirs) + problems)


SOCKET_CASES = list(socket_cases())
POLLER_CASES = list(poller_cases())
GROUPS = [*SOCKET_METHODS, *(f"Poller.{step}" for step in POLLER_PARAMS)]


def cases_of(group: str) -> list[Case]:
    return [case for case in SOCKET_CASES + POLLER_CASES if case.method == group]


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("layer", ["asyncio", "tornado"])
async def test_future_layers_bad_args(layer: str, group: str) -> None:
    """zmq_async.asyncio against zmq.asyncio, zmq_async.tornado against zmq.eventloop.future."""
    if layer == "asyncio":
        import zmq.asyncio as peer

        ours: Any = zmq_async.asyncio
    else:
        import zmq.eventloop.future as peer

        import zmq_async.tornado as ours
    mismatches = [
        found for case in cases_of(group) if (found := await async_mismatch(ours, peer, case))
    ]
    assert not mismatches, "\n".join(mismatches)


# -- zmq_async.anyio: coroutines, on asyncio and trio -----------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("group", GROUPS)
async def test_anyio_bad_args(group: str) -> None:
    """zmq_async.anyio against blocking pyzmq; where the blocking socket takes what
    zmq.asyncio refuses (float flags), zmq.asyncio's error is accepted too. A coroutine may
    raise at the call (bad arguments found before it is made) or when awaited."""
    import anyio.to_thread
    import zmq.asyncio

    mismatches = []
    for case in cases_of(group):
        expected = reference(case)
        if expected is None:
            continue
        ours, problems = await run_async_layer(zmq_async.anyio, case, True)
        # zmq.asyncio needs an asyncio loop (the test may run on trio): a fresh one in a thread.
        peer, _ = await anyio.to_thread.run_sync(
            in_new_loop, run_async_layer(zmq.asyncio, case, False)
        )
        # Either shape is "at once" for a coroutine: compare the errors alone.
        shapeless = Outcome(ours.shape, ours.error)
        problems = verdict(case, shapeless, expected, Outcome(ours.shape, peer.error)) + problems
        if (found := report(case, ours, problems)) is not None:
            mismatches.append(found)
    assert not mismatches, "\n".join(mismatches)


# -- zmq_async.stream: ZMQStream.send* must neither hang nor break the stream ------------------
# (where exactly each fails, at the call or logged later as the peer's zmqstream does, is
# checked with the stream's own tests.)


def stream_cases() -> Iterator[tuple[str, str, str, Callable[[], Any]]]:
    """``(method, param, label, bad)`` for every ``ZMQStream`` send method's parameters."""
    from zmq_async.stream import ZMQStream

    for method in sorted(
        name for name in dir(ZMQStream) if name.startswith("send_") or name == "send"
    ):
        if not callable(getattr(ZMQStream, method)) or method == "send_queue_size":
            continue
        for param in list(inspect.signature(getattr(ZMQStream, method)).parameters)[1:]:
            values = BAD.get("msg_parts" if param == "msg" else param, [])
            if param == "callback":
                values = [("str", lambda: "x")]
            for label, bad in values:
                yield method, param, label, bad


def stream_call(stream: Any, method: str, param: str, bad: Callable[[], Any]) -> None:
    """``stream.method(...)`` with good values but ``param``, which gets ``bad()``."""
    from zmq_async.stream import ZMQStream

    kwargs: dict[str, Any] = {}
    for parameter in list(inspect.signature(getattr(ZMQStream, method)).parameters.values())[1:]:
        if parameter.name == param:
            kwargs[param] = bad()
        elif parameter.default is parameter.empty and parameter.kind is not parameter.VAR_KEYWORD:
            kwargs[parameter.name] = {"msg": [b"m"], "u": "text", "obj": {"a": 1}}[parameter.name]
    getattr(stream, method)(**kwargs)


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_stream_bad_args_neither_hang_nor_break_the_stream() -> None:
    from zmq_async.stream import ZMQStream

    failures = []

    async def one(method: str, param: str, label: str, bad: Callable[[], Any]) -> None:
        ctx: zmq.Context[Any] = zmq.Context()
        try:
            a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
            for sock in (a, b):
                sock.linger = 0
            addr = f"inproc://bad-stream-{next(_addresses)}"
            a.bind(addr)
            b.connect(addr)
            stream = ZMQStream(a, io_loop=asyncio.get_running_loop())
            received: list[list[bytes]] = []
            stream.on_recv(received.append)
            with contextlib.suppress(Exception):
                stream_call(stream, method, param, bad)
            stream.on_send(None)
            # A good message still goes both ways, whatever the bad call left queued.
            stream.send(b"ping")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + HANG
            while not (b.poll(0) and b.recv() == b"ping"):
                assert loop.time() < deadline, "a good message sent after it never arrived"
                await asyncio.sleep(0.001)
            b.send(b"pong")
            while [b"pong"] not in received:
                assert loop.time() < deadline, "a good message to it was never received"
                await asyncio.sleep(0.001)
            stream.close(linger=0)
        except AssertionError as exc:
            failures.append(f"{method}({param}={label}): {exc}")
        finally:
            ctx.destroy(linger=0)

    cases = list(stream_cases())
    assert cases
    for case in cases:
        await one(*case)
    assert not failures, "\n".join(failures)
