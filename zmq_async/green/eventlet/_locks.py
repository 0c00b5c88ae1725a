"""``_QueueLock``, ``_BlockedThread``, ``LockReleaseError``: names ``eventlet.green.zmq`` has.

Our sockets need none of them (the reactor's queues order the waiters), but code written
against ``eventlet.green.zmq``, its own test suite among it, reaches for them by name; so they
are here, behaving as there, and tolerating a green thread interrupted while it waits.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import eventlet.hubs  # type: ignore[import-untyped]
from greenlet import getcurrent  # type: ignore[import-untyped]

__all__ = ["LockReleaseError", "_BlockedThread", "_QueueLock"]


class LockReleaseError(Exception):
    """``eventlet.green.zmq.LockReleaseError``: a ``_QueueLock`` released more often than acquired.

    Our sockets take no such lock; the name is here for code written against the peer.
    """


class _QueueLock:
    """A re-entrant lock that waiting green threads acquire in the order they asked for it.

    True while held. ``release()`` of a lock not held raises :class:`LockReleaseError`.
    """

    def __init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._depth = 0
        self._owner: Any = None
        self._hub = eventlet.hubs.get_hub()

    def __bool__(self) -> bool:
        return self._depth > 0

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, after every green thread that asked before (again if already held)."""
        me = getcurrent()
        if self._owner is not me and (self._depth or self._queue):
            self._queue.append(me)
            try:
                while self._depth or self._queue[0] is not me:
                    self._hub.switch()  # release() switches the head back here
            except BaseException:
                self._queue.remove(me)  # interrupted (Timeout, kill): give up our turn
                if not self._depth:
                    self._wake_head()
                raise
            self._queue.popleft()
        self._owner = me
        self._depth += 1

    def release(self) -> None:
        """Undo one :meth:`acquire`; the last one lets the next waiter in."""
        if self._depth <= 0:
            raise LockReleaseError("Cannot release unacquired lock")
        self._depth -= 1
        if not self._depth:
            self._owner = None
            self._wake_head()

    def _wake_head(self) -> None:
        if self._queue:
            self._hub.schedule_call_global(0, self._queue[0].switch)


class _BlockedThread:
    """At most one green thread, parked by :meth:`block` until :meth:`wake` (or a deadline).

    True while a green thread is parked.
    """

    def __init__(self) -> None:
        self._parked: Any = None
        self._waking: Any = None
        self._hub = eventlet.hubs.get_hub()

    def __bool__(self) -> bool:
        return self._parked is not None

    def block(self, deadline: float | None = None) -> None:
        """Park the calling green thread until woken, or until the hub's clock reaches ``deadline``.

        Raises RuntimeError if another green thread is parked here already.
        """
        if self._parked is not None:
            raise RuntimeError("Cannot block more than one thread on one BlockedThread")
        self._parked = getcurrent()
        timer = None
        if deadline is not None:
            timer = self._hub.schedule_call_local(deadline - self._hub.clock(), self.wake)
        try:
            self._hub.switch()
        finally:
            self._parked = None
            for pending in (timer, self._waking):
                if pending is not None:
                    pending.cancel()  # a late wake-up must not switch into us elsewhere
            self._waking = None

    def wake(self) -> bool:
        """Wake the parked green thread: True, or False if none is parked or it is being woken."""
        if self._parked is None or self._waking is not None:
            return False
        self._waking = self._hub.schedule_call_global(0, self._parked.switch)
        return True
