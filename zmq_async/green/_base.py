"""What both green flavours share, framework-free: parking a greenlet, and the blocking socket.

gevent and eventlet differ only in how a greenlet waits for its hub and how the hub watches
an FD and keeps time. A flavour describes its hub with a :class:`GreenHub` (a reactor
:class:`~zmq_async._reactor.Driver`, the hub greenlet, "switch to the hub", "call this from
the hub soon", "run this blocking call in a thread") and subclasses :class:`GreenSocket`,
:class:`GreenContext` and :class:`GreenPoller` naming its hub. Everything else is here.

Blocking a greenlet
-------------------
A blocking call first tries its operation with NOBLOCK, unless others are queued ahead of it
(FIFO). Only on ``zmq.Again`` does it queue a :class:`~zmq_async._reactor.Waiter` whose
completion is a :class:`Wakeup`, and switch to the hub. The reactor runs the operation for
the waiter from the hub, and the wakeup switches straight back into the greenlet with the
result, so there is no moment at which a message is taken but not yet delivered: a
``Timeout`` or ``kill`` thrown into the parked greenlet always finds its operation not done,
marks it abandoned (the reactor skips it) and propagates. Nothing was consumed. (Only errors
set from another greenlet, e.g. by ``close()``, and poll results reach the greenlet through a
deferred switch; losing one of those to a ``Timeout`` loses nothing.)
"""

from __future__ import annotations

import contextlib
import gc
import os
import struct
import sys
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar, Protocol, TypeGuard, TypeVar, cast

import zmq
from zmq.backend import Socket as _BackendSocket

from zmq_async import _ops, _thread
from zmq_async._poller import PollWait, _LookAgain
from zmq_async._reactor import Driver, Reactor, Waiter, live_reactors
from zmq_async._socket import ReactorSocket, current_pid, inherited_error

__all__ = [
    "GreenContext",
    "GreenHub",
    "GreenPoller",
    "GreenSocket",
    "Wakeup",
    "forget_hub_at_fork",
    "green_device",
    "green_proxy",
    "green_select",
    "run_in_os_thread",
]

_SocketT = TypeVar("_SocketT", bound="GreenSocket")

_get: Callable[[Any, int], Any] = _BackendSocket.get
_set = _BackendSocket.set
_recv = _ops.recv
_send = _ops.send
_Again = zmq.Again
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_RCVTIMEO = int(zmq.RCVTIMEO)
_SNDTIMEO = int(zmq.SNDTIMEO)
_LINGER = int(zmq.LINGER)
#: The errors close() and term() give waiters (each raises a copy, see _fresh), made now:
#: a socket collected at interpreter exit closes when ZMQError() can no longer import.
_CLOSED = zmq.ZMQError(zmq.ENOTSOCK)
_TERMINATED = zmq.ContextTerminated()


