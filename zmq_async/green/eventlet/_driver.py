"""The reactor's Driver on eventlet's hub: hub listeners, and hub timers for soon and later."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import eventlet.hubs  # type: ignore[import-untyped]
import eventlet.hubs.hub  # type: ignore[import-untyped]
import eventlet.patcher  # type: ignore[import-untyped]
from greenlet import getcurrent  # type: ignore[import-untyped]

from zmq_async import _thread
from zmq_async._reactor import TimerHandle
from zmq_async.green._base import GreenHub, forget_hub_at_fork, run_in_os_thread

__all__ = ["EventletDriver", "current_hub", "hub_exists"]

Callback = Callable[[], object]
#: os.read and os.write as they are before eventlet patches them to wait in the hub.
_os_read = eventlet.patcher.original("os").read
_os_write = eventlet.patcher.original("os").write
#: Starts an OS thread, also when eventlet has patched ``_thread`` to start green threads.
_start_os_thread = eventlet.patcher.original("_thread").start_new_thread
#: Takes a listener out of the hub's tables only, unlike the hub's own ``remove``, which also
#: unregisters its FD from the hub's epoll (or poll) set.
_drop_listener = eventlet.hubs.hub.BaseHub.remove


def _noop(*args: object) -> None:
    pass


class _FanOut:
    """The one hub listener of an FD: eventlet allows one reader per FD, we may need several."""

    __slots__ = ("callbacks", "listener")

    def __init__(self) -> None:
        self.callbacks: list[Callback] = []
        self.listener: Any = None

    def __call__(self, fileno: int) -> None:
        callbacks = self.callbacks
        if len(callbacks) == 1:
            callbacks[0]()
            return
        for callback in tuple(callbacks):
            callback()


class _Wake:
    """A pipe its hub listens to, so that other OS threads can hand the hub callbacks and wake
    it (eventlet has no thread-safe call_soon: a timer added from another thread waits until
    the hub next wakes, which may be never). Made in the hub's thread, and listened to only
    while the driver watches an FD or holds it for a call in another OS thread (no one waits
    otherwise): a hub whose sockets are all closed has no listener left, as eventlet.green.zmq
    leaves it (eventlet's tests check)."""

    __slots__ = ("_read", "_write", "callbacks", "hub", "listener")

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self.callbacks: deque[Callback] = deque()
        self.listener: Any = None

    def listen(self) -> None:
        """Listen to the pipe (a byte written meanwhile wakes the hub at once)."""
        hub = self.hub
        self.listener = hub.add(hub.READ, self._read, self._drain, _noop, _noop)

    def unlisten(self) -> None:
        """Stop listening; callbacks handed meanwhile run as hub timers."""
        listener, self.listener = self.listener, None
        with contextlib.suppress(KeyError, ValueError):  # the hub dropped it (POLLNVAL)
            self.hub.remove(listener)
        self._drain(self._read)

    def call(self, callback: Callback) -> None:
        """Call ``callback()`` from the hub soon; from any thread."""
        self.callbacks.append(callback)
        with contextlib.suppress(BlockingIOError):  # full: a wake is pending anyway
            _os_write(self._write, b"\0")

    def _drain(self, fileno: int) -> None:
        with contextlib.suppress(BlockingIOError):
            _os_read(self._read, 4096)
        while self.callbacks:
            # Each as a hub timer of its own: one that raises does not hold up the others.
            self.hub.schedule_call_global(0, self.callbacks.popleft())

    def __del__(self) -> None:
        if self.listener is not None:  # (None: forgotten in a forked child)
            with contextlib.suppress(Exception):  # (the hub, or the interpreter, may be gone)
                self.hub.remove(self.listener)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class EventletDriver:
    """Watches FDs and keeps time for every green socket and poller of one eventlet hub."""

    __slots__ = ("__weakref__", "_fan_outs", "_holds", "_thread", "_wake", "hub")

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._fan_outs: dict[tuple[int, bool], _FanOut] = {}
        #: Made with the first watch or hold (in the hub's thread), when someone may wait.
        self._wake: _Wake | None = None
        #: Calls running in other OS threads that will wake this hub (see hold_wake).
        self._holds = 0
        #: The hub's OS thread, the only one that may stop listening to the wake pipe.
        self._thread = _thread.get_ident()

    def call_from_thread(self, callback: Callback) -> None:
        """Call ``callback()`` from the hub soon, waking it; from any OS thread."""
        wake = self._wake
        if wake is None or wake.listener is None:  # nothing waits here: no one to wake
            self.call_soon(callback)
        else:
            wake.call(callback)

    def hold_wake(self) -> None:
        """Listen to the wake pipe until :meth:`release_wake`, watched FDs or not: a call
        running in another OS thread will wake this hub with its answer (in the hub's thread)."""
        self._holds += 1
        self._listen_wake()

    def release_wake(self) -> None:
        """End a :meth:`hold_wake`."""
        self._holds -= 1
        self._unlisten_wake_if_idle()

    def _listen_wake(self) -> None:
        wake = self._wake
        if wake is None:
            wake = self._wake = _Wake(self.hub)
        if wake.listener is None:  # the first watch or hold since none: now someone may wait
            wake.listen()

    def _unlisten_wake_if_idle(self) -> None:
        wake = self._wake
        if self._fan_outs or self._holds or wake is None or wake.listener is None:
            return
        if _thread.get_ident() != self._thread:
            # Another OS thread closed the last socket, after handing the hub the wake-ups of
            # its waiters: unlistening here would take the byte that wakes the hub (and touch
            # the hub's tables from a foreign thread). The hub unlistens once it ran them.
            wake.call(self._unlisten_wake_if_idle)
            return
        wake.unlisten()

    def watch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        fan_out = self._fan_outs.get(key)
        if fan_out is None:
            fan_out = _FanOut()
            fan_out.listener = self._listen(fd, fan_out, writable)
            self._fan_outs[key] = fan_out
        else:
            # The FD may be a new one that reuses the number of one closed under its
            # watchers (a plain socket or a pipe closed under a poll, a shadow's socket): the
            # OS dropped the old one's registration, the hub kept its listener, and only
            # listening afresh puts the new FD in the OS's set.
            self._unlisten(fan_out.listener)
            fan_out.listener = self._listen(fd, fan_out, writable)
        fan_out.callbacks.append(callback)
        self._listen_wake()

    def unwatch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        fan_out = self._fan_outs.get(key)
        if fan_out is None or callback not in fan_out.callbacks:
            return
        fan_out.callbacks.remove(callback)
        if not fan_out.callbacks:
            del self._fan_outs[key]
            self._unlisten(fan_out.listener)
            self._unlisten_wake_if_idle()

    def forget_all(self) -> None:
        """Drop every listener from the hub's tables, unregistering no FD (in a forked child).

        eventlet does not renew its hub at fork: the child's epoll instance is the parent's,
        and unregistering an FD there would stop the parent's hub watching it.
        """
        listeners = [fan_out.listener for fan_out in self._fan_outs.values()]
        self._fan_outs.clear()
        wake, self._wake = self._wake, None
        if wake is not None:  # its pipe is the parent's too: the child must not drain it
            listeners.append(wake.listener)
            wake.listener = None
        for listener in listeners:
            with contextlib.suppress(KeyError, ValueError):
                _drop_listener(self.hub, listener)

    def _listen(self, fd: int, fan_out: _FanOut, writable: bool) -> Any:
        hub = self.hub
        return hub.add(hub.WRITE if writable else hub.READ, fd, fan_out, _noop, _noop)

    def _unlisten(self, listener: Any) -> None:
        # KeyError, ValueError: the hub dropped it already (its poll saw the FD closed,
        # POLLNVAL, and removed every listener of that FD).
        with contextlib.suppress(KeyError, ValueError):
            self.hub.remove(listener)

    def call_soon(self, callback: Callback) -> None:
        self.hub.schedule_call_global(0, callback)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        timer: TimerHandle = self.hub.schedule_call_global(delay, callback, *args)
        return timer

    def may_unwatch_here(self) -> bool:
        """No: the hub's listeners are its own thread's; it finds the socket closed."""
        return False


def _run_blocking(driver: EventletDriver, function: Callable[[], Any]) -> Any:
    """``function()`` in an OS thread of its own (see ``run_in_os_thread``), the wake pipe
    listened to meanwhile. Not ``eventlet.tpool``: its answers come back through the hub of
    the first OS thread that used it, so a call from any other OS thread waited for ever."""
    driver.hold_wake()
    try:
        return run_in_os_thread(current_hub(), function, _start_os_thread)
    finally:
        driver.release_wake()


#: Per OS thread, not per greenlet, even when monkeypatched: all its greenlets share one hub.
_local = _thread.local()
forget_hub_at_fork(_local)


def hub_exists() -> bool:
    """Whether this OS thread has an eventlet hub (not making one, as ``get_hub()`` does)."""
    return getattr(eventlet.hubs._threadlocal, "hub", None) is not None


def current_hub() -> GreenHub:
    """The :class:`GreenHub` of this thread's eventlet hub (made on first use)."""
    hub = eventlet.hubs.get_hub()
    ours: GreenHub | None = getattr(_local, "hub", None)
    if ours is None or ours.driver.hub is not hub:  # type: ignore[attr-defined]
        driver = EventletDriver(hub)
        ours = _local.hub = GreenHub(
            driver,
            hub.greenlet,
            getcurrent,
            hub.switch,
            lambda callback: hub.schedule_call_global(0, callback),
            partial(_run_blocking, driver),
            driver.call_from_thread,
        )
    else:
        ours.greenlet = hub.greenlet  # eventlet replaces a dead hub greenlet
    return ours
