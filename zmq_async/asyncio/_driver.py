"""The reactor's Driver on an asyncio loop (the default loop, uvloop, any loop with add_reader)."""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Callable
from typing import Any
from weakref import WeakValueDictionary

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

    __slots__ = ("__weakref__", "_callbacks", "home", "loop", "run", "run_thread", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        records = isinstance(loop, asyncio.BaseEventLoop)
        #: The loop if it records the thread running it (``_thread_id``: asyncio's own loops),
        #: else an object whose ``_thread_id`` is always None. With ``run``, the sockets' fast
        #: check that their loop is the running loop of the calling thread.
        self.thread: Any = loop if records else _NO_THREAD
        #: The asyncgen hook the loop's current (or last seen) run installed in its thread:
        #: the calling thread's current hook being this very object means the caller is
        #: inside that run (see :class:`_RunMarker`). Learnt by :meth:`learn_run`, for loops
        #: that do not record their thread only.
        self.run: object = _NEVER
        #: The thread ``run`` was learnt in: the hook alone is not enough, as user code may
        #: install a copy of it in another thread (``sys.set_asyncgen_hooks`` takes any).
        self.run_thread: int | None = None
        #: ``thread_marker(loop)``.
        self.home: Any = loop if records else _RunMarker(self)
        self._callbacks: dict[tuple[int, bool], list[Callback]] = {}

    def running_here(self) -> bool:
        """Whether the loop is the running loop of the calling thread (the exact, slow check).

        If so, learns its run (see :meth:`learn_run`).
        """
        if _get_running_loop() is not self.loop:
            return False
        self.learn_run()
        return True

    def learn_run(self) -> None:
        """Remember the hook of the loop's current run; call only while it runs in this thread.

        The fast check (``run``) then says so, until the run ends.
        """
        if self.thread is not _NO_THREAD:
            return  # the loop records its thread: that check is exact, a hook only less so
        hook = _asyncgen_hooks()[0]
        # Only a hook of this loop's own making names its run (one the user installed may
        # be installed in other threads too).
        if getattr(hook, "__self__", None) is self.loop:
            self.run_thread = _get_ident()  # first: a check that sees the new run sees it too
            self.run = hook

    def watch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        callbacks = self._callbacks.get(key)
        if callbacks is None:
            self._register(key, callback)  # first: a bad FD raises with nothing recorded
            self._callbacks[key] = [callback]
        else:
            callbacks.append(callback)
            self._renew(key)

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
        try:
            self.loop.call_soon(callback)
        except RuntimeError:
            # The loop is closed: no one can await its waiters any more (a re-check that
            # reading EVENTS schedules must not fail the read).
            if not self.loop.is_closed():
                raise

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        return self.loop.call_later(delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Call ``callback()`` from the loop soon; from any thread. RuntimeError if it closed."""
        self.loop.call_soon_threadsafe(callback)

    def may_unwatch_here(self) -> bool:
        """Yes in the loop's thread while it runs, and anywhere while it does not."""
        return not self.loop.is_running() or self.running_here()

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

    def _renew(self, key: tuple[int, bool]) -> None:
        """Register ``key``'s fan-out with the OS afresh (remove, then add).

        The FD may be a new one that reuses the number of one closed under its watchers (a
        plain socket closed under a stream, a poll, a wrapper): the selector still holds the
        old one's registration, and only re-adding it puts the new FD in the OS's set.
        """
        fd, writable = key
        try:
            if writable:
                self.loop.remove_writer(fd)
            else:
                self.loop.remove_reader(fd)
        except OSError:
            # The stale FD was watched both ways: the selector dropped it altogether, and the
            # other way's watchers must be registered again (the fan-out calls one or more).
            other = (fd, not writable)
            if other in self._callbacks:
                self._register(other, self._fan_out, other)
        self._register(key, self._fan_out, key)

    def _fan_out(self, key: tuple[int, bool]) -> None:
        for callback in tuple(self._callbacks.get(key, ())):
            callback()


#: Each loop's driver while anything uses it: the sockets, pollers and FD callbacks that need
#: a driver hold it, and it holds its loop. Weak values, not weak keys: a driver in a weak-key
#: map would keep its own key alive, and every loop ever used with it with it.
_drivers: WeakValueDictionary[asyncio.AbstractEventLoop, AsyncioDriver] = WeakValueDictionary()


def driver_for(loop: asyncio.AbstractEventLoop) -> AsyncioDriver:
    """The one driver of ``loop`` (a new one once nothing uses the last)."""
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


#: Never anyone's asyncgen hook (not None: that is the hook of a thread that runs no loop).
_NEVER = object()


class _NoThread:
    """Stands for a loop that does not say which thread runs it: never the caller's."""

    __slots__ = ()
    _thread_id = None


_NO_THREAD = _NoThread()


class _RunMarker:
    """The marker of a loop that does not record its thread (uvloop): see ``thread_marker``.

    A loop's ``run_forever`` installs its own asyncgen hooks in the thread that runs it
    (``sys.set_asyncgen_hooks``, as asyncio's and uvloop's both do) and restores the previous
    ones when the run ends. Hooks are per thread, and the bound method a run installs is a new
    object, which the driver keeps alive (so its identity is never reused): the calling
    thread's current ``firstiter`` hook being that object means the calling thread is inside
    that very run, if it is the thread the driver learnt it in (user code may install a copy
    of the hook in another thread). The driver learns the object the first time the exact
    check says the loop runs here, and again after each new run (in another thread, or after
    another loop).
    """

    __slots__ = ("_driver",)

    def __init__(self, driver: AsyncioDriver) -> None:
        self._driver = driver

    @property
    def _thread_id(self) -> int | None:
        """The calling thread's identifier if the loop is running in it, else None."""
        driver = self._driver
        ident = _get_ident()
        if (driver.run is _asyncgen_hooks()[0] and driver.run_thread == ident) or (
            driver.running_here()
        ):
            return ident
        return None


def thread_marker(loop: Any) -> Any:
    """An object whose ``_thread_id`` is the identifier of the thread running ``loop``, or None.

    ``thread_marker(loop)._thread_id == zmq_async._thread.get_ident()`` means ``loop`` is the
    running loop of the calling thread, as ``asyncio._get_running_loop() is loop`` does, for a
    fraction of the cost: on CPython 3.11 that makes a getpid() system call on every call
    (about 0.2 us, as much as a whole send). asyncio's own loops (``BaseEventLoop``: the
    default loop, Tornado's) record the thread they run in, and are their own marker; for
    others (uvloop) a marker recognises the loop's current run by the asyncgen hook it
    installed in its thread (see :class:`_RunMarker`). False tells nothing: fall back to
    ``_get_running_loop()`` then. The marker of a loop inherited across ``fork()`` may still
    match in the child, where ``_get_running_loop()`` says None: callers check that their
    reactor was not abandoned.
    """
    return loop if isinstance(loop, asyncio.BaseEventLoop) else driver_for(loop).home