class GreenHub:
    """One framework hub (one per thread) as the green sockets see it.

    ``switch()`` parks the current greenlet until something switches back to it; ``defer(fn)``
    calls ``fn()`` from the hub soon; ``defer_from_thread(fn)`` does so from another OS thread,
    waking the hub if it sleeps; ``run_blocking(fn)`` runs a call that may block the OS thread
    in a worker thread, parking only the calling greenlet.
    """

    __slots__ = (
        "defer",
        "defer_from_thread",
        "driver",
        "getcurrent",
        "greenlet",
        "os_thread",
        "run_blocking",
        "switch",
        "thread",
    )

    def __init__(
        self,
        driver: Driver,
        greenlet: Any,
        getcurrent: Callable[[], Any],
        switch: Callable[[], Any],
        defer: Callable[[Callable[[], object]], object],
        run_blocking: Callable[[Callable[[], Any]], Any],
        defer_from_thread: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self.driver = driver
        self.greenlet = greenlet
        self.getcurrent = getcurrent
        self.switch = switch
        self.defer = defer
        self.defer_from_thread = defer if defer_from_thread is None else defer_from_thread
        self.run_blocking = run_blocking
        self.thread = _thread.get_ident()  # the OS thread, also when monkeypatched
        #: The same thread, as an identity no later thread can reuse (for _thread.alive).
        self.os_thread = _thread.current()


class Wakeup:
    """The completion of one parked greenlet (the reactor's ``Completion`` protocol).

    A result set from the hub switches into the greenlet at once (as gevent's own ``Waiter``
    does), so a received message is never left undelivered. Everything else is deferred to a
    hub callback: results set from another greenlet, results with ``direct=False`` (polls,
    completed from inside a loop over the poll queue) and every error, since errors come
    from ``close()`` and teardown, which must finish before the woken greenlet runs.
    ``cancel()`` from outside wakes the greenlet with ``ZMQError(ENOTSOCK)``.
    """

    __slots__ = ("_direct", "_done", "_error", "_greenlet", "_hub", "_parked", "_value")

    def __init__(self, hub: GreenHub, direct: bool = True) -> None:
        self._hub = hub
        self._greenlet = hub.getcurrent()
        self._direct = direct
        self._done = False
        self._parked = False
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any, /) -> None:
        if not self._done:
            self._done = True
            self._value = result
            if self._parked:
                hub = self._hub
                if self._direct and hub.getcurrent() is hub.greenlet:
                    self._parked = False
                    try:
                        self._greenlet.switch()
                    except BaseException as exc:
                        # The greenlet died with an error that went to its parent, the hub,
                        # here in the reactor's dispatch: raise it from a hub callback of its
                        # own instead, which the framework reports as it does any other.
                        hub.defer(partial(_reraise, exc))
                else:
                    hub.defer(self._resume)

    def set_exception(self, exception: BaseException, /) -> None:
        if not self._done:
            self._done = True
            self._error = exception
            if self._parked:
                hub = self._hub
                # From another thread (a close or term there): the hub may sleep until its
                # next timer or event, so wake it.
                defer = hub.defer if hub.thread == _thread.get_ident() else hub.defer_from_thread
                # ValueError: its hub's loop was destroyed (gevent); the greenlet never runs.
                with contextlib.suppress(ValueError):
                    defer(self._resume)

    def cancel(self) -> bool:
        if self._done:
            return False
        self.set_exception(zmq.ZMQError(zmq.ENOTSOCK))
        return True

    def abandon(self) -> None:
        """The greenlet gave up (Timeout, kill): the reactor must skip this waiter."""
        self._done = True

    def wait(self) -> Any:
        """Park the calling greenlet until completed; return the result or raise its error.

        Call it from the greenlet that made this wakeup. Raises RuntimeError when that is the
        hub itself, which cannot block.
        """
        if not self._done:
            hub = self._hub
            if self._greenlet is hub.greenlet:  # made by the greenlet that waits
                raise RuntimeError("cannot block in the hub (in a loop callback)")
            self._parked = True
            try:
                while not self._done:  # any other switch back to us is spurious
                    hub.switch()
            finally:
                self._parked = False
        error = self._error
        if error is not None:
            raise _fresh(error)
        return self._value

    def _resume(self) -> None:
        # Deferred: the greenlet may have left already (Timeout, kill); then do nothing.
        if self._parked:
            self._parked = False
            self._greenlet.switch()


def _reraise(error: BaseException) -> None:
    raise error


def _fresh(error: BaseException) -> BaseException:
    """The error to raise: one close error is shared by every waiter, each raises its own.

    A waiter only ever fails with ``zmq.Again`` when its RCVTIMEO/SNDTIMEO expired: that one
    carries ``is_timeout = True``, as ``eventlet.green.zmq``'s does, so that
    ``eventlet.is_timeout(error)`` holds.
    """
    if type(error) is zmq.Again:
        error.is_timeout = True  # type: ignore[attr-defined]
        return error
    if type(error) is zmq.ZMQError:
        return zmq.ZMQError(error.errno, error.strerror)
    if type(error) is zmq.ContextTerminated:
        return zmq.ContextTerminated()
    return error


# -- fork --------------------------------------------------------------------------------------

#: Found just before a fork: the parked greenlets of the forking thread, as the Wakeups of
#: those waiting on a green socket and the polls of those in a Poller; the process forking.
_at_fork: tuple[list[Wakeup], list[PollWait], int] | None = None


