"""A model-checked reactor: the framework-free state machine behind tests/test_model.py and
tests/green/test_model_gevent.py (this module has no tests of its own).

Hypothesis drives two real ``PAIR`` sockets over inproc (small HWMs, so sends block too)
through random interleavings of send, recv, multipart, socket and ``Poller`` polls, cancel,
RCVTIMEO/SNDTIMEO and poll timeouts, user ``EVENTS`` reads, edges eaten where the reactor
cannot see (a shadow socket's ``poll(0)``, a shadow's send or receive), close and context
destroy. A :class:`Harness` runs each step on one framework's loop and then drives that loop
until it is quiescent, so every step is bounded and nothing depends on sleeping. The model
is plain: per direction, the stream of frames libzmq accepted (message boundaries kept), and
a read position. After every step it checks:

- no message lost or duplicated, FIFO per socket: every successful receive, in the order
  the receives completed (and, within one look, the order they were made), takes exactly the
  next frames of the stream; a successful send is appended in the same order, and a send
  that failed, timed out or was cancelled never shows up at the peer; at the end what is
  left is still in the socket;
- multipart atomic: ``recv_multipart`` returns the rest of exactly one message;
- an operation completes only after every earlier one of its kind on its socket did;
- the reactor holds exactly one live waiter per operation we see pending (none leaked);
- no waiter left pending after close or context destroy, and the reactor is closed;
- no waiter asleep while ``EVENTS`` says it could proceed; when an edge was eaten where the
  reactor cannot see, it must proceed once the reactor's re-check runs (the documented bound:
  the hook is called instead of waiting for it);
- an operation whose RCVTIMEO/SNDTIMEO or poll timeout has passed is no longer pending.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zmq_async import _reactor

POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)
NOBLOCK = int(zmq.NOBLOCK)
#: RCVTIMEO/SNDTIMEO and poll timeouts the machine picks, in ms: 0 expires within its own
#: step; the other, longer than a step takes, mostly when time is let pass (a short sleep).
TIMEOUTS_MS = (0, 30)
#: Slack for a deadline on a loaded machine before "still pending" is a failure, in seconds.
TIMER_SLACK = 0.002


# -- the framework side ---------------------------------------------------------------------


class Harness:
    """One framework's loop, driven step by step from the machine.

    ``zmq`` is the module whose ``Context``/``Poller`` the machine uses. Every call that
    touches a socket goes through :meth:`call` (the loop's thread and context).
    """

    zmq: Any
    #: The outcome of an operation cancelled by the caller ("cancelled", or an error type).
    name = "?"

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function()`` synchronously in the loop's context and return its result."""
        raise NotImplementedError

    def start(self, operation: Callable[[], Any]) -> Any:
        """Begin ``operation()`` (it returns an awaitable, or blocks, per framework): a handle.

        Called from the machine, not through :meth:`call`; it need not have run on return.
        """
        raise NotImplementedError

    def cancel(self, handle: Any) -> None:
        """Cancel the operation behind ``handle`` the framework's own way."""
        raise NotImplementedError

    def outcome(self, handle: Any) -> tuple[str, Any]:
        """``("pending", None)``, ``("ok", value)``, ``("error", exc)`` or ``("cancelled", None)``.

        Called through :meth:`call`, in the loop's context.
        """
        raise NotImplementedError

    def settle(self) -> None:
        """Drive the loop until nothing can run (FD events included), bounded."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass in the loop, then settle."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the loop; called once, at the end of an example."""


def recheck(reactor: _reactor.Reactor, harness: Harness) -> None:
    """Run the reactor's re-check (rule 1's guard) now, as its timer would within the bound.

    The re-check is being redesigned: use the hook the reactor offers, and if there is none,
    wait for the documented bound (the module's longest re-check interval) instead.
    """
    hook = getattr(reactor, "recheck", None) or getattr(reactor, "_rechecked", None)
    if hook is None:
        harness.sleep(float(getattr(_reactor, "RECHECK_MAX", 1.0)) * 1.5)
        return

    def run() -> None:
        timer = getattr(reactor, "_recheck", None)
        if timer is not None:
            timer.cancel()  # the hook re-arms it: keep one timer, as the loop would
        hook()

    harness.call(run)
    harness.settle()


# -- the model ------------------------------------------------------------------------------


@dataclass
class Op:
    """One operation the machine started, and what became of it."""

    index: int
    sock: str
    kind: str  # "send", "recv" or "poll"
    form: str
    handle: Any
    frames: list[bytes] = field(default_factory=list)  # what a send sends
    mask: int = 0  # what a poll waits for
    timeout: float | None = None  # seconds, as queued
    queued_by: float = 0.0  # monotonic time by which it was queued
    state: str = "pending"
    value: Any = None
    seen: int = -1  # the look at which it was found done

    def __repr__(self) -> str:
        timeout = "" if self.timeout is None else f", timeout {self.timeout}s"
        return f"<{self.form} #{self.index} on {self.sock}: {self.state}{timeout}>"


@dataclass
class Stream:
    """The frames one socket's peer accepted, in order; ``more`` marks frames not last."""

    frames: list[bytes] = field(default_factory=list)
    more: list[bool] = field(default_factory=list)
    position: int = 0
    lossy: bool = False  # its sender closed: the tail may be dropped (linger=0)

    def append(self, message: list[bytes]) -> None:
        self.frames.extend(message)
        self.more.extend([True] * (len(message) - 1) + [False])

    def take(self, received: list[bytes], whole: bool) -> None:
        """Check that ``received`` is the next frame (``whole``: the rest of a message)."""
        start = self.position
        if whole:
            end = start
            while end < len(self.more) and self.more[end]:
                end += 1
            expected = self.frames[start : end + 1]
        else:
            expected = self.frames[start : start + 1]
        assert received == expected, (
            f"received {received!r}, the model expected {expected!r} "
            f"(lost, duplicated, reordered or torn) at frame {start}"
        )
        self.position += len(expected)

    def left(self) -> list[bytes]:
        return self.frames[self.position :]


class ReactorModel(RuleBasedStateMachine):
    """The state machine; a subclass names its :class:`Harness` factory."""

    make_harness: Callable[[], Harness]

    def __init__(self) -> None:
        super().__init__()
        self.h = type(self).make_harness()
        self.ops: list[Op] = []
        self.ids = itertools.count()
        self.looks = itertools.count()
        self.streams: dict[str, Stream] = {"a": Stream(), "b": Stream()}  # into each socket
        self.open = {"a": True, "b": True}
        self.destroyed = False
        self.unseen = {"a": False, "b": False}  # an edge may have been eaten out of sight
        self.timeo: dict[tuple[str, int], float | None] = {}
        self.socks: dict[str, Any] = {}
        self.ctx: Any = None
        self.trace: list[str] = []  # the steps so far, for failure messages

    # -- set-up and teardown ------------------------------------------------------------

    @initialize(hwm=st.sampled_from([1, 2, 4]))
    def setup(self, hwm: int) -> None:
        self.trace.append(f"setup(hwm={hwm!r})")
        z = self.h.zmq
        addr = f"inproc://model-{id(self)}-{time.monotonic_ns()}"

        def make() -> None:
            self.ctx = z.Context()
            for name in "ab":
                sock = self.ctx.socket(zmq.PAIR)
                sock.set(zmq.SNDHWM, hwm)
                sock.set(zmq.RCVHWM, hwm)
                sock.set(zmq.LINGER, 0)
                self.socks[name] = sock
            self.socks["a"].bind(addr)
            self.socks["b"].connect(addr)

        self.h.call(make)
        for name in "ab":
            self.timeo[name, int(zmq.RCVTIMEO)] = None
            self.timeo[name, int(zmq.SNDTIMEO)] = None

    def teardown(self) -> None:
        try:
            if not self.destroyed and getattr(self, "ctx", None) is not None:
                self._drain_and_check()
        finally:
            try:
                if getattr(self, "ctx", None) is not None and not self.destroyed:
                    self.h.call(lambda: self.ctx.destroy(linger=0))
                    self.h.settle()
            finally:
                self.h.close()

    def _drain_and_check(self) -> None:
        """Cancel what is pending; then what the model says is left must be in the sockets."""
        for op in self._pending():
            self.h.cancel(op.handle)
        self.h.settle()
        self._look()
        assert not self._pending(), f"pending after cancel: {self._pending()}"
        for name in "ab":
            stream = self.streams[name]
            if not self.open[name] or stream.lossy:
                continue
            sock = self.socks[name]
            left = self.h.call(lambda sock=sock: _drain(sock))
            assert left == stream.left(), f"{name}: left {left!r}, model {stream.left()!r}"

    # -- helpers --------------------------------------------------------------------------

    def _pending(self, sock: str | None = None, kind: str | None = None) -> list[Op]:
        return [
            op
            for op in self.ops
            if op.state == "pending"
            and (sock is None or op.sock == sock)
            and (kind is None or op.kind == kind)
        ]

    def _context(self) -> str:
        """The steps so far and what is pending, for a failure message (hypothesis prints
        the steps only when a failure replays, and timing may not)."""
        steps = "\n  ".join(self.trace[-25:])
        return f"\nsteps (last 25):\n  {steps}\npending: {self._pending()}"

    def _peer(self, name: str) -> str:
        return "b" if name == "a" else "a"

    def _live(self, name: str) -> bool:
        return self.open[name] and not self.destroyed

    def _step(self, action: Callable[[], Any]) -> Any:
        """Run one action in the loop, then settle; look at every operation after each."""
        result = self.h.call(action)
        self._look()
        self.h.settle()
        self._look()
        return result

    def _add(self, op: Op) -> None:
        self.ops.append(op)

    def _look(self, probe: Callable[[], Any] = lambda: None) -> Any:
        """Harvest operations found done, and fold them into the model (see the module doc).

        ``probe()`` runs in the same loop callback, so what it sees (the reactor's queues,
        EVENTS) matches the outcomes harvested: between two calls a timer may fire. Returns
        what it returned.
        """
        look = next(self.looks)
        pending = self._pending()
        outcomes, probed = self.h.call(
            lambda: ([self.h.outcome(op.handle) for op in pending], probe())
        )
        done: list[Op] = []
        for op, (state, value) in zip(pending, outcomes, strict=True):
            if state != "pending":
                if state == "ok" and op.form == "recv":
                    value = [value]
                op.state, op.value, op.seen = state, value, look
                done.append(op)
        done.sort(key=lambda op: op.index)
        for op in done:
            self._check_fifo(op)
        for op in done:
            if op.kind == "send" and op.state == "ok":
                self.streams[self._peer(op.sock)].append(op.frames)
        for op in done:
            if op.kind == "recv" and op.state == "ok":
                try:
                    self.streams[op.sock].take(op.value, op.form != "recv")
                except AssertionError as exc:
                    raise AssertionError(f"{op}: {exc}" + self._context()) from None
            elif op.kind == "poll" and op.state == "ok":
                self._check_poll(op)
            elif op.state == "error":
                self._check_error(op)
        return probed

    def _check_fifo(self, op: Op) -> None:
        if op.kind == "poll" or op.state != "ok":
            return
        for other in self.ops:
            if other.index >= op.index:
                break
            if other.sock == op.sock and other.kind == op.kind and other.form != "shadow":
                assert other.state != "pending", (
                    f"{op} completed before the earlier {other}" + self._context()
                )

    def _check_poll(self, op: Op) -> None:
        if op.form == "poller":
            events = [event for sock, event in op.value if sock is self.socks[op.sock]]
            assert len(op.value) == len(events) <= 1, op.value
            ready = events[0] if events else 0
        else:
            ready = op.value
        assert ready == ready & op.mask, f"{op}: events {ready} beyond its mask"

    def _check_error(self, op: Op) -> None:
        error = op.value
        assert isinstance(error, zmq.ZMQError), f"{op} failed with {error!r}"
        if isinstance(error, zmq.Again):
            assert op.timeout is not None, f"{op} timed out without a timeout"
            return
        assert error.errno in (zmq.ENOTSOCK, zmq.ETERM), f"{op} failed with {error!r}"
        assert not self._live(op.sock), f"{op} failed with {error!r} on a live socket"

    # -- rules: operations ----------------------------------------------------------------

    @precondition(lambda self: not self.destroyed)
    @rule(sock=st.sampled_from("ab"), parts=st.integers(1, 3), multipart=st.booleans())
    def send(self, sock: str, parts: int, multipart: bool) -> None:
        self.trace.append(f"send(sock={sock!r}, parts={parts!r}, multipart={multipart!r})")
        if not self.open[sock]:
            return
        index = next(self.ids)
        frames = [b"%d:%d/%d" % (index, part, parts) for part in range(parts)]
        target = self.socks[sock]
        if parts == 1 and not multipart:
            form, start = "send", lambda: target.send(frames[0])
        else:
            form, start = "send_multipart", lambda: target.send_multipart(frames)
        timeout = self.timeo[sock, int(zmq.SNDTIMEO)]
        self._start(Op(index, sock, "send", form, None, frames=frames, timeout=timeout), start)

    @precondition(lambda self: not self.destroyed)
    @rule(sock=st.sampled_from("ab"), whole=st.booleans())
    def recv(self, sock: str, whole: bool) -> None:
        self.trace.append(f"recv(sock={sock!r}, whole={whole!r})")
        if not self.open[sock]:
            return
        target = self.socks[sock]
        if whole:
            form, start = "recv_multipart", target.recv_multipart
        else:
            form, start = "recv", target.recv
        timeout = self.timeo[sock, int(zmq.RCVTIMEO)]
        self._start(Op(next(self.ids), sock, "recv", form, None, timeout=timeout), start)

    @precondition(lambda self: not self.destroyed)
    @rule(
        sock=st.sampled_from("ab"),
        mask=st.sampled_from([POLLIN, POLLOUT, POLLIN | POLLOUT]),
        timeout=st.sampled_from([None, *TIMEOUTS_MS]),
        poller=st.booleans(),
    )
    def poll(self, sock: str, mask: int, timeout: int | None, poller: bool) -> None:
        self.trace.append(
            f"poll(sock={sock!r}, mask={mask!r}, timeout={timeout!r}, poller={poller!r})"
        )
        if not self.open[sock]:
            return
        target = self.socks[sock]
        if poller:
            form = "poller"

            def start() -> Any:
                p = self.h.zmq.Poller()
                p.register(target, mask)
                return p.poll(-1 if timeout is None else timeout)

        else:
            form = "poll"

            def start() -> Any:
                return target.poll(timeout, mask)

        seconds = None if timeout is None else timeout / 1000
        self._start(Op(next(self.ids), sock, "poll", form, None, mask=mask, timeout=seconds), start)

    def _start(self, op: Op, start: Callable[[], Any]) -> None:
        self._add(op)
        op.handle = self.h.start(start)
        self._look()
        self.h.settle()
        self._look()
        op.queued_by = time.monotonic()

    @rule(back=st.integers(0, 5))
    def cancel(self, back: int) -> None:
        """Cancel the operation started ``back`` operations ago, if it is still pending.

        (Chosen by position, not among those pending: which are pending depends on the
        loop, and hypothesis needs each draw to depend on earlier draws alone.)
        """
        self.trace.append(f"cancel(back={back!r})")
        if back >= len(self.ops) or self.ops[-1 - back].state != "pending":
            return
        self.h.cancel(self.ops[-1 - back].handle)
        self._look()
        self.h.settle()
        self._look()

    # -- rules: options, time, touches out of the reactor's sight --------------------------

    @precondition(lambda self: not self.destroyed)
    @rule(
        sock=st.sampled_from("ab"),
        option=st.sampled_from([int(zmq.RCVTIMEO), int(zmq.SNDTIMEO)]),
        ms=st.sampled_from([-1, *TIMEOUTS_MS]),
    )
    def set_timeout(self, sock: str, option: int, ms: int) -> None:
        self.trace.append(f"set_timeout(sock={sock!r}, option={option!r}, ms={ms!r})")
        if not self.open[sock]:
            return
        target = self.socks[sock]
        self._step(lambda: target.set(option, ms))
        self.timeo[sock, option] = None if ms < 0 else ms / 1000

    @rule()
    def let_time_pass(self) -> None:
        self.trace.append("let_time_pass()")
        self.h.sleep(max(TIMEOUTS_MS) / 1000 + TIMER_SLACK)
        self._look()
        now = time.monotonic()
        self.h.settle()
        self._look()
        for op in self._pending():
            if op.timeout is not None:
                deadline = op.queued_by + op.timeout + TIMER_SLACK
                assert deadline > now, f"{op} still pending {now - deadline:.4f}s after its timeout"

    @precondition(lambda self: not self.destroyed)
    @rule(
        sock=st.sampled_from("ab"),
        how=st.sampled_from(["EVENTS", "getsockopt", "shadow poll"]),
        send_first=st.booleans(),
    )
    def touch(self, sock: str, how: str, send_first: bool) -> None:
        """Read EVENTS (the user, as ``sock.EVENTS`` or ``getsockopt``: the reactor sees it;
        a shadow socket's ``poll(0)``: it cannot), which may eat the FD's edge.

        ``send_first``: the peer sends first, through a shadow, in the same loop callback, so
        the new message's edge is eaten before the loop ever sees it.
        """
        self.trace.append(f"touch(sock={sock!r}, how={how!r}, send_first={send_first!r})")
        if not self.open[sock]:
            return
        peer = self._peer(sock)
        target = self.socks[sock]
        index = next(self.ids)
        message = [b"%d:0/1" % index]
        sent: list[bool] = []

        def action() -> None:
            if send_first and self._live(peer):
                shadow = zmq.Socket.shadow(self.socks[peer].underlying)
                try:
                    shadow.send_multipart(message, NOBLOCK)
                    sent.append(True)
                except zmq.Again:
                    pass
            if how == "EVENTS":
                target.EVENTS  # noqa: B018 - the read is the point
            elif how == "getsockopt":
                target.getsockopt(zmq.EVENTS)
            else:
                zmq.Socket.shadow(target.underlying).poll(0, POLLIN | POLLOUT)

        self.h.call(action)
        if sent:
            self.streams[sock].append(message)
            self.unseen[peer] = True
        if how == "shadow poll":
            self.unseen[sock] = True
        self._look()
        self.h.settle()
        self._look()

    @precondition(lambda self: not self.destroyed)
    @rule(sock=st.sampled_from("ab"))
    def shadow_recv(self, sock: str) -> None:
        """Receive through a shadow (out of the reactor's sight), as a user might."""
        self.trace.append(f"shadow_recv(sock={sock!r})")
        if not self.open[sock]:
            return
        target = self.socks[sock]
        op = Op(next(self.ids), sock, "recv", "shadow", None)

        def action() -> None:
            shadow = zmq.Socket.shadow(target.underlying)
            try:
                op.state, op.value = "ok", shadow.recv_multipart(NOBLOCK)
            except zmq.Again:
                op.state = "again"

        self.h.call(action)
        self.unseen[sock] = True
        if op.state == "ok":
            self._look()  # what completed before it
            self.streams[sock].take(op.value, True)
        self._look()
        self.h.settle()
        self._look()

    # -- rules: the end -------------------------------------------------------------------

    @precondition(lambda self: not self.destroyed)
    @rule(sock=st.sampled_from("ab"))
    def close(self, sock: str) -> None:
        self.trace.append(f"close(sock={sock!r})")
        if not self.open[sock]:
            return
        target = self.socks[sock]
        self.h.call(lambda: target.close(linger=0))
        self.open[sock] = False
        self.streams[self._peer(sock)].lossy = True
        self._look()
        self.h.settle()
        self._look()
        self._check_closed(sock)

    @precondition(lambda self: not self.destroyed)
    @rule()
    def destroy(self) -> None:
        self.trace.append("destroy()")
        self.h.call(lambda: self.ctx.destroy(linger=0))
        self.destroyed = True
        self.open = {"a": False, "b": False}
        self._look()
        self.h.settle()
        self._look()
        for sock in "ab":
            self._check_closed(sock)

    def _check_closed(self, sock: str) -> None:
        left = self._pending(sock)
        assert not left, f"pending after {sock} was closed: {left}" + self._context()
        reactor = self.socks[sock]._reactor
        assert reactor.closed
        assert not (reactor.recvq or reactor.sendq or reactor.pollq)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def reactor_queues_match_pending_operations(self) -> None:
        live = [sock for sock in "ab" if self._live(sock) and sock in self.socks]
        for attempt in range(2):
            queues = self._look(
                lambda: {sock: _live_waiters(self.socks[sock]._reactor) for sock in live}
            )
            wrong = [
                f"{sock}: {count} live {kind} waiters, {len(self._pending(sock, kind))} pending"
                for sock in live
                for kind, count in queues[sock].items()
                if count != len(self._pending(sock, kind))
            ]
            if not wrong or attempt:
                break
            # A deadline may have passed since the loop settled: its timer completed a
            # waiter whose task has not run yet. Timers only ever complete waiters, so
            # settling again cannot hide a waiter leaked or lost.
            self.h.settle()
        assert not wrong, ", ".join(wrong) + self._context()

    @invariant()
    def no_waiter_asleep_while_it_could_proceed(self) -> None:
        for sock in "ab":
            if not self._live(sock) or sock not in self.socks:
                continue
            stuck = self._stuck(sock)
            if stuck and self.unseen[sock]:
                recheck(self.socks[sock]._reactor, self.h)
                stuck = self._stuck(sock)
            assert not stuck, (
                f"{sock}: {stuck} asleep while EVENTS says they could proceed" + self._context()
            )
            self.unseen[sock] = False

    def _stuck(self, sock: str) -> list[Op]:
        target = self.socks[sock]
        # A shadow reads EVENTS: reading through our socket would wake the reactor itself.
        events = self._look(lambda: zmq.Socket.shadow(target.underlying).get(zmq.EVENTS))
        stuck = []
        for op in self._pending(sock):
            want = {"recv": POLLIN, "send": POLLOUT}.get(op.kind, op.mask)
            if events & want:
                stuck.append(op)
        return stuck


def _live_waiters(reactor: _reactor.Reactor) -> dict[str, int]:
    """How many live waiters each of the reactor's queues holds."""
    return {
        kind: sum(1 for waiter in queue if not waiter.completion.done())
        for kind, queue in (
            ("recv", reactor.recvq),
            ("send", reactor.sendq),
            ("poll", reactor.pollq),
        )
    }


def _drain(sock: Any) -> list[bytes]:
    """Every frame left in ``sock``, received through a shadow without waiting."""
    shadow = zmq.Socket.shadow(sock.underlying)
    frames: list[bytes] = []
    while shadow.poll(0, POLLIN):
        frames.append(shadow.recv(NOBLOCK))
    return frames
