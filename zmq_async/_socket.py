"""``ReactorSocket``: the ``zmq.Socket`` under every adapter's socket, with its reactor.

Reading or setting options goes through here so the reactor stays right: reading ``EVENTS``
may consume the edge a queued waiter needs (rule 1), and the reactor caches RCVTIMEO and
SNDTIMEO, so setting either must invalidate the cache (a socket made by ``from_socket`` or
``shadow`` caches neither: the socket it shadows may set them behind its back).

After ``fork()``, in the child, every socket of the parent is disowned: its reactor is
abandoned (rule 8) and the socket becomes an :class:`InheritedSocket`, on which everything
but ``close()``, ``closed`` and ``repr()`` raises RuntimeError. libzmq is not fork-safe: the
child shares the parent's signalling FDs, so a receive there could steal the parent's
wakeups, and the parent's I/O threads do not exist in the child. Costs nothing before then.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any, TypeVar
from warnings import warn as _warn

import zmq
from zmq.backend import Socket as _BackendSocket

from zmq_async._reactor import Reactor, live_reactors, take_siblings, take_stale

__all__ = [
    "HANDED_CLOSE_WAIT",
    "ReactorSocket",
    "closed_error",
    "closes_first",
    "hook_close",
    "inherited_error",
]

_T = TypeVar("_T")

_get: Callable[[Any, int], Any] = _BackendSocket.get
_set = _BackendSocket.set
_EVENTS = int(zmq.EVENTS)
_TIMEOUTS = (int(zmq.RCVTIMEO), int(zmq.SNDTIMEO))
#: How long a plain socket's close from another thread waits for the loop of a wrapper of ours
#: (a stream, a socket made ``from_socket``) to close it there first. A loop that runs its
#: callbacks does it in a few ms; one that has not after this long is blocked (perhaps on
#: the closing thread), so is in no libzmq call on it: the close goes on here.
HANDED_CLOSE_WAIT = 1.0


class ReactorSocket(zmq.Socket[_T]):
    """A ``zmq.Socket`` served by one :class:`~zmq_async._reactor.Reactor` (``_reactor``)."""

    _reactor: Reactor

    def _new_reactor(self) -> Reactor:
        """A reactor for this socket, touching it through a plain shadow.

        Holding ``self`` would make a cycle (socket -> reactor -> socket): a socket dropped
        without ``close()`` would then wait for the cycle collector, its context's ``term()``
        hanging until it runs, where pyzmq closes such a socket (with a ResourceWarning) as
        soon as its last reference goes. Its ``__del__`` calls our ``close()``, which closes
        the reactor first.
        """
        reactor = Reactor(zmq.Socket.shadow(self.underlying), owner=self)
        if not self._shadow:  # a new libzmq socket: any other reactor at its address is stale
            _close_here(take_stale(reactor))
        return reactor

    def __del__(self) -> None:
        # As pyzmq's: warn (ResourceWarning), then close. Not through pyzmq's __del__: its
        # warning (stacklevel 2) would name this frame, not the program line that dropped the
        # socket. And where warnings are errors, the warning raises: close all the same, or
        # the context's term() would wait for ever.
        if not self._shadow:
            if not self.closed:
                try:
                    if _warn is not None:  # None during interpreter teardown
                        _warn(f"Unclosed socket {self}", ResourceWarning, 2, source=self)
                finally:
                    self.close()
        elif not sys.is_finalizing():
            # A shadow never closes its socket, but once it waited its reactor watches the
            # FD and the driver's callback keeps it alive, run at every wakeup of that FD.
            reactor = getattr(self, "_reactor", None)
            if reactor is not None and not reactor.closed:
                self._stop_dropped(reactor)

    def _stop_dropped(self, reactor: Reactor) -> None:
        """Stop the reactor of this shadow, dropped without ``close()``, where that is safe.

        Called from ``__del__``, in whatever thread collects the socket; unwatching is safe
        only in the reactor's loop or hub thread, so each adapter says how. Here: leave it.
        """

    def get(self, option: int) -> Any:
        """Get the value of a socket option, as ``zmq.Socket.get``.

        Reading ``EVENTS`` makes the reactor re-check its waiters (the read may consume the edge
        one of them needs). Raises ``zmq.ZMQError`` as pyzmq does (closed socket, bad option).
        """
        result = _get(self, option)
        if option == _EVENTS:
            # Reading EVENTS may have consumed the edge a queued waiter needs.
            self._reactor.after_op()
        return result

    def getsockopt(self, option: int) -> Any:
        """``get(option)``, under its older name."""
        return self.get(option)

    def set(self, option: int, optval: Any) -> None:
        """Set a socket option, as ``zmq.Socket.set`` (``setsockopt`` is the same method).

        Setting ``RCVTIMEO`` or ``SNDTIMEO`` applies to the next wait. Raises ``zmq.ZMQError``
        as pyzmq does (closed socket, bad option or value).
        """
        _set(self, option, optval)
        if option in _TIMEOUTS:
            self._reactor.invalidate_timeouts()

    setsockopt = set

    def close(self, linger: int | None = None) -> None:
        """Close the socket, as ``zmq.Socket.close``; first end the waits of its shadows.

        Other sockets of ours on the same libzmq socket (``shadow``, ``from_socket``) would
        otherwise keep waiting on its closed FD, with its freed address: the next socket made
        may get both, and a stale waiter would take its messages. Those served in this thread
        (or by no running loop) are closed now, their waiters failed as each layer fails them
        on close; one of a loop running in another thread is left to that loop's re-check.
        """
        reactor = getattr(self, "_reactor", None)  # (a slot in some layers)
        if isinstance(reactor, Reactor):
            _close_here(take_siblings(reactor))
        super().close(linger)


def closed_error() -> zmq.ZMQError:
    """The error of an operation that waited on a socket closed meanwhile."""
    return zmq.ZMQError(zmq.ENOTSOCK, "the socket was closed while this operation waited")


def _close_here(reactors: list[Reactor]) -> None:
    """Close ``reactors`` (whose libzmq socket is gone), served in this thread or not.

    Their waiters fail as each layer fails them on close. Those of a loop running in another
    thread are closed from that thread (only it may complete them and unwatch the FD), soon:
    from now on they touch the socket no more (a new socket may get its address). A
    framework's driver with no thread-safe call (gevent, eventlet) leaves them to its hub,
    whose re-check ends them (see ``Reactor._recheck``), also once a new socket has the
    address.
    """
    for reactor in reactors:
        driver = reactor.driver
        if driver is None or driver.may_unwatch_here():  # None: it never waited
            reactor.close(_close_error_of(reactor))
        else:
            call = getattr(driver, "call_soon_threadsafe", None)
            if call is not None:
                reactor.close_from_thread(_close_error_of(reactor), call)


def _close_error_of(reactor: Reactor) -> BaseException | None:
    """What the waiters of ``reactor``, whose socket another closed, fail with.

    As its layer fails them on close (the future-returning ones: None, cancelled); those of
    a reactor with no socket of ours (a stream's, a poller's) are cancelled.
    """
    owner = None if reactor.owner is None else reactor.owner()
    if owner is None:
        return None
    layer_error = getattr(owner, "_close_error", closed_error)
    return layer_error() if callable(layer_error) else closed_error()


def closes_first(plain: zmq.Socket[Any] | int, wrapper: zmq.Socket[Any]) -> None:
    """Make ``plain.close()`` (and so its context's ``destroy()``) close ``wrapper`` first.

    ``wrapper`` shadows ``plain``'s libzmq socket. Closed by ``plain`` alone, that socket would
    leave the wrapper's FD watch and waiters behind it, on an FD number (and a libzmq socket
    address) that the next socket made may get: the stale waiters would then take its
    messages, or keep its FD from being watched. Only for plain sockets (ours close their
    shadows' reactors themselves); both are referred to weakly (no cycle keeps ``plain``).
    Costs nothing per operation: only ``plain``'s ``close`` changes (an instance attribute).
    """
    if not isinstance(plain, zmq.Socket) or isinstance(plain, ReactorSocket):
        return  # (an address: nothing to hook)
    wrapper_ref = weakref.ref(wrapper)

    def first(linger: int | None) -> bool:
        owner = wrapper_ref()
        if owner is not None:
            owner.close(linger)  # (even if another wrapper closed the libzmq socket already)
            # Handed to its loop, running in another thread: closed here at once, the socket
            # would go while that thread may be in a libzmq call on it (a crash).
            finish = getattr(owner, "finish_handed_close", None)
            if finish is not None:
                finish(HANDED_CLOSE_WAIT)
        return False

    hook_close(plain, first)


def hook_close(plain: zmq.Socket[Any], first: Callable[[int | None], bool]) -> None:
    """Make ``plain.close(linger)`` call ``first(linger)`` before it closes; True from it: the
    socket is closed already (nothing more to do).

    Hooks chain (each calls the one installed before it). Costs nothing per operation: only
    ``plain``'s ``close`` changes (an instance attribute), and ``plain`` is referred to weakly
    (``first`` should refer to its objects weakly too: no cycle keeps ``plain``). A socket
    without ``__dict__`` is left as it is.
    """
    plain_ref = weakref.ref(plain)
    close_plain = type(plain).close
    previous = getattr(plain, "__dict__", {}).get("close")  # the hook of another wrapper

    def close(linger: int | None = None) -> None:
        if first(linger):
            return
        if previous is not None:
            previous(linger)
            return
        sock = plain_ref()
        if sock is not None:
            _ = sock.closed  # pyzmq's deep check: it sees the socket closed by its shadow
            close_plain(sock, linger)

    with contextlib.suppress(AttributeError, TypeError):  # no __dict__: the re-check notices
        object.__setattr__(plain, "close", close)


#: The attributes an inherited socket still answers: what ``close()``, ``with`` and garbage
#: collection need.
_STILL_ALLOWED = frozenset({"__class__", "__dict__", "close", "closed", "_inherited_from"})


class InheritedSocket:
    """Mixed into a socket inherited across ``fork()``: any use raises RuntimeError.

    ``close()`` does nothing (the socket is the parent's: pyzmq skips ``zmq_close`` in a
    child too) and ``closed`` is True.
    """

    __slots__ = ()
    _inherited_from: int

    def __getattribute__(self, name: str) -> Any:
        if name in _STILL_ALLOWED:
            return object.__getattribute__(self, name)
        raise inherited_error(object.__getattribute__(self, "_inherited_from"))

    @property
    def closed(self) -> bool:
        return True

    def close(self, linger: int | None = None) -> None:
        """Nothing to do: the socket belongs to the parent process."""

    def __repr__(self) -> str:
        pid = object.__getattribute__(self, "_inherited_from")
        return f"<zmq socket inherited from process {pid} at {id(self):#x}>"

    def __del__(self) -> None:
        pass

    def __enter__(self) -> InheritedSocket:
        return self

    def __exit__(self, *args: object) -> None:
        pass


def inherited_error(pid: int) -> RuntimeError:
    """The error for any use of a socket of process ``pid`` in a child forked from it."""
    return RuntimeError(
        f"this zmq socket was created in process {pid} and inherited across fork(); "
        "libzmq sockets cannot be used in a forked child: create a new Context and new "
        "sockets in the child"
    )


_inherited_classes: dict[type, type] = {}
_pid = os.getpid()


def current_pid() -> int:
    """``os.getpid()`` without the system call: kept by the fork handler below."""
    return _pid


def _disown_after_fork() -> None:
    """In a forked child: abandon the parent's reactors and disown its sockets."""
    global _pid
    parent, _pid = _pid, os.getpid()
    for reactor in live_reactors():
        reactor.abandon()
        sock = reactor.socket if reactor.owner is None else reactor.owner()
        if not isinstance(sock, ReactorSocket) or isinstance(sock, InheritedSocket):
            continue
        cls = type(sock)
        inherited = _inherited_classes.get(cls)
        if inherited is None:
            inherited = _inherited_classes[cls] = type(
                cls.__name__, (InheritedSocket, cls), {"__slots__": ()}
            )
        sock.__dict__["_inherited_from"] = parent
        sock.__class__ = inherited


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_disown_after_fork)