def _before_fork() -> None:
    """Note the greenlets of this thread parked on green sockets and pollers, before fork().

    In the child the fork handler of ``zmq_async._socket`` empties the reactors' queues
    (rule 8): the greenlets still parked there would wait for ever. Only this thread's: the
    child has no other.
    """
    global _at_fork
    me = _thread.get_ident()
    direct: list[Wakeup] = []
    polls: dict[int, PollWait] = {}
    for reactor in live_reactors():
        for waiter in (*reactor.recvq, *reactor.sendq, *reactor.pollq):
            completion = waiter.completion
            # A Poller's waiters complete its PollWait, directly or through a look-again.
            wait = completion.wait if isinstance(completion, _LookAgain) else completion
            if isinstance(wait, PollWait):
                if _parked_in(wait.completion, me):
                    polls[id(wait)] = wait
            elif _parked_in(completion, me):
                direct.append(completion)
    _at_fork = (direct, list(polls.values()), current_pid()) if direct or polls else None


def _parked_in(completion: object, thread: int) -> TypeGuard[Wakeup]:
    """Whether ``completion`` is the Wakeup of a greenlet parked in a hub of ``thread``."""
    return (
        isinstance(completion, Wakeup)
        and completion._parked
        and not completion._done
        and completion._hub.thread == thread
    )


def _forget_parked() -> None:
    global _at_fork
    _at_fork = None


def _fail_parked() -> None:
    """In a forked child: fail the greenlets that were parked (see _before_fork) at once.

    One waiting on a socket gets the error any use of an inherited socket raises; one in a
    poll is told to look again, which fails the same way (``PollWait``). Either is resumed
    from the hub, whenever the child next runs it.
    """
    global _at_fork
    if _at_fork is None:
        return
    direct, polls, parent = _at_fork
    _at_fork = None
    for wakeup in direct:
        wakeup.set_exception(inherited_error(parent))
    for wait in polls:
        wait.set_result(None)


os.register_at_fork(
    before=_before_fork, after_in_parent=_forget_parked, after_in_child=_fail_parked
)


class _Forgetting(Protocol):
    def forget_all(self) -> None: ...


def forget_hub_at_fork(local: Any) -> None:
    """In every forked child, forget the forking thread's hub kept as ``local.hub``.

    Its driver drops every watch without a word to the OS (``forget_all``): the FDs are the
    parent's sockets', and a hub may share its epoll set with the parent until it renews it
    (eventlet never does). Registered after :func:`_fail_parked`, so it runs after it.
    """

    def forget() -> None:
        ours: GreenHub | None = getattr(local, "hub", None)
        local.hub = None
        if ours is not None:
            cast(_Forgetting, ours.driver).forget_all()

    os.register_at_fork(after_in_child=forget)


