"""The edge-triggered reactor: per-socket wait queues and the dispatch that serves them.

Theory of operation
-------------------
A ZeroMQ socket has no readiness an event loop can watch. It offers ``zmq.FD``, a file
descriptor that turns readable when the socket's state *may have changed*, and
``zmq.EVENTS``, the state itself (POLLIN: a whole message can be received; POLLOUT: a
message can be sent). The FD is edge-triggered in a treacherous way: any call into libzmq
on the socket (send, recv, ``getsockopt(EVENTS)``, by us, by the user, or through a shadow
socket) may process the pending state changes and so *consume* the edge, leaving the FD
quiet while EVENTS says an operation could proceed.

A :class:`Reactor` serves one socket. Callers try their operation at once with NOBLOCK and
queue a :class:`Waiter` only on ``zmq.Again``; the reactor completes waiters when EVENTS
allows. It knows no framework: an adapter gives it a :class:`Driver` (watch an FD, call
soon, call later) and waiters whose completion follows the :class:`Completion` protocol
(an ``asyncio.Future`` does). The rules, each with a test in ``tests/test_reactor.py``:

1. No lost wakeup. After any touch of the socket outside dispatch, if waiters are queued,
   EVENTS is re-read soon (:meth:`Reactor.after_op` / :meth:`Reactor.kick`); while waiters
   are queued, dispatch ends only on an EVENTS read showing that none of them can proceed
   (or, when only receivers wait, on a failed receive, which re-arms the FD the same way).
   Touches we cannot see (a shadow socket, a plain ``zmq.Poller``) are caught by the
   re-check (:class:`Rechecker`): one per driver (per loop), over the reactors that have
   waiters, so that idle sockets cost nothing per socket and no timer each. **Bound:** a
   waiter stranded that way is served within :data:`RECHECK_MAX` (2 s), or, with more than
   4,000 sockets waiting on one loop, within :data:`RECHECK_PER_SOCKET` (0.5 ms) per socket
   (5 s at 10,000), so that the re-check never costs more than a fraction of a percent of a
   CPU; plus however late the loop runs its timers.
2. No lost message. An operation runs only for a live waiter (completion not done). A
   cancelled or timed-out waiter is skipped, so it never consumes a message. Decoding
   (``recv_json`` ...) runs inside the same waiter: a message is never received on behalf
   of a caller who has gone. One received for a caller who went meanwhile in another
   thread goes back (:meth:`Reactor.give_back`), first in line for the next receive.
3. FIFO, bounded batches. Receivers, and senders, are served in arrival order. One dispatch
   serves at most :data:`BATCH` operations, then reschedules itself, so a busy socket
   cannot starve the loop or other sockets.
4. Atomic multipart. A waiter's operation moves a whole message: once POLLIN is set every
   frame of the next message is there, and libzmq accepts every frame of a message once it
   accepted the first.
5. Timeouts. A waiter with a deadline fails with ``zmq.Again`` (a poll: result 0) when the
   time is up, and is removed; nothing is consumed.
6. Close. :meth:`Reactor.close` completes every waiter (cancelled, or failed with a given
   error), cancels its timers and stops watching the FD, before the socket is closed.
7. Loop/thread discipline is the adapter's: it moves a reactor to another loop with
   :meth:`Reactor.rebind`, which releases the waiters that belonged to the old one.
8. fork. In a forked child, ``zmq_async._socket`` abandons every reactor of the parent
   (:meth:`Reactor.abandon`) without touching its loop or FD: those are shared with the
   parent (an epoll instance survives fork in both processes), so unregistering the FD in
   the child would stop the parent's wakeups. Its sockets then refuse further use.

Two ways to drive it
--------------------
Callback-style frameworks register :meth:`Reactor.dispatch` as the FD's reader callback
(``Driver.watch``). Wait-style ones (trio, anyio) only offer ``await wait_readable(fd)``,
and trio lets one task wait on an FD: there, ``Driver.watch`` records that the FD needs
watching, one waiting task at a time does ``wait_readable`` then :meth:`Reactor.dispatch`
on behalf of all, and hands that role on when it is cancelled or served. Dispatch is
synchronous and idempotent, so either style calls it the same way.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol
from weakref import WeakKeyDictionary

import zmq
from zmq.backend import Socket as _BackendSocket
from zmq.backend import zmq_poll as _zmq_poll

from zmq_async import _ops

__all__ = [
    "BATCH",
    "Completion",
    "Driver",
    "Reactor",
    "Rechecker",
    "TimerHandle",
    "Waiter",
    "take_siblings",
    "take_stale",
]

#: Operations one dispatch may serve before it yields to the loop (rule 3).
BATCH = 64
#: The re-check that guards against edges consumed where we cannot see (rule 1) looks at a
#: socket that starts waiting after RECHECK_FIRST, then at intervals that double while it
#: waits, up to RECHECK_MAX; with many sockets waiting, RECHECK_PER_SOCKET each (see
#: :class:`Rechecker`). It runs only while waiters are queued.
RECHECK_FIRST = 0.05
RECHECK_MAX = 2.0
RECHECK_PER_SOCKET = 0.0005
#: A queue is swept of dead waiters when it grows past this, or twice its live size.
SWEEP_MIN = 64

_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_RCVTIMEO = int(zmq.RCVTIMEO)
_SNDTIMEO = int(zmq.SNDTIMEO)
_RCVMORE = int(zmq.RCVMORE)
_POLLBOTH = _POLLIN | _POLLOUT
_TYPE = int(zmq.TYPE)
#: Socket types whose receive out of turn fails (EFSM) where EVENTS shows POLLOUT, not POLLIN.
_FSM_TYPES = (int(zmq.REQ), int(zmq.REP))
_get: Callable[[Any, int], Any] = _BackendSocket.get
_Again = zmq.Again
#: Errors after which the socket can never proceed: it was closed, or its context terminated.
_FATAL = (zmq.ENOTSOCK, zmq.ETERM)


class TimerHandle(Protocol):
    """A scheduled call that can be cancelled (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Driver(Protocol):
    """What an adapter gives the reactor: its framework's way to watch FDs and keep time.

    Callback-style frameworks (asyncio, Tornado, gevent, eventlet) implement ``watch`` by
    registering the callback with their loop. Several callbacks may watch one FD (a socket's
    reactor and a poller, say): the driver calls each of them.
    """

    def watch(self, fd: int, callback: Callable[[], object], writable: bool = False) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (or writable)."""

    def unwatch(self, fd: int, callback: Callable[[], object], writable: bool = False) -> None:
        """Undo one :meth:`watch`; a no-op if it is not registered (or the loop is closed)."""

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` from the loop, soon, before it next sleeps."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Call ``callback(*args)`` from the loop after ``delay`` seconds."""

    def may_unwatch_here(self) -> bool:
        """Whether the calling thread may stop this driver's watches (close a reactor of it).

        False where only another thread's running loop or hub may: a driver that also has a
        ``call_soon_threadsafe(callback)`` (asyncio's, trio's) is handed the close
        (:meth:`Reactor.close_from_thread`); the others' hub finds the socket closed at its
        re-check.
        """


class Completion(Protocol):
    """How a waiter is completed: the subset of ``asyncio.Future`` the reactor uses."""

    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...

    def cancel(self) -> bool: ...


Op = Callable[..., Any]


class Waiter:
    """One queued operation: ``op(socket, *args)``, then ``post(result)``, into ``completion``.

    A poll waiter has no ``op``; it completes with ``EVENTS & mask`` once that is non-zero.
    """

    __slots__ = ("args", "completion", "mask", "op", "post", "timer")

    def __init__(
        self,
        completion: Completion,
        op: Op | None,
        args: tuple[Any, ...] = (),
        post: Callable[[Any], Any] | None = None,
        mask: int = 0,
    ) -> None:
        self.completion = completion
        self.op = op
        self.args = args
        self.post = post
        self.mask = mask
        self.timer: TimerHandle | None = None


class Reactor:
    """Wait queues and dispatch for one zmq socket; see the module docstring for the rules."""

    __slots__ = (
        "__weakref__",
        "_dispatch_cb",
        "_dry_mask",
        "_group",
        "_kick_pending",
        "_kicked_cb",
        "_poll_items",
        "_rcvtimeo",
        "_recheck_gen",
        "_rechecker",
        "_recv_failed",
        "_sndtimeo",
        "_sweep_at",
        "_timeouts_cached",
        "_watching",
        "close_error",
        "closed",
        "driver",
        "fd",
        "given",
        "owner",
        "pollq",
        "recv_dry",
        "recvq",
        "sendq",
        "socket",
    )

    def __init__(
        self,
        socket: zmq.Socket[Any],
        driver: Driver | None = None,
        owner: zmq.Socket[Any] | None = None,
    ) -> None:
        #: The socket the reactor touches: for an adapter's socket (``owner``), a plain shadow
        #: of it, so that the reactor does not keep its owner alive (see ReactorSocket).
        self.socket = socket
        #: The adapter's socket this reactor serves, weakly; None when it serves ``socket``.
        self.owner = None if owner is None else weakref.ref(owner)
        self.fd: int = _get(socket, zmq.FD)
        self._poll_items = [(socket, _POLLBOTH)]
        self.driver = driver
        self.recvq: deque[Waiter] = deque()
        self.sendq: deque[Waiter] = deque()
        self.pollq: list[Waiter] = []
        self.closed = False
        #: What the waiters were completed with when the reactor closed (None: cancelled).
        self.close_error: BaseException | None = None
        self._watching = False
        self._kick_pending = False
        #: The re-check this reactor is in (while it may have waiters), and its generation.
        self._rechecker: Rechecker | None = None
        self._recheck_gen = 0
        self._sweep_at = SWEEP_MIN
        self._rcvtimeo: float | bool | None = False  # False: not read yet
        self._sndtimeo: float | bool | None = False
        #: Whether RCVTIMEO/SNDTIMEO may be cached: not when the owner shadows a socket made
        #: elsewhere (``from_socket``), whose options its maker may set behind our back.
        self._timeouts_cached = owner is None or not owner._shadow
        #: A hint kept by the adapters: their last receive attempt found no message.
        self.recv_dry = False
        self._dry_mask = 0  # 0: not read yet
        #: The last touch of the socket was a caller finding no message, then queueing.
        self._recv_failed = False
        #: Frames received for callers who had gone, for the next receives (:meth:`give_back`).
        self.given: _Given | None = None
        # Bound once: no per-wakeup allocation of bound methods.
        self._dispatch_cb = self.dispatch
        self._kicked_cb = self._kicked
        _live.add(self)
        #: Its address's group while its libzmq socket is open (see :meth:`_recheck`).
        self._group = _join_group(self)

    # -- queueing ---------------------------------------------------------------------------

    def wait_recv(self, waiter: Waiter, tried: bool = False) -> None:
        """Queue a receiving waiter, with the socket's RCVTIMEO as its deadline.

        ``tried``: the caller has just found no message (a failed NOBLOCK receive, or
        :meth:`recv_ready`) and queues without touching the socket again.
        """
        if self.given is not None and waiter.op in _ops.RECEIVES:
            self._take_given(waiter)
            return
        timeout: float | bool | None = self._rcvtimeo
        if timeout is False:
            timeout = _timeout(_get(self.socket, _RCVTIMEO))
            if self._timeouts_cached:
                self._rcvtimeo = timeout
        self._enqueue(self.recvq, waiter, timeout)
        self._recv_failed = tried

    def give_back(self, frames: list[tuple[Any, bool]]) -> None:
        """Put back frames (``(frame, more)``) received for a caller who has gone: the next
        receives get them, before what the socket still holds (rule 2).

        For a receive completed in one thread and cancelled by its caller in another at the
        same moment (see the asyncio layer's hand-off). The receivers queued now get them
        first; after them, the next receive (see :meth:`wait_recv`): while frames wait, a
        marker in ``recvq`` keeps callers off their fast path, and polls see POLLIN.
        """
        if self.closed or self.driver is None:
            return  # closed (or moved to another loop): its receives are all cancelled
        given = self.given
        if given is None:
            given = self.given = _Given()
        given.frames.extend(frames)
        if not self._deliver(given):
            self.recvq.appendleft(Waiter(given, self._given_op, (given,)))
        if self.given is not None:
            for waiter in self.pollq:  # a message waits: a poll for POLLIN is over
                if waiter.mask & _POLLIN and not waiter.completion.done():
                    _cancel_timer(waiter)
                    waiter.completion.set_result(_POLLIN)

    def _deliver(self, given: _Given) -> bool:
        """Give the frames given back to the receivers at the head of ``recvq``.

        True when that settled them: none left, or they wait behind a stream's standing
        receive (marked there), which takes messages from the socket itself and cannot take
        them: they wait for the next receive of ours rather than block it. False when no
        receiver is left to take them: the caller marks their place at the head.
        """
        recvq = self.recvq
        while given.frames:
            if not recvq:
                return False
            waiter = recvq[0]
            if waiter.completion is given or waiter.completion.done():
                recvq.popleft()  # (an earlier marker, or a dead waiter)
                _cancel_timer(waiter)
            elif waiter.op not in _ops.RECEIVES:
                recvq.insert(1, Waiter(given, self._given_op, (given,)))
                return True
            else:
                recvq.popleft()
                self._take_given(waiter)
        return True

    def _given_op(self, socket: zmq.Socket[Any], given: _Given) -> None:
        """The operation of the marker of frames given back, when a dispatch reaches it."""
        if not self._deliver(given):
            # No one to take them yet: the marker keeps its place. Its turn is the dispatch's
            # last touch: read EVENTS, which re-arms the FD as a failed receive would (rule 1),
            # or the loop calls the dispatch again at once, for ever.
            self.events()
            raise _Again

    def _take_given(self, waiter: Waiter) -> None:
        """Complete the receiving ``waiter`` from the frames given back."""
        given = self.given
        assert given is not None
        _cancel_timer(waiter)
        completion = waiter.completion
        try:
            result = _ops.take_given(waiter.op, given.frames, self.socket, waiter.args)
            if waiter.post is not None:
                result = waiter.post(result)
        except Exception as exc:
            completion.set_exception(exc)
        else:
            completion.set_result(result)
        if not given.frames:
            self.given = None  # its marker, done, leaves the queue on its next pass

    def recv_ready(self) -> bool:
        """Whether a receive may succeed now; asked instead of trying when ``recv_dry``.

        A failed NOBLOCK receive builds a ``zmq.Again`` (2.7x the instructions of an EVENTS
        read, measured); an EVENTS read answers as well and re-arms the FD as that does
        (rule 1). True (so: try it) when EVENTS shows a message, or what a receive would
        report other than ``Again``: POLLOUT on REQ/REP (a receive out of turn fails with
        EFSM there), or an error. Clears ``recv_dry`` when True. False counts as a failed
        receive: the caller queues (or is re-queued) with no touch of the socket in between,
        so a dispatch serving it may end there (the look re-armed the FD).
        """
        try:
            events = self.events()
            mask = self._dry_mask
            if not mask:
                fsm = _get(self.socket, _TYPE) in _FSM_TYPES
                mask = self._dry_mask = _POLLIN | _POLLOUT if fsm else _POLLIN
        except zmq.ZMQError:
            events = mask = 1  # closed or terminated: the receive raises the error
        if events & mask:
            self.recv_dry = False
            return True
        self._recv_failed = True
        return False

    def events(self) -> int:
        """The socket's ``EVENTS``, read as ``getsockopt(EVENTS)`` does (and so re-arming the FD).

        Through ``zmq_poll`` on the socket alone: it costs one ``poll()`` system call more,
        but a third of the instructions (pyzmq's ``get`` builds a ``SocketOption`` enum in
        Python per call), about 0.5 us less in all. Raises ``zmq.ZMQError`` as ``get`` does
        when the socket is closed (ENOTSOCK) or its context terminated (ETERM).
        """
        ready = _zmq_poll(self._poll_items, 0)
        socket = self.socket
        if ready:
            item = ready[0]
            if item[0] is socket:
                return item[1]  # type: ignore[no-any-return]
        elif not socket.closed:
            return 0
        # Closed by its owner: pyzmq then polls file descriptor 0 in its place.
        raise zmq.ZMQError(zmq.ENOTSOCK)

    def wait_send(self, waiter: Waiter) -> None:
        """Queue a sending waiter, with the socket's SNDTIMEO as its deadline."""
        timeout = self._sndtimeo
        if timeout is False:
            timeout = _timeout(_get(self.socket, _SNDTIMEO))
            if self._timeouts_cached:
                self._sndtimeo = timeout
        self._enqueue(self.sendq, waiter, timeout)

    def wait_poll(self, waiter: Waiter, timeout: float | None) -> None:
        """Queue a poll waiter for ``waiter.mask``; after ``timeout`` s it completes with 0."""
        self._enqueue(self.pollq, waiter, timeout)

    def invalidate_timeouts(self) -> None:
        """Forget the cached RCVTIMEO/SNDTIMEO (call when either option is set)."""
        self._rcvtimeo = self._sndtimeo = False

    def _enqueue(
        self, queue: deque[Waiter] | list[Waiter], waiter: Waiter, timeout: float | None
    ) -> None:
        driver = self.driver
        if self.closed or driver is None:
            raise zmq.ZMQError(zmq.ENOTSOCK, "socket is closed" if self.closed else "no driver")
        # The caller touched the socket just before (its NOBLOCK attempt, or an EVENTS read),
        # which may have consumed an edge that other waiters were counting on (rule 1).
        others = self.recvq or self.sendq or self.pollq
        if not self._watching:
            driver.watch(self.fd, self._dispatch_cb)  # first: if it fails, nothing is queued
            self._watching = True
        if len(queue) >= self._sweep_at:
            self._sweep(queue)
        queue.append(waiter)
        if self._closed_meanwhile():
            # By another thread since the check above (a close, term or destroy there): its
            # release emptied the queues before this waiter joined, and would leave it waiting.
            with contextlib.suppress(ValueError):
                queue.remove(waiter)
            raise zmq.ZMQError(zmq.ENOTSOCK, "socket is closed")
        if timeout is not None:
            waiter.timer = driver.call_later(timeout, self._expire, waiter, queue)
        if self._rechecker is None:
            rechecker_for(driver).add(self, driver)
        if others:
            self.kick()

    def _closed_meanwhile(self) -> bool:
        """Whether the reactor is closed (read again: another thread may have closed it)."""
        return self.closed

    def busy(self, queue: deque[Waiter]) -> bool:
        """Whether a live waiter is queued in ``queue`` (dropping dead ones at its head).

        Callers skip their NOBLOCK fast path when this is true, to keep FIFO order.
        """
        while queue:
            head = queue[0]
            if not head.completion.done():
                return True
            queue.popleft()
            _cancel_timer(head)
        return False

    def discard(self, waiter: Waiter) -> None:
        """Drop a waiter whose completion was cancelled from outside, and its timer."""
        _cancel_timer(waiter)
        for queue in (self.recvq, self.sendq, self.pollq):
            try:
                queue.remove(waiter)
            except ValueError:
                continue
            return

    def _expire(self, waiter: Waiter, queue: deque[Waiter] | list[Waiter]) -> None:
        waiter.timer = None
        completion = waiter.completion
        if completion.done():
            return
        with contextlib.suppress(ValueError):
            queue.remove(waiter)
        if waiter.op is None:
            completion.set_result(0)
        else:
            completion.set_exception(_Again())

    def _sweep(self, queue: deque[Waiter] | list[Waiter]) -> None:
        live = [waiter for waiter in queue if not waiter.completion.done()]
        for waiter in queue:
            if waiter.timer is not None and waiter.completion.done():
                _cancel_timer(waiter)
        queue.clear()
        queue.extend(live)
        self._sweep_at = max(SWEEP_MIN, 2 * len(live))

    # -- waking -----------------------------------------------------------------------------

    def after_op(self) -> None:
        """Call after touching the socket outside dispatch: re-checks EVENTS if anyone waits."""
        if self.recvq or self.sendq or self.pollq:
            self.kick()

    def kick(self) -> None:
        """Schedule one dispatch soon (coalesced: at most one is pending)."""
        if not self._kick_pending and self.driver is not None and not self.closed:
            self._kick_pending = True
            self.driver.call_soon(self._kicked_cb)

    def _kicked(self) -> None:
        self._kick_pending = False
        self.dispatch()

    def _recheck(self, events: int | None = None) -> int:
        """One look at EVENTS for the re-check: serve who can proceed (rule 1).

        ``events`` is EVENTS as the re-check already read it, or None to read it here.
        Returns :data:`_FOUND` if a waiter could proceed (it was served), :data:`_IDLE` if
        live waiters remain and none can, :data:`_GONE` if none is left (or it closed).
        """
        if self.closed:
            return _GONE
        recvq = self.recvq
        sendq = self.sendq
        pollq = self.pollq
        if not (recvq or sendq or pollq):
            return _GONE
        if not (sendq or pollq) and len(recvq) == 1 and recvq[0].completion is self.given:
            return _GONE  # only frames given back wait (for a receive): nothing to re-check
        if _by_handle.get(self.socket.underlying) is not self._group:
            # Its libzmq socket was closed by a sibling in another thread, which left this
            # loop's watches alone: the address may be a new socket's now (see take_stale),
            # and reading it would serve our waiters from that socket.
            self.close(zmq.ZMQError(zmq.ENOTSOCK))
            return _GONE
        if events is None:
            try:
                events = self.events()
            except zmq.ZMQError as exc:
                self.close(exc)  # closed under us, or its context terminated
                return _GONE
        if events and (
            (events & _POLLIN and recvq)
            or (events & _POLLOUT and sendq)
            or (pollq and _any_ready(pollq, events))
        ):
            self.dispatch()
            return _FOUND
        if sendq:
            # Some sends fail without POLLOUT ever showing (EFSM, EHOSTUNREACH): dispatch
            # tries the first once, as blocking libzmq would (see dispatch).
            waiting = len(sendq)
            self.dispatch()
            if len(sendq) < waiting:
                return _FOUND
        if self.busy(recvq) or self.busy(sendq):
            return _IDLE
        for waiter in pollq:
            if not waiter.completion.done():
                return _IDLE
        self._sweep(pollq)
        return _GONE

    # -- dispatch ---------------------------------------------------------------------------

    def dispatch(self) -> None:
        """Serve the waiters EVENTS says can proceed: the FD callback and every re-check.

        Returns when no waiter is left, or when an EVENTS read (or a failed receive) showed
        that none of those left can proceed, either of which re-arms the edge-triggered FD;
        or after :data:`BATCH` operations, having scheduled its continuation.
        """
        if self.closed:
            return
        recvq = self.recvq
        sendq = self.sendq
        pollq = self.pollq
        tried_send = False
        try:
            for served_rounds in range(BATCH):
                if not (recvq or sendq or pollq):
                    if not served_rounds:
                        self.events()  # woken with no one waiting: re-arm the FD
                    # Everyone was served: no wakeup left to lose, so no EVENTS read (a
                    # syscall in libzmq). If the FD still signals, we are called again.
                    return
                if recvq and not (sendq or pollq):
                    # Only receivers wait: the attempt is the check. A failed NOBLOCK recv
                    # processes libzmq's commands (re-arming the FD) just as an EVENTS read
                    # does. A failed send may not (libzmq throttles it): receivers only.
                    self._recv_failed = False
                    if self._serve(recvq):
                        if self._recv_failed and not (sendq or pollq):
                            # The caller served ran on at once (a green wakeup switches
                            # into it; a stream's receiver drains), found no next message
                            # and queued again: that was the last touch, so no receiver can
                            # proceed, and the FD is re-armed. Any other touch since would
                            # have kicked (rule 1).
                            return
                        continue
                    if not recvq:
                        self.events()  # only dead waiters: the socket was not touched
                    return
                events = self.events()
                served = False
                if events & _POLLIN and recvq:
                    served = self._serve(recvq)
                if sendq:
                    if events & _POLLOUT:
                        served = self._serve(sendq) or served
                    elif not tried_send:
                        # Some sends fail without POLLOUT ever showing: EFSM on a REQ that
                        # awaits its reply, EHOSTUNREACH on ROUTER_MANDATORY when the peer's
                        # pipe is gone. Blocking libzmq retries a send after each command it
                        # processes, and so raises these; once per dispatch, so do we.
                        tried_send = True
                        if not self._serve(sendq):
                            continue  # that send may have processed commands: read EVENTS
                        served = True
                if not served:
                    if events and pollq:
                        self._serve_polls(events)
                    return
            self.kick()
        except zmq.ZMQError as exc:
            # EVENTS or a receive failed fatally: the socket was closed under us (ENOTSOCK) or
            # its context terminated (ETERM). Nothing can proceed again; tell every waiter why.
            if self._closed_meanwhile():
                # By another thread (a close, term or destroy there) during the operation: its
                # release emptied the queues without the waiter popped then, now put back.
                self._release(self.close_error)
            else:
                self.close(exc)

    def _serve(self, queue: deque[Waiter]) -> bool:
        """Run the operation of the first live waiter; False if none could run."""
        while queue:
            waiter = queue.popleft()
            completion = waiter.completion
            if completion.done():
                _cancel_timer(waiter)
                continue
            try:
                result = waiter.op(self.socket, *waiter.args)  # type: ignore[misc]
            except _Again:
                # EVENTS promised more than the socket holds (someone else took it), or no
                # EVENTS was read: keep this waiter's place and wait for the next edge.
                queue.appendleft(waiter)
                if self._closed_meanwhile():
                    # By another thread during the operation (libzmq released the GIL): its
                    # release emptied the queues without this waiter, popped at the time.
                    self._release(self.close_error)
                return False
            except zmq.ZMQError as exc:
                if exc.errno in _FATAL:
                    queue.appendleft(waiter)
                    raise  # dispatch closes the reactor: every waiter learns why
                _cancel_timer(waiter)
                completion.set_exception(exc)
                return True
            except Exception as exc:
                _cancel_timer(waiter)
                completion.set_exception(exc)
                return True
            except BaseException as exc:
                self._escaping(waiter, exc)
                raise
            if waiter.timer is not None:  # (most waiters have none: spare the call)
                _cancel_timer(waiter)
            post = waiter.post
            value = result
            if post is not None:
                try:
                    value = post(result)
                except Exception as exc:
                    if not completion.done():
                        completion.set_exception(exc)
                    return True
                except BaseException as exc:
                    self._escaping(waiter, exc)
                    raise
            try:
                completion.set_result(value)
            except Exception:
                # Cancelled while its message was taken: by the decoding (a deserializer, a
                # JSON hook cancelling a task or scope) or a signal handler (asyncio.run's
                # SIGINT cancels its task). An asyncio Future cannot complete then: the
                # message goes back, to the next receive (rule 2).
                self._taken_back(waiter.op, result)
            return True
        return False

    def _taken_back(self, op: Any, result: Any) -> None:
        """Give back what the receive ``op`` has just taken from the socket (``result``)."""
        frames: list[tuple[Any, bool]] | None
        if op is _ops.recv:
            # (Nothing was received since: RCVMORE is still this frame's.)
            frames = [(result, bool(_get(self.socket, _RCVMORE)))]
        else:
            frames = _ops.given_frames(op, result)  # (None: recv_into's, in a buffer)
        if frames:
            self.give_back(frames)

    def _escaping(self, waiter: Waiter, exc: BaseException) -> None:
        """Before ``exc`` (SystemExit, KeyboardInterrupt...: not an ``Exception``) propagates
        out of the operation ``waiter`` ran (its op, or ``post`` decoding what it received):
        the waiter fails with it, as an asyncio Task does, not left pending with its message
        gone, and the waiters behind it are served soon if the loop goes on (this dispatch
        ends here).
        """
        _cancel_timer(waiter)
        completion = waiter.completion
        if not completion.done():
            completion.set_exception(exc)
        self.kick()

    def _serve_polls(self, events: int) -> None:
        waiting = []
        for waiter in self.pollq:
            completion = waiter.completion
            if completion.done():
                _cancel_timer(waiter)
                continue
            ready = events & waiter.mask
            if ready:
                _cancel_timer(waiter)
                completion.set_result(ready)
            else:
                waiting.append(waiter)
        self.pollq[:] = waiting

    # -- teardown ---------------------------------------------------------------------------

    def close(self, error: BaseException | None = None) -> None:
        """Complete every waiter (cancel, or fail with ``error``) and stop watching the FD.

        Call before the socket is closed, so the FD is unregistered while it is still valid.
        """
        if self.closed:
            return
        self.close_error = error
        self.closed = True
        self._finish_close(error)

    def close_from_thread(
        self,
        error: BaseException | None,
        call_soon_threadsafe: Callable[[Callable[[], object]], object],
    ) -> None:
        """:meth:`close`, called from a thread other than the loop's, which alone may complete
        the waiters and stop watching the FD: the loop does that soon (``call_soon_threadsafe``);
        from now on, nothing here touches the socket (a new socket may get its address).

        Closes here if the loop cannot take the call (RuntimeError: it is closed, or over).
        """
        if self.closed:
            return
        self.close_error = error
        self.closed = True  # dispatch, the re-check and queueing refuse from now on
        try:
            call_soon_threadsafe(lambda: self._finish_close(error))
        except RuntimeError:
            self._finish_close(error)

    def _finish_close(self, error: BaseException | None) -> None:
        self._release(error)
        self._stop_watching()

    def rebind(self, driver: Driver) -> None:
        """Move to another loop's driver, cancelling the waiters of the old one.

        Frames given back (:meth:`give_back`) stay, for the next receives.
        """
        given = self.given
        self._release(None)
        self._stop_watching()
        self._kick_pending = False
        self.driver = driver
        if given is not None:
            self.given = given
            self.recvq.append(Waiter(given, self._given_op, (given,)))

    def abandon(self) -> None:
        """Forget the parent's state in a forked child, touching no loop, timer or FD.

        The waiters belong to the parent's loop or hub, and so does the FD's registration
        (shared with the parent): unregistering it here would take it from the parent too.
        """
        self.closed = True
        self.driver = None
        self._watching = False
        self._kick_pending = False
        if self._rechecker is not None:
            # Its socket must not be polled here (libzmq is not fork-safe): out of the sweep.
            self._rechecker.forget(self)
        self.recvq.clear()
        self.sendq.clear()
        self.pollq.clear()
        self.given = None

    def _release(self, error: BaseException | None) -> None:
        self.given = None
        waiters = [*self.recvq, *self.sendq, *self.pollq]
        self.recvq.clear()
        self.sendq.clear()
        self.pollq.clear()
        if self._rechecker is not None:
            self._rechecker.remove(self)
        for waiter in waiters:
            _cancel_timer(waiter)
            completion = waiter.completion
            if completion.done():
                continue
            try:
                if error is None:
                    completion.cancel()
                else:
                    completion.set_exception(error)
            except RuntimeError:
                pass  # its loop is closed: no one can be waiting for it any more

    def _stop_watching(self) -> None:
        if self._watching and self.driver is not None:
            self._watching = False
            self.driver.unwatch(self.fd, self._dispatch_cb)


class _Given:
    """Frames given back (:meth:`Reactor.give_back`): the completion of their marker waiter,
    live while frames are left."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames: deque[tuple[Any, bool]] = deque()

    def done(self) -> bool:
        return not self.frames

    def set_result(self, result: Any, /) -> None:
        pass

    def set_exception(self, exception: BaseException, /) -> None:
        pass

    def cancel(self) -> bool:
        return False  # (released by a close: dropped with the reactor's ``given``)


#: What one re-check of a reactor found (:meth:`Reactor._recheck`).
_GONE, _IDLE, _FOUND = range(3)
#: Generations of the re-check: a reactor that starts waiting is in the youngest, looked at
#: after RECHECK_FIRST; each look that finds nothing moves it to the next, looked at half as
#: often, up to the last (RECHECK_MAX, or RECHECK_PER_SOCKET per reactor in it).
_GENERATIONS = 7


class Rechecker:
    """The re-check of rule 1 for every reactor of one driver (one loop), in generations.

    One timer per non-empty generation, not one per socket: a reactor costs one EVENTS read
    (in one ``zmq_poll`` over its generation: about 1 us) each time its generation comes due,
    and nothing else. So N sockets that wait for a long time cost ``N * 1 us`` every
    max(RECHECK_MAX, N * RECHECK_PER_SOCKET) seconds: at most about 0.2% of a CPU, whatever
    N. A look that finds a waiter that could proceed (an edge was lost) serves it and moves
    its reactor back to the youngest generation; a reactor without waiters leaves.
    """

    __slots__ = ("_gens", "_items", "_tick_cb", "_timers")

    def __init__(self) -> None:
        self._gens: list[dict[Reactor, None]] = [{} for _ in range(_GENERATIONS)]
        self._timers: list[TimerHandle | None] = [None] * _GENERATIONS
        #: Each generation's ``zmq_poll`` items, built when its membership last changed.
        self._items: list[list[tuple[Any, int]] | None] = [None] * _GENERATIONS
        self._tick_cb = self._tick

    def add(self, reactor: Reactor, driver: Driver) -> None:
        """Start re-checking ``reactor`` (it has waiters now) on ``driver``."""
        reactor._rechecker = self
        reactor._recheck_gen = 0
        self._gens[0][reactor] = None
        self._items[0] = None
        self._arm(0, driver)

    def remove(self, reactor: Reactor) -> None:
        """Stop re-checking ``reactor`` (it released its waiters); its timer stops if unneeded."""
        gen = self.forget(reactor)
        timer = self._timers[gen]
        members = self._gens[gen]
        if not members and timer is not None:
            self._timers[gen] = None
            timer.cancel()

    def forget(self, reactor: Reactor) -> int:
        """Take ``reactor`` out of its generation, touching no timer; returns the generation."""
        reactor._rechecker = None
        gen = reactor._recheck_gen
        self._gens[gen].pop(reactor, None)
        self._items[gen] = None
        return gen

    def __len__(self) -> int:
        return sum(len(members) for members in self._gens)

    def _interval(self, gen: int) -> float:
        if gen < _GENERATIONS - 1:
            return min(RECHECK_FIRST * (1 << gen), RECHECK_MAX)
        return max(RECHECK_MAX, len(self._gens[gen]) * RECHECK_PER_SOCKET)

    def _arm(self, gen: int, driver: Driver) -> None:
        if self._timers[gen] is None and self._gens[gen]:
            self._timers[gen] = driver.call_later(self._interval(gen), self._tick_cb, gen, driver)

    def _tick(self, gen: int, driver: Driver) -> None:
        self._timers[gen] = None
        gens = self._gens
        members = gens[gen]
        older = gens[gen + 1] if gen < _GENERATIONS - 1 else None
        youngest = gens[0]
        ready = self._poll(gen)
        try:
            for reactor in tuple(members):
                if reactor._rechecker is not self or reactor._recheck_gen != gen:
                    continue  # moved or released by a dispatch earlier in this sweep
                if ready is None:
                    found = reactor._recheck()
                else:
                    found = reactor._recheck(ready.get(id(reactor.socket), 0))
                if found == _IDLE:
                    if older is not None:
                        del members[reactor]
                        older[reactor] = None
                        reactor._recheck_gen = gen + 1
                        self._items[gen] = self._items[gen + 1] = None
                elif found == _FOUND:
                    if gen and reactor._rechecker is self:
                        del members[reactor]
                        youngest[reactor] = None
                        reactor._recheck_gen = 0
                        self._items[gen] = self._items[0] = None
                elif reactor._rechecker is self:
                    del members[reactor]
                    reactor._rechecker = None
                    self._items[gen] = None
        finally:
            # Even when a waiter's operation raised what is not an Exception (SystemExit):
            # the other sockets of this loop still need their re-check.
            self._arm(gen, driver)
            if older is not None:
                self._arm(gen + 1, driver)
            self._arm(0, driver)

    def _poll(self, gen: int) -> dict[int, int] | None:
        """EVENTS of a generation's sockets, by ``id(socket)``, where not 0; None on error.

        One ``zmq_poll`` reads them all in C (half the cost of one ``getsockopt`` each).
        """
        items = self._items[gen]
        if items is None:
            items = self._items[gen] = [(reactor.socket, _POLLBOTH) for reactor in self._gens[gen]]
        try:
            ready = _zmq_poll(items, 0)
        except zmq.ZMQError:
            return None  # a socket was closed under us: look at each alone, which finds it
        for socket, _ in items:
            # A plain socket its user closed raises nothing: pyzmq polls file descriptor 0
            # in its place (0.1 us a look, against 1 us per socket for the poll).
            if socket.closed:
                return None
        return {id(socket): events for socket, events in ready}


#: The re-check of each driver; it holds no reference to the driver (its timers pass it).
_recheckers: WeakKeyDictionary[Any, Rechecker] = WeakKeyDictionary()


def rechecker_for(driver: Driver) -> Rechecker:
    """The one :class:`Rechecker` of ``driver`` (made on first use)."""
    rechecker = _recheckers.get(driver)
    if rechecker is None:
        rechecker = _recheckers[driver] = Rechecker()
    return rechecker


def _any_ready(pollq: list[Waiter], events: int) -> bool:
    return any(events & waiter.mask and not waiter.completion.done() for waiter in pollq)


#: Every reactor alive in this process (the parent's ones, after a fork: see live_reactors).
_live: weakref.WeakSet[Reactor] = weakref.WeakSet()


def live_reactors() -> list[Reactor]:
    """The reactors alive in this process, for the fork handler."""
    return list(_live)


#: The reactors of each libzmq socket, by its address: one per Python socket of ours on it
#: (a socket and its shadows). The whole group goes when that libzmq socket is closed.
_by_handle: dict[int, weakref.WeakSet[Reactor]] = {}


def _join_group(reactor: Reactor) -> weakref.WeakSet[Reactor]:
    """Put ``reactor`` in the group of its libzmq socket's address; return the group."""
    if len(_by_handle) > 2 * len(_live) + SWEEP_MIN:
        # Groups of sockets collected without a close (their reactors gone) empty out but
        # stay: drop them now and then, so the dict tracks the sockets alive.
        for handle in [handle for handle, group in _by_handle.items() if not group]:
            del _by_handle[handle]
    group = _by_handle.setdefault(reactor.socket.underlying, weakref.WeakSet())
    group.add(reactor)
    return group


def take_siblings(reactor: Reactor) -> list[Reactor]:
    """The other open reactors of ``reactor``'s libzmq socket, which is closing now.

    Forgets the group, so that a socket made later at the same address starts its own. Empty
    if ``reactor`` is not in its address's group: its socket was closed before, and the
    address may be another socket's now.
    """
    handle = reactor.socket.underlying
    group = _by_handle.get(handle)
    if group is None or reactor not in group:
        return []
    del _by_handle[handle]
    return [other for other in group if other is not reactor and not other.closed]


def take_stale(reactor: Reactor) -> list[Reactor]:
    """The other open reactors at the address of ``reactor``'s libzmq socket, just made.

    That address was another socket's, closed behind our back (by pyzmq's own ``close()``
    or ``Context.destroy()``, on a socket one of ours shadowed by address): their waiters
    would now read the new socket. Starts the address's group anew, with ``reactor`` alone.
    """
    handle = reactor.socket.underlying
    group = _by_handle.get(handle)
    if group is None or len(group) < 2:
        return []
    _by_handle[handle] = reactor._group = weakref.WeakSet((reactor,))
    return [other for other in group if other is not reactor and not other.closed]


def _timeout(milliseconds: int) -> float | None:
    """A RCVTIMEO/SNDTIMEO value in seconds; None for -1 (wait forever)."""
    return None if milliseconds < 0 else milliseconds / 1000


def _cancel_timer(waiter: Waiter) -> None:
    timer = waiter.timer
    if timer is not None:
        waiter.timer = None
        timer.cancel()
