"""The reactor's Driver on gevent's hub: libev/libuv io watchers, callbacks and timers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import gevent  # type: ignore[import-untyped]
import gevent.monkey  # type: ignore[import-untyped]
from gevent._hub_local import get_hub_if_exists  # type: ignore[import-untyped]
from greenlet import getcurrent  # type: ignore[import-untyped]

from zmq_async import _thread
from zmq_async._reactor import TimerHandle
from zmq_async.green._base import GreenHub, forget_hub_at_fork, run_in_os_thread

__all__ = ["GeventDriver", "current_hub", "hub_exists"]

Callback = Callable[[], object]
#: Starts an OS thread, also when gevent has patched ``_thread`` to start greenlets.
_start_os_thread = gevent.monkey.get_original("_thread", "start_new_thread")
_READ = 1
_WRITE = 2


class _Timer:
    """A started gevent timer watcher, as a :class:`~zmq_async._reactor.TimerHandle`."""

    __slots__ = ("_watcher",)

    def __init__(self, watcher: Any) -> None:
        self._watcher = watcher

    def cancel(self) -> None:
        with contextlib.suppress(ValueError):  # its loop was destroyed (see GeventDriver)
            self._watcher.close()


class GeventDriver:
    """Watches FDs and keeps time for every green socket and poller of one gevent hub.

    libev (and gevent on libuv) allow several watchers on one FD: each callback gets its own.

    Its loop may be destroyed under it: gevent's threadpool destroys a worker's hub, loop
    and all, when the worker exits. Its watchers are gone with it, and stopping one raises
    ValueError: unwatching or cancelling then has nothing to do.
    """

    __slots__ = ("__weakref__", "_watchers", "loop")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self._watchers: dict[tuple[int, bool], list[tuple[Callback, Any]]] = {}

    def watch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        watcher = self.loop.io(fd, _WRITE if writable else _READ)
        watcher.start(callback)
        self._watchers.setdefault((fd, writable), []).append((callback, watcher))

    def unwatch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        entries = self._watchers.get(key)
        if not entries:
            return
        for index, (registered, watcher) in enumerate(entries):
            if registered == callback:
                del entries[index]
                if not entries:
                    del self._watchers[key]
                # Stops it and frees it: no watcher outlives its FD. (Its loop may have been
                # destroyed, and the watcher with it.)
                with contextlib.suppress(ValueError):
                    watcher.close()
                return

    def forget_all(self) -> None:
        """Stop every watcher (in a forked child: the FDs are the parent's sockets').

        Safe after fork: libev applies the change to its epoll set when the loop next runs,
        which is after ``gevent.reinit()`` has given the child its own (gevent requires it).
        """
        for entries in self._watchers.values():
            for _, watcher in entries:
                watcher.close()
        self._watchers.clear()

    def call_soon(self, callback: Callback) -> None:
        self.loop.run_callback(callback)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        watcher = self.loop.timer(delay)
        # From the current time, not the loop's cached one (taken when its iteration began:
        # after CPU work a timeout would end early), as gevent.Timeout does. Waits only.
        watcher.start(callback, *args, update=True)
        return _Timer(watcher)

    def may_unwatch_here(self) -> bool:
        """No: the hub's watchers are its own thread's; it finds the socket closed."""
        return False


def _run_blocking(hub: Any, function: Callable[[], Any]) -> Any:
    """``function()`` in an OS thread of its own (see ``run_in_os_thread``), not in gevent's
    threadpool, whose few workers its resolver uses too."""
    # Started and never sent: keeps the loop running (no LoopExit) while the thread works.
    keepalive = hub.loop.async_()
    keepalive.start(_noop)
    try:
        return run_in_os_thread(current_hub(), function, _start_os_thread)
    finally:
        keepalive.close()


def _noop() -> None:
    pass


#: Per OS thread, not per greenlet, even when monkeypatched: all its greenlets share one hub.
_local = _thread.local()


# In a forked child, stop watching the parent's sockets' FDs (libev watches them
# level-triggered: the parent's pending signals would make the child's hub spin).
forget_hub_at_fork(_local)


def hub_exists() -> bool:
    """Whether this OS thread has a gevent hub (not making one, as ``gevent.get_hub()`` does)."""
    return get_hub_if_exists() is not None


def current_hub() -> GreenHub:
    """The :class:`GreenHub` of this thread's gevent hub (made on first use)."""
    hub = gevent.get_hub()
    ours: GreenHub | None = getattr(_local, "hub", None)
    if ours is None or ours.greenlet is not hub:
        ours = _local.hub = GreenHub(
            GeventDriver(hub.loop),
            hub,
            getcurrent,
            hub.switch,
            hub.loop.run_callback,
            lambda function: _run_blocking(hub, function),
            hub.loop.run_callback_threadsafe,
        )
    return ours