class GreenSocket(ReactorSocket[Any]):
    """A ``zmq.Socket`` whose blocking calls block only the calling greenlet.

    ``send``/``recv`` (and multipart, ``recv_into``, the json/pyobj/string/serialized helpers
    built on them) and ``poll`` park the greenlet instead of the thread; with ``NOBLOCK`` they
    never switch. Any number of greenlets may wait on one socket: each direction is FIFO, and
    multipart messages never interleave. ``RCVTIMEO``/``SNDTIMEO`` raise ``zmq.Again`` after
    their time. Closing the socket wakes its waiters with ``ZMQError(ENOTSOCK)``; terminating
    its context, with ``ContextTerminated`` (ETERM).
    """

    #: The flavour's hub of the calling thread; set by each flavour.
    _current_hub: ClassVar[Callable[[], GreenHub]]
    #: A slot, not an instance attribute: read on every call, a slot skips the dict lookup
    #: that pyzmq's ``__getattr__`` hook leaves unspecialized.
    __slots__ = ("_reactor",)
    _reactor: Reactor
    _hub: GreenHub | None = None
    _close_error: BaseException | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reactor = self._new_reactor()

    def _stop_dropped(self, reactor: Reactor) -> None:
        # In its hub's thread only (no one waits: a waiter holds the socket). From another
        # thread (a collection there) it stays, as unwatching is not safe there.
        hub = self._hub
        if hub is None or hub.thread == _thread.get_ident():
            reactor.close()

    # -- the hub this socket waits in ----------------------------------------------------

    def _here(self) -> GreenHub:
        """The calling thread's hub, which the socket's reactor is moved to if need be.

        Raises RuntimeError if the socket waits in the hub of another live thread.
        """
        hub = type(self)._current_hub()
        if hub is not self._hub:
            old = self._hub
            if old is not None and old.thread != hub.thread and _thread.alive(old.os_thread):
                raise RuntimeError(
                    f"{self!r} is used by greenlets of another thread; "
                    "a zmq socket may only be used from one thread"
                )
            self._reactor.rebind(hub.driver)
            self._hub = hub
        return hub

    # -- the one path every send and receive takes ---------------------------------------

    def _run(self, sending: bool, op: Callable[..., Any], args: tuple[Any, ...], flags: int) -> Any:
        """``op(self, *args)`` now if no one is queued ahead, else park until its turn."""
        reactor = self._reactor
        queue = reactor.sendq if sending else reactor.recvq
        if queue and not flags & _NOBLOCK and reactor.busy(queue):
            return _park(self, reactor, sending, op, args)
        if not sending and reactor.recv_dry and not flags & _NOBLOCK and not reactor.recv_ready():
            return _park(self, reactor, False, op, args, True)
        try:
            result = op(self, *args)
        except _Again:
            if flags & _NOBLOCK:
                _touched(reactor)
                raise
            # Park below, outside the except block: no chained Again.
        except BaseException:
            _touched(reactor)
            raise
        else:
            if reactor.recvq or reactor.sendq or reactor.pollq:
                reactor.kick()  # rule 1: the operation may have consumed their edge
            return result
        if not sending:
            reactor.recv_dry = True
        return _park(self, reactor, sending, op, args, not sending)

    def _check_open(self) -> None:
        if self._reactor.closed:
            error = self._close_error
            raise _fresh(error) if error is not None else zmq.ZMQError(zmq.ENOTSOCK)

    # -- receiving -------------------------------------------------------------------------

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        """Receive one frame: bytes (``copy=False``: a ``zmq.Frame``)."""
        # _run, inlined for the hottest path: one attribute read of the socket (each costs
        # about 300 instructions through pyzmq's __getattr__ hook), no sentinel compare.
        reactor = self._reactor
        if (reactor.recvq or reactor.recv_dry) and not flags & _NOBLOCK:
            if reactor.busy(reactor.recvq):
                return _park(self, reactor, False, _recv, (flags | _NOBLOCK, copy, track))
            if reactor.recv_dry and not reactor.recv_ready():
                # The last attempt found nothing: EVENTS says so for a third of the cost.
                return _park(self, reactor, False, _recv, (flags | _NOBLOCK, copy, track), True)
        try:
            result = _recv(self, flags | _NOBLOCK, copy, track)
        except _Again:
            if flags & _NOBLOCK:
                _touched(reactor)
                raise
            # Park below, outside the except block: no chained Again.
        except BaseException:
            _touched(reactor)
            raise
        else:
            if reactor.recvq or reactor.sendq or reactor.pollq:
                reactor.kick()
            return result
        reactor.recv_dry = True
        return _park(self, reactor, False, _recv, (flags | _NOBLOCK, copy, track), True)

    def recv_multipart(self, flags: int = 0, copy: bool = True, track: bool = False) -> list[Any]:
        """Receive a whole multipart message: a list of frames."""
        return self._run(False, _ops.recv_multipart, (flags | _NOBLOCK, copy, track), flags)  # type: ignore[no-any-return]

    def recv_into(self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0) -> int:
        """Receive one frame into ``buffer``; returns the frame's size."""
        return self._run(False, _ops.recv_into, (buffer, nbytes, flags | _NOBLOCK), flags)  # type: ignore[no-any-return]

    # -- sending (send_json, send_pyobj, send_string and send_serialized come from
    #    zmq.Socket, which calls these two) -------------------------------------------------

    def send(
        self,
        data: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        routing_id: int | None = None,
        group: str | None = None,
    ) -> Any:
        """Send one frame; returns None (or a MessageTracker with ``copy=False``)."""
        if routing_id is not None or group is not None:
            options = {"routing_id": routing_id, "group": group}
            args: tuple[Any, ...] = (data, flags | _NOBLOCK, copy, track, options)
            return self._run(True, _ops.send_with_options, args, flags)
        # _run, inlined for the hottest path (see recv).
        reactor = self._reactor
        if reactor.sendq and not flags & _NOBLOCK and reactor.busy(reactor.sendq):
            return _park(self, reactor, True, _send, (data, flags | _NOBLOCK, copy, track))
        try:
            result = _send(self, data, flags | _NOBLOCK, copy, track)
        except _Again:
            if flags & _NOBLOCK:
                _touched(reactor)
                raise
            # Park below, outside the except block: no chained Again.
        except BaseException:
            _touched(reactor)
            raise
        else:
            if reactor.recvq or reactor.sendq or reactor.pollq:
                reactor.kick()
            return result
        return _park(self, reactor, True, _send, (data, flags | _NOBLOCK, copy, track))

    def send_multipart(
        self, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Any:
        """Send a whole multipart message; a bad frame fails it before any frame is sent."""
        parts = _ops.frames(msg_parts)
        return self._run(True, _ops.send_multipart, (parts, flags | _NOBLOCK, copy, track), flags)

    # -- polling ---------------------------------------------------------------------------

    def poll(self, timeout: int | None = None, flags: int = zmq.POLLIN) -> int:
        """The events in ``flags`` that are ready, waiting up to ``timeout`` ms (None: forever).

        Returns 0 at the timeout. Raises ZMQError (ENOTSUP, as pyzmq) if the socket is closed.
        """
        if self.closed:
            raise zmq.ZMQError(zmq.ENOTSUP)
        seconds = _ops.poll_timeout(timeout)
        flags = _ops.poll_flags(flags)
        reactor = self._reactor
        ready = _get(self, _EVENTS) & flags
        if ready or timeout == 0:
            reactor.after_op()
            return int(ready)
        self._check_open()
        hub = self._here()
        completion = Wakeup(hub, direct=False)
        waiter = Waiter(completion, None, mask=flags)
        reactor.wait_poll(waiter, seconds)
        try:
            return int(completion.wait())
        except BaseException:
            if not completion.done():
                completion.abandon()
                _drop(reactor.pollq, waiter)
            raise

    # -- closing ---------------------------------------------------------------------------

    def close(self, linger: int | None = None) -> None:
        """Wake every waiting greenlet with ``ZMQError(ENOTSOCK)``, unwatch the FD, close."""
        if not self.closed and hasattr(self, "_reactor"):  # unset if __init__ failed
            self._release(_CLOSED)
            context = self.context
            if isinstance(context, GreenContext) and _may_linger(self, linger):
                context._lingering = True  # its term() may wait for unsent messages
        super().close(linger)

    def _release(self, error: BaseException) -> None:
        """Complete every waiter with ``error`` and stop watching the FD (before a close)."""
        reactor = self._reactor
        if not reactor.closed:
            self._close_error = error
            reactor.close(error)


def _may_linger(sock: GreenSocket, linger: int | None) -> bool:
    """Whether closing ``sock`` with ``linger`` may leave unsent messages to libzmq."""
    if linger is not None:
        return linger != 0
    try:
        return bool(_get(sock, _LINGER) != 0)
    except zmq.ZMQError:  # ETERM: its context's term runs already
        return False


def _touched(reactor: Reactor) -> None:
    """Rule 1 after a touch of the socket that raised: others queued re-read EVENTS soon."""
    if reactor.recvq or reactor.sendq or reactor.pollq:
        reactor.kick()


def _drop(queue: deque[Waiter] | list[Waiter], waiter: Waiter) -> None:
    """Forget an abandoned ``waiter`` (Timeout, kill): cancel its timer, and take it out of
    ``queue`` if it is at either end.

    One further in stays, dead, until the reactor passes it or sweeps the queue: taking it
    out would scan the queue, and a storm of timeouts over thousands of waiters would then
    cost O(n^2) with the hub blocked throughout.
    """
    timer = waiter.timer
    if timer is not None:
        waiter.timer = None
        timer.cancel()
    if queue:
        if queue[-1] is waiter:
            queue.pop()
        elif queue[0] is waiter:
            queue.remove(waiter)  # found at once


def _park(
    sock: GreenSocket,
    reactor: Reactor,
    sending: bool,
    op: Callable[..., Any],
    args: tuple[Any, ...],
    tried: bool = False,
) -> Any:
    """Queue a waiter for ``op`` on ``sock`` and park until the reactor ran it (or gave up).

    ``tried``: a receive that has just found no message (see ``Reactor.wait_recv``). A
    function, not a method: a method of the socket is found through pyzmq's ``__getattr__``
    hook and bound anew on every call. Raises the socket's close error if it is closed, and
    RuntimeError if it waits in the hub of another live thread.
    """
    if reactor.closed:
        sock._check_open()
    hub = type(sock)._current_hub()
    if hub.driver is not reactor.driver:
        hub = sock._here()
    completion = Wakeup(hub)
    waiter = Waiter(completion, op, args)
    if sending:
        reactor.wait_send(waiter)
    else:
        reactor.wait_recv(waiter, tried)
    try:
        return completion.wait()
    except BaseException:
        if not completion.done():
            completion.abandon()
            _drop(reactor.sendq if sending else reactor.recvq, waiter)
        raise


def run_in_os_thread(
    hub: GreenHub, function: Callable[[], Any], start_os_thread: Callable[..., Any]
) -> Any:
    """``function()`` run in an OS thread of its own (started by ``start_os_thread``, the
    unpatched ``_thread.start_new_thread``), parking only the calling greenlet of ``hub``;
    returns its result or raises its error. The thread answers through
    ``hub.defer_from_thread``: the caller keeps the hub running and listening meanwhile.

    Not a framework's pool: a call that never returns (a term waiting for ever for unsent
    messages) would hold one of its few workers for good.
    """
    wakeup = Wakeup(hub)

    def work() -> None:
        try:
            answer = partial(wakeup.set_result, function())
        except BaseException as exc:
            answer = partial(wakeup.set_exception, exc)
        with contextlib.suppress(ValueError):  # the hub's loop was destroyed meanwhile
            hub.defer_from_thread(answer)

    try:
        start_os_thread(work, ())
        return wakeup.wait()
    except BaseException:
        wakeup.abandon()  # interrupted (Timeout, kill): the call goes on, its answer is dropped
        raise


class GreenContext(zmq.Context[_SocketT]):
    """A context of green sockets: ``term()`` and ``destroy()`` wake their waiters with ETERM."""

    _current_hub: ClassVar[Callable[[], GreenHub]]
    #: Whether the calling OS thread has a hub (asked without making one).
    _hub_exists: ClassVar[Callable[[], bool]]
    #: ids of the sockets made by ``socket()`` and not closed yet, kept apart from the weak
    #: ``_sockets``: the garbage collector empties that before any finalizer runs.
    _open: set[int]
    #: Held while libzmq's term runs (an OS lock: the term may run in a worker thread).
    _terminating: Any
    #: Whether a socket closed with a LINGER: libzmq's term may then wait out unsent messages.
    _lingering = False
    #: Set while the collector destroys it: no switch to another greenlet then.
    _finalizing = False
    #: The process that made it: in a forked child, libzmq's term of it does nothing.
    _made_in: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._terminating = _thread.allocate_lock()
        self._made_in = current_pid()
        super().__init__(*args, **kwargs)
        self._open = set()

    def _add_socket(self, socket: Any) -> None:
        super()._add_socket(socket)
        self._open.add(id(socket))

    def _rm_socket(self, socket: Any) -> None:
        super()._rm_socket(socket)
        if getattr(self, "_open", None) is not None:
            self._open.discard(id(socket))

    def __del__(self) -> None:
        # A context dropped with sockets never closed can be garbage together with them (each
        # socket refers to its context; a traceback can close the cycle), and their
        # finalizers may run after this one:
        # terminating here, as zmq.Context does, would wait for them for ever. Terminate once
        # the collection is over and they have closed themselves. (No thread: monkeypatched,
        # starting one would switch greenlets in the middle of the collection.)
        orphans = getattr(self, "_open", None) and not self._shadow and not self.closed
        if orphans and not sys.is_finalizing():
            warnings.warn(f"Unclosed context {self}", ResourceWarning, 2, source=self)
            _term_after_collection(self)
            return
        self._finalizing = True
        super().__del__()

    def term(self) -> None:
        """Terminate the context, waking greenlets waiting on its sockets with ETERM.

        While some of its sockets are still open, libzmq's term blocks until they are closed,
        and after a socket closed with a LINGER, until its unsent messages are sent or the
        linger is over: it then runs in a worker thread, so that the woken greenlets can
        close them and the others run meanwhile. A term() called meanwhile (from another
        greenlet) waits for that one, as it would in a blocking program: libzmq's term may
        not run twice at once on one context. Where no worker thread can be had (in an
        atexit handler, from Python 3.12) it waits in the caller, or raises that RuntimeError
        if sockets are still open (the wait would never end). Called by a finalizer while the
        collector destroys some of its sockets, it terminates once the collection has closed
        them.
        """
        if self._made_in != current_pid():
            # A forked child's copy, which libzmq's term leaves alone: no wait, no worker
            # (plain gevent's pool is the parent's), and no lock (a term running in the
            # parent at the fork left it held for ever).
            super().term()
            return
        # A thread without a hub (a cleanup thread) has no greenlet to keep running: its
        # term blocks, as a blocking term does. (Made a hub, never ended, it leaked FDs; and
        # eventlet's tpool answered only the hub of the thread that first used it.) Asked
        # first: releasing the waiters cancels eventlet timers, which makes the caller a hub.
        green = type(self)._hub_exists()
        self._release_sockets()
        sockets = self._socket_list()
        if getattr(self, "_open", set()).difference(map(id, sockets)):
            # Sockets the collector is destroying (it cleared their weak references, so
            # destroy() could not close them) with a finalizer calling this: libzmq's term
            # would wait for them for ever, as they close only once this returns.
            _term_after_collection(self)
            return
        open_sockets = any(not s.closed for s in sockets)
        waits = open_sockets or self._lingering or self._terminating.locked()
        if waits and green and not self._finalizing:
            hub = type(self)._current_hub()
            if hub.getcurrent() is not hub.greenlet:
                try:
                    hub.run_blocking(self._term_once)
                    return
                except RuntimeError:
                    # No worker thread (none may start in an atexit handler from Python
                    # 3.12): with no socket open the term ends with the linger, so wait here
                    # as a blocking program would; with sockets open it would never end.
                    if open_sockets:
                        raise
        self._term_once()

    def _term_once(self) -> None:
        with self._terminating:
            if not self.closed:
                super().term()

    def destroy(self, linger: int | None = None) -> None:
        """Close every socket (their waiters get ETERM), then terminate the context."""
        if not self.closed:
            self._release_sockets()
        super().destroy(linger)

    def _socket_list(self) -> list[Any]:
        """The context's sockets; none if ``__init__`` refused its arguments (as pyzmq's
        ``destroy`` reads it: the collector still destroys such a context)."""
        return list(getattr(self, "_sockets", None) or ())

    def _release_sockets(self) -> None:
        for sock in self._socket_list():
            if isinstance(sock, GreenSocket) and not sock.closed:
                sock._release(_TERMINATED)


def _term_after_collection(context: GreenContext[Any]) -> None:
    """Terminate ``context`` after the garbage collection once its sockets are all closed."""

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and not context._open:
            gc.callbacks.remove(collected)
            if not context.closed:
                zmq.Context.term(context)

    gc.callbacks.append(collected)


class GreenPoller(zmq.Poller):
    """A ``zmq.Poller`` whose ``poll`` blocks only the calling greenlet.

    Polls green sockets, plain ``zmq.Socket`` objects, raw file descriptors and objects with
    ``fileno()``.
    """

    _current_hub: ClassVar[Callable[[], GreenHub]]
    _socket_class: ClassVar[type[GreenSocket]]

    def poll(self, timeout: int | None = -1) -> list[tuple[Any, int]]:
        """The ready ``(socket, event)`` pairs; ``[]`` after ``timeout`` ms.

        ``timeout`` None or negative waits forever; 0 answers at once. Raises what
        ``zmq.Poller.poll`` raises (e.g. ENOTSOCK for a closed socket).
        """
        hub = type(self)._current_hub()
        completion = Wakeup(hub, direct=False)
        wait = PollWait(
            hub.driver,
            self.sockets,
            partial(zmq.Poller.poll, self, 0),
            partial(_reactor_on, self._socket_class),
            completion,
        )
        if wait.begin(_ops.poll_timeout(timeout)):
            try:
                completion.wait()
            except BaseException:
                completion.abandon()
                raise
            finally:
                wait.teardown()
        return completion.wait()  # type: ignore[no-any-return]


def _reactor_on(socket_class: type[GreenSocket], item: Any) -> Reactor | None:
    """The reactor of a green socket ``item``, in this thread's hub; None for anything else."""
    if not isinstance(item, socket_class) or item.closed:
        return None
    item._here()
    return item._reactor


def green_select(
    poller_class: type[GreenPoller],
    rlist: Sequence[Any],
    wlist: Sequence[Any],
    xlist: Sequence[Any],
    timeout: float | None = None,
) -> tuple[list[Any], list[Any], list[Any]]:
    """``zmq.select`` on a green poller: ``timeout`` in seconds, None to wait forever."""
    poller = poller_class()
    for item in {*rlist, *wlist, *xlist}:
        flags = 0
        if item in rlist:
            flags |= zmq.POLLIN
        if item in wlist:
            flags |= zmq.POLLOUT
        if item in xlist:
            flags |= zmq.POLLERR
        poller.register(item, flags)
    ms = -1 if timeout is None or timeout < 0 else int(timeout * 1000)
    ready = poller.poll(ms)
    return (
        [s for s, e in ready if e & zmq.POLLIN],
        [s for s, e in ready if e & zmq.POLLOUT],
        [s for s, e in ready if e & zmq.POLLERR],
    )


def green_proxy(
    poller_class: type[GreenPoller],
    frontend: Any,
    backend: Any,
    capture: Any = None,
    control: Any = None,
) -> int:
    """Shuttle messages between ``frontend`` and ``backend`` (copies to ``capture``).

    Like ``zmq.proxy`` it returns only by raising: ``ContextTerminated`` (ETERM) when the
    context is terminated, ``ZMQError(ENOTSOCK)`` when a socket is closed. With a
    ``control`` socket (``zmq.proxy_steerable``), the commands ``PAUSE``, ``RESUME``,
    ``TERMINATE`` (which returns 0) and ``STATISTICS`` are obeyed as libzmq does: a REP
    control socket gets an empty reply to each command, and ``STATISTICS`` is answered on
    any control socket with libzmq's eight counts (frames and bytes in and out of each
    side).
    """
    poller = poller_class()
    sides = [frontend] if backend is frontend else [frontend, backend]
    for sock in sides:
        poller.register(sock, zmq.POLLIN)
    replies = False
    if control is not None:
        poller.register(control, zmq.POLLIN)
        replies = control.get(zmq.TYPE) == zmq.REP
    # frontend in (frames, bytes), out; backend in, out: libzmq's STATISTICS order.
    stats = [0] * 8
    while True:
        for sock, _event in poller.poll():
            if sock is control:
                command = control.recv()
                if command == b"STATISTICS":
                    control.send_multipart([struct.pack("Q", count) for count in stats])
                    continue
                if replies:
                    control.send(b"")
                if command == b"TERMINATE":
                    return 0
                if command in (b"PAUSE", b"RESUME"):
                    # Paused: stop polling both sides, or they would wake us for ever.
                    for side in sides:
                        poller.register(side, zmq.POLLIN if command == b"RESUME" else 0)
                continue
            # Move what is there now (bounded), then look again: a busy side cannot starve
            # the other, and the hub gets its turn between rounds.
            if sock is frontend:
                target, into, out = backend, 0, 6
            else:
                target, into, out = frontend, 4, 2
            for _ in range(64):
                try:
                    msg = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                target.send_multipart(msg)
                if capture is not None:
                    capture.send_multipart(msg)
                frames, size = len(msg), sum(map(len, msg))
                stats[into] += frames
                stats[into + 1] += size
                stats[out] += frames
                stats[out + 1] += size


def green_device(
    poller_class: type[GreenPoller], device_type: int, frontend: Any, backend: Any
) -> int:
    """``zmq.device``: ``device_type`` (QUEUE, FORWARDER, STREAMER) is ignored, as in pyzmq."""
    return green_proxy(poller_class, frontend, backend)
