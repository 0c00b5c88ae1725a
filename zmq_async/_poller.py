"""One ``Poller.poll(timeout)`` in progress, framework-free.

A poller mixes three kinds of items: our sockets (each has a :class:`~zmq_async._reactor.Reactor`,
which owns its edge-triggered FD), plain ``zmq.Socket``s (a waiting poll gives each a reactor of
its own, so that the re-check of rule 1 covers them: their program may touch them, taking the
edge, as it may ours) and raw file descriptors or objects with ``fileno()`` (we watch them for
read or write). Whatever wakes us
first, the answer always comes from one non-blocking ``zmq_poll`` over all items, so it is
exactly what ``zmq.Poller.poll(0)`` would say; a wake with nothing ready just waits again.

A raw FD we watch may be closed under us, which the loop never reports: while we watch raw
FDs we therefore look again after ``RECHECK_FIRST``, then at doubling intervals up to
``RECHECK_MAX`` (the reactor's bound, rule 1), as ``zmq.green``'s poller looks every second;
a closed FD then shows as POLLERR, as ``zmq.Poller`` reports it.

In a forked child, a wait over zmq sockets (its deadline, its look again) fails with
RuntimeError instead of polling the parent's sockets: libzmq answers any use of them there
with EINTR, which pyzmq's ``zmq_poll`` retries for ever. (Our own sockets are disowned at
fork and refuse themselves: see ``zmq_async._socket``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket

from zmq_async import _reactor, _socket
from zmq_async._reactor import Completion, Driver, Reactor, TimerHandle, Waiter

__all__ = ["PollWait", "item_fd"]

Items = Sequence[tuple[Any, int]]


def item_fd(item: Any) -> int:
    """The file descriptor to watch for a poller item that has no reactor.

    Raises TypeError for an object that is neither a ``zmq.Socket``, an int, nor has ``fileno()``.
    """
    if isinstance(item, zmq.Socket):
        return int(_BackendSocket.get(item, zmq.FD))
    if isinstance(item, int):
        return item
    try:
        return int(item.fileno())
    except AttributeError:
        raise TypeError(
            f"cannot poll {item!r}: not a zmq.Socket, fd or object with fileno()"
        ) from None


class PollWait:
    """Waits until ``sync_poll()`` has something, then completes ``completion`` with it.

    It is the completion of the poll waiters it queues in the reactors of the zmq sockets it
    polls (ours, and those it makes for plain ones): a reactor completing one of them means
    "look again"; cancelling one (our socket closed) cancels it; failing one fails it.
    """

    __slots__ = (
        "_driver",
        "_fds",
        "_items",
        "_look_again",
        "_pid",
        "_plain",
        "_reactor_of",
        "_recheck_delay",
        "_recheck_pending",
        "_recheck_timer",
        "_sync_poll",
        "_timer",
        "_waiters",
        "_wake_cb",
        "completion",
    )

    def __init__(
        self,
        driver: Driver,
        items: Items,
        sync_poll: Callable[[], list[tuple[Any, int]]],
        reactor_of: Callable[[Any], Reactor | None],
        completion: Completion,
    ) -> None:
        self._driver = driver
        #: The poller's registrations, live: each look reads them as ``zmq.Poller.poll(0)``
        #: does, so a socket unregistered (and perhaps closed) meanwhile is left out.
        self._items = items
        self._sync_poll = sync_poll
        self._reactor_of = reactor_of
        self.completion = completion
        self._waiters: list[tuple[Reactor, Waiter]] = []
        self._fds: list[tuple[int, bool]] = []
        #: The reactors of the plain zmq sockets polled, by ``id()``, while the poll waits.
        self._plain: dict[int, Reactor] = {}
        #: Their waiters' completion: whatever befalls a plain socket (a message, its close,
        #: its context's end) makes the poll look again, and the look says what it means.
        self._look_again = _LookAgain(self)
        self._timer: TimerHandle | None = None
        self._recheck_pending = False
        #: The look-again timer while we watch raw FDs, and its next delay.
        self._recheck_timer: TimerHandle | None = None
        self._recheck_delay = 0.0
        #: The process that watched zmq sockets (0: none watched).
        self._pid = 0
        self._wake_cb = self._wake

    def begin(self, timeout: float | None) -> bool:
        """Poll once: complete now if something is ready or ``timeout`` is 0, else wait.

        ``timeout`` is in seconds, None for no deadline. Returns whether it is waiting; the
        caller must then call :meth:`teardown` if ``completion`` is cancelled from outside.
        """
        result = self._poll_now()
        if result is None:
            return False
        if result or timeout == 0:
            self._finish(result, None)
            return False
        self._watch()
        if timeout is not None:
            self._timer = self._driver.call_later(timeout, self._timed_out)
        return True

    # The Completion protocol, as seen by the reactors we queue waiters in.
    def done(self) -> bool:
        return self.completion.done()

    def set_result(self, result: Any, /) -> None:
        self._wake()

    def set_exception(self, exception: BaseException, /) -> None:
        self._finish(None, exception)

    def cancel(self) -> bool:
        # A reactor releases its waiters this way when its socket closes: the poll is
        # cancelled too, as zmq.asyncio does, unless that socket was unregistered meanwhile:
        # then it is left out and the poll goes on, as for a plain socket (pyzmq#1114).
        registered = {item.underlying for item, _ in self._items if isinstance(item, zmq.Socket)}
        if any(
            w.completion is self and r.closed and r.socket.underlying not in registered
            for r, w in self._waiters
        ):
            self._wake()
            return True
        self.teardown()
        return self.completion.cancel()

    def teardown(self) -> None:
        """Stop watching everything, deadline included (safe to call more than once)."""
        self._unwatch()
        for reactor in self._plain.values():
            reactor.close()
        self._plain.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _unwatch(self) -> None:
        for reactor, waiter in self._waiters:
            reactor.discard(waiter)
        self._waiters.clear()
        for fd, writable in self._fds:
            self._driver.unwatch(fd, self._wake_cb, writable)
        self._fds.clear()
        if self._recheck_timer is not None:
            self._recheck_timer.cancel()
            self._recheck_timer = None

    def _watch(self) -> None:
        """Queue a poll waiter in each of our sockets' reactors, watch every other FD.

        Raises what a reactor or the driver raises (a closed socket, a bad FD), having undone
        what it did: nothing is left watching for a poll that will not wait.
        """
        # POLLPRI (urgent data, a GPIO edge) and POLLERR alone are conditions the loops cannot
        # watch an FD for: the periodic look below, kept for every raw FD, sees them
        # (pyzmq#1865: the poll waited to its deadline).
        raw = False
        try:
            for item, mask in tuple(self._items):
                reactor = self._reactor_of(item)
                completion: Completion = self
                if reactor is None and isinstance(item, zmq.Socket):
                    reactor = self._plain.get(id(item))
                    if reactor is None or reactor.closed or reactor.socket is not item:
                        reactor = self._plain[id(item)] = Reactor(item, self._driver)
                    completion = self._look_again
                if reactor is not None:
                    waiter = Waiter(completion, None, mask=mask)
                    reactor.wait_poll(waiter, None)
                    self._waiters.append((reactor, waiter))
                    continue
                fd = item_fd(item)
                if mask & zmq.POLLIN:
                    self._watch_fd(fd, False)
                if mask & zmq.POLLOUT:
                    self._watch_fd(fd, True)
                raw = True
        except BaseException:
            self.teardown()
            raise
        if self._waiters:
            self._pid = _socket.current_pid()
        if raw:
            delay = self._recheck_delay or _reactor.RECHECK_FIRST
            self._recheck_delay = min(2 * delay, _reactor.RECHECK_MAX)
            self._recheck_timer = self._driver.call_later(delay, self._wake_cb)

    def _watch_fd(self, fd: int, writable: bool) -> None:
        self._driver.watch(fd, self._wake_cb, writable)
        self._fds.append((fd, writable))  # after: a watch that failed is not undone

    def _wake(self) -> None:
        # Called from inside a reactor's dispatch, or an FD callback: look again from the
        # loop, once, rather than re-entering the reactors we would tear down.
        if not self._recheck_pending and not self.completion.done():
            self._recheck_pending = True
            self._driver.call_soon(self._recheck)

    def _recheck(self) -> None:
        self._recheck_pending = False
        if self.completion.done():
            self.teardown()
            return
        self._unwatch()
        result = self._poll_now()
        if result is None:
            return
        if result:
            self._finish(result, None)
            return
        try:
            self._watch()
        except Exception as exc:  # an item went bad since (a raw socket closed): say so
            self._finish(None, exc)

    def _timed_out(self) -> None:
        # Like zmq.Poller: the answer at the deadline is one last look, usually [].
        self._timer = None
        self._unwatch()
        result = self._poll_now()
        if result is not None:
            self._finish(result, None)

    def _poll_now(self) -> list[tuple[Any, int]] | None:
        """One non-blocking poll over every item; None if it failed (and we finished with it)."""
        try:
            if self._pid and self._pid != _socket.current_pid():
                raise RuntimeError(
                    f"this poll began in process {self._pid}, before fork(); libzmq sockets "
                    "cannot be used in a forked child: poll new sockets there"
                )
            for item, _mask in self._items:
                # zmq_poll reports a closed socket as a readable fd 0: refuse it instead.
                if isinstance(item, zmq.Socket) and item.closed:
                    raise zmq.ZMQError(zmq.ENOTSOCK, f"cannot poll closed socket {item!r}")
            return self._sync_poll()
        except Exception as exc:
            self._finish(None, exc)
            return None
        finally:
            # zmq_poll read EVENTS of our sockets, which may have consumed edges their own
            # waiters were counting on (rule 1 of the reactor).
            for item, _mask in self._items:
                reactor = self._reactor_of(item)
                if reactor is not None:
                    reactor.after_op()

    def _finish(self, result: list[tuple[Any, int]] | None, error: BaseException | None) -> None:
        self.teardown()
        if self.completion.done():
            return
        if error is not None:
            self.completion.set_exception(error)
        else:
            self.completion.set_result(result)


class _LookAgain:
    """The completion of a poll waiter in a plain socket's reactor: anything is a wake.

    Its socket closed or its context terminated fails the poll only if it is still
    registered (the look raises then, as ``zmq.Poller.poll`` does); unregistered, it is
    simply left out, as by zmq.asyncio's poller.
    """

    __slots__ = ("wait",)

    def __init__(self, wait: PollWait) -> None:
        #: The poll it wakes.
        self.wait = wait

    def done(self) -> bool:
        return self.wait.completion.done()

    def set_result(self, result: Any, /) -> None:
        self.wait._wake()

    def set_exception(self, exception: BaseException, /) -> None:
        self.wait._wake()

    def cancel(self) -> bool:
        self.wait._wake()
        return True
