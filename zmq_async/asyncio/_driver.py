"""The reactor's Driver on an asyncio loop (the default loop, uvloop, any loop with add_reader)."""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from zmq_async._reactor import TimerHandle
from zmq_async._thread import get_ident as _get_ident

__all__ = ["AsyncioDriver", "current_loop", "driver_for", "thread_marker"]

Callback = Callable[[], object]

_asyncgen_hooks = sys.get_asyncgen_hooks
_get_running_loop = asyncio._get_running_loop


class AsyncioDriver:
    """Watches FDs and keeps time for every zmq_async socket and poller on one loop.

    asyncio allows one reader callback per FD; several of ours may want the same FD (a
    socket's reactor and a poller holding a shadow of it), so extra ones share a fan-out.
    """

    __slots__ = ("__weakref__", "_callbacks", "home", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: ``thread_marker(loop)``, for the sockets' check that they run on their loop.
        self.home = thread_marker(loop)
        self._callbacks: dict[tuple[int, bool], list[Callback]] = {}

    def watch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        callbacks = self._callbacks.get(key)
        if callbacks is None:
            self._callbacks[key] = [callback]
            self._register(key, callback)
        else:
            callbacks.append(callback)
            if len(callbacks) == 2:
                self._register(key, self._fan_out, key)

    def unwatch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        callbacks = self._callbacks.get(key)
        if not callbacks or callback not in callbacks:
            return
        callbacks.remove(callback)
        if not callbacks:
            del self._callbacks[key]
        if self.loop.is_closed():
            return
        if not callbacks:
            if writable:
                self.loop.remove_writer(fd)
            else:
                self.loop.remove_reader(fd)
        elif len(callbacks) == 1:
            self._register(key, callbacks[0])

    def call_soon(self, callback: Callback) -> None:
        self.loop.call_soon(callback)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self.loop.call_later(delay, callback, *args)

    def _register(self, key: tuple[int, bool], callback: Callable[..., object], *args: Any) -> None:
        fd, writable = key
        try:
            if writable:
                self.loop.add_writer(fd, callback, *args)
            else:
                self.loop.add_reader(fd, callback, *args)
        except NotImplementedError:
            raise RuntimeError(
                f"{self.loop!r} cannot watch file descriptors (no add_reader), which zmq "
                "sockets need; on Windows use asyncio.WindowsSelectorEventLoopPolicy()"
            ) from None

    def _fan_out(self, key: tuple[int, bool]) -> None:
        for callback in tuple(self._callbacks.get(key, ())):
            callback()


_drivers: WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncioDriver] = WeakKeyDictionary()


def driver_for(loop: asyncio.AbstractEventLoop) -> AsyncioDriver:
    """The one driver of ``loop``."""
    driver = _drivers.get(loop)
    if driver is None:
        driver = _drivers[loop] = AsyncioDriver(loop)
    return driver


def current_loop() -> asyncio.AbstractEventLoop:
    """The running loop; outside one, the thread's current loop, with the peer's warning."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop
    warnings.warn(
        "No running event loop. zmq_async.asyncio should be used from within an asyncio loop.",
        RuntimeWarning,
        stacklevel=4,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.get_event_loop()


#: Never anyone's asyncgen hook.
_NEVER = object()


class _RunMarker:
    """The marker of a loop that does not record its thread (uvloop): see ``thread_marker``.

    A loop's ``run_forever`` installs its own asyncgen hooks in the thread that runs it
    (``sys.set_asyncgen_hooks``, as asyncio's and uvloop's both do) and restores the previous
    ones when the run ends. Hooks are per thread, and the bound method a run installs is a new
    object that this marker keeps alive (so its identity is never reused): the calling
    thread's current ``firstiter`` hook being that object means the calling thread is inside
    that very run. Reading the hooks costs a third of ``_get_running_loop()``'s getpid().
    The object is learnt the first time the exact check says the loop runs here, and again
    after each new run (another thread, or another loop in between).
    """

    __slots__ = ("_run", "loop")

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        #: The ``firstiter`` hook the loop's current (or last seen) run installed; at first
        #: none (not None: that is the hook of a thread that runs no loop).
        self._run: object = _NEVER

    @property
    def _thread_id(self) -> int | None:
        """The calling thread's identifier if ``loop`` is running in it, else None."""
        if _asyncgen_hooks()[0] is self._run:
            return _get_ident()
        loop = self.loop
        if _get_running_loop() is not loop:
            return None
        hook = _asyncgen_hooks()[0]
        # Only a hook of this loop's own making names its run (one the user installed may
        # be installed in other threads too).
        if getattr(hook, "__self__", None) is loop:
            self._run = hook
        return _get_ident()


def thread_marker(loop: Any) -> Any:
    """An object whose ``_thread_id`` is the identifier of the thread running ``loop``, or None.

    ``thread_marker(loop)._thread_id == zmq_async._thread.get_ident()`` means ``loop`` is the
    running loop of the calling thread, as ``asyncio._get_running_loop() is loop`` does, for a
    fraction of the cost: on CPython 3.11 that makes a getpid() system call on every call
    (about 0.2 us, as much as a whole send). asyncio's own loops (``BaseEventLoop``: the
    default loop, Tornado's) record the thread they run in, and are their own marker; for
    others (uvloop) a :class:`_RunMarker` recognises the loop's current run by the asyncgen
    hook it installed in its thread. False tells nothing: fall back to ``_get_running_loop()``
    then. The marker of a loop inherited across ``fork()`` may still match in the child,
    where ``_get_running_loop()`` says None: callers check that their reactor was not
    abandoned.
    """
    return loop if isinstance(loop, asyncio.BaseEventLoop) else _RunMarker(loop)
