"""The reactor's Driver on trio: wait-style, driven by the tasks that wait.

trio has no ``add_reader``: a task can only ``await wait_readable(fd)``, and only one task may
wait on an FD at a time. So there is no callback registration and no background task. Instead,
``Driver.watch`` records *which callbacks want an FD*, and the tasks blocked in a zmq operation
take turns doing the waiting (:meth:`TrioDriver.block`):

- Each blocked task names the FDs it cares about (its socket's FD; a poll's FDs). If one of
  them has callbacks and no task watching it, the task becomes its **watcher**: it waits until
  the FD is readable (bounded by the nearest timer), then runs the FD's callbacks (the
  reactor's dispatch serves *every* waiter of that socket, in FIFO order) and due timers.
- Otherwise it **parks** (``wait_task_rescheduled``) until its operation is completed, or the
  watcher of one of its FDs leaves: a watcher that is served, cancelled or fails hands its role
  to a parked task of the same FD before it returns. So any number of tasks can wait on one
  socket, one at a time watching for all of them.
- ``call_soon`` is ``TrioToken.run_sync_soon``; ``call_later`` timers live in a heap run by
  one trio system task per run, started when a timer is first due and gone when the heap is
  empty. Watchers wait on their FD alone: a timer never wakes them, so N waiting sockets
  cost nothing while nothing happens (when every watcher's wait was bounded by the nearest
  deadline, each timer woke all N watchers: N re-checks times N wake-ups).

A completion (:class:`TrioCompletion`) wakes its task when the reactor completes it: it
reschedules a parked task, or ends the FD wait of a watching one: ``notify_closing`` on a zmq
socket's FD (no one else waits on it), else by cancelling the wait's private cancel scope.

trio is imported only when a trio run first uses a zmq_async.anyio object.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable, Sequence
from math import inf
from typing import TYPE_CHECKING, Any
from weakref import WeakValueDictionary

from zmq_async import _thread

if TYPE_CHECKING:
    import trio

__all__ = ["TrioCompletion", "TrioDriver", "trio_driver"]

Callback = Callable[[], object]
Key = tuple[int, bool]  # (fd, writable)


class _Timer:
    """A ``call_later`` entry; cancelling it marks it (the heap drops it lazily, or in bulk once
    most of the heap is cancelled: :meth:`TrioDriver._timer_cancelled`)."""

    __slots__ = ("args", "callback", "cancelled", "driver")

    def __init__(
        self, driver: TrioDriver, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        self.driver = driver
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.args = ()  # its waiter (and the message it may hold) need not wait for it
            self.driver._timer_cancelled()


class TrioCompletion:
    """A waiter's completion for a trio task: the Completion protocol of the reactor."""

    __slots__ = (
        "_done",
        "cancelled",
        "driver",
        "error",
        "keys",
        "parked",
        "result",
        "scope",
        "status",
        "task",
        "waits_on",
        "zmq_fds",
    )

    def __init__(self, driver: TrioDriver, zmq_fds: bool = False) -> None:
        self.driver = driver
        #: Whether every FD its task may watch is a zmq socket's: then nobody but our watcher
        #: waits on it, so ``notify_closing`` can end the watch (see :meth:`TrioDriver._watch`).
        self.zmq_fds = zmq_fds
        #: The zmq FD its task watches without a cancel scope, while it does.
        self.waits_on: int | None = None
        self._done = False
        self.cancelled = False
        self.result: Any = None
        self.error: BaseException | None = None
        #: The FDs its task cares about while it is parked.
        self.keys: Sequence[Key] = ()
        self.parked = False
        self.task: Any = None
        #: The trio cancel status of the call waiting for it (set by :meth:`TrioDriver.block`):
        #: its caller's scopes, not the private ones of the wait.
        self.status: Any = None
        #: The cancel scope of its task's FD wait, while that task is a watcher.
        self.scope: trio.CancelScope | None = None

    def done(self) -> bool:
        """Whether it is completed, or its task is cancelled: the reactor then skips it.

        trio delivers a cancellation when the task next runs; an operation run for it
        meanwhile (by a dispatch in another task) would take effect for a cancelled call. On
        asyncio the Future itself is cancelled at once.
        """
        if self._done:
            return True
        status = self.status
        return status is not None and bool(status.effectively_cancelled)

    def set_result(self, result: Any, /) -> None:
        if not self._done:
            self._done = True
            self.result = result
            self._wake()

    def set_exception(self, exception: BaseException, /) -> None:
        if not self._done:
            self._done = True
            self.error = exception
            self._wake()

    def cancel(self) -> bool:
        if self._done:
            return False
        self._done = self.cancelled = True
        self._wake()
        return True

    def _wake(self) -> None:
        if self.scope is not None or self.waits_on is not None:
            self.stop_watching()
        elif self.parked:
            self.driver.unpark(self)

    def stop_watching(self) -> None:
        """End its task's FD wait, if it watches one (it hands the role on as it leaves).

        Either way (cancelling, or ``notify_closing``) unregisters the FD from trio now, before
        anyone may close it.
        """
        if self.scope is not None:
            self.scope.cancel()
        elif self.waits_on is not None:
            self.driver._trio.lowlevel.notify_closing(self.waits_on)


class TrioDriver:
    """Watches FDs and keeps time for every zmq_async.anyio socket and poller in one trio run."""

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_parked",
        "_seq",
        "_timer_scope",
        "_timer_task",
        "_timers",
        "_timers_cancelled",
        "_trio",
        "_watchers",
        "thread",
        "token",
    )

    def __init__(self, trio_module: Any, token: trio.lowlevel.TrioToken) -> None:
        self._trio = trio_module
        self.token = token
        self.thread = _thread.get_ident()
        self._callbacks: dict[Key, list[Callback]] = {}
        self._watchers: dict[Key, TrioCompletion] = {}
        self._parked: dict[Key, dict[TrioCompletion, None]] = {}
        self._timers: list[tuple[float, int, _Timer]] = []
        #: How many entries of ``_timers`` are cancelled.
        self._timers_cancelled = 0
        #: Whether the timer task runs, and the cancel scope of its sleep (None while it runs
        #: timers).
        self._timer_task = False
        self._timer_scope: trio.CancelScope | None = None
        self._seq = itertools.count()

    # -- the Driver protocol ----------------------------------------------------------------

    def watch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        callbacks = self._callbacks.get(key)
        if callbacks is None:
            self._callbacks[key] = [callback]
            self._hand_off(key)  # a task parked on it may now watch it
        else:
            callbacks.append(callback)

    def unwatch(self, fd: int, callback: Callback, writable: bool = False) -> None:
        key = (fd, writable)
        callbacks = self._callbacks.get(key)
        if not callbacks or callback not in callbacks:
            return
        callbacks.remove(callback)
        if not callbacks:
            del self._callbacks[key]
            watcher = self._watchers.pop(key, None)
            if watcher is not None:
                watcher.stop_watching()

    def call_soon(self, callback: Callback) -> None:
        self.token.run_sync_soon(callback)

    def call_soon_threadsafe(self, callback: Callback) -> None:
        """Call ``callback()`` from the run soon; from any thread. RunFinishedError (a
        RuntimeError) if the run is over."""
        self.token.run_sync_soon(callback)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Timer:
        deadline = self._trio.current_time() + delay
        timer = _Timer(self, callback, args)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        if not self._timer_task:
            try:
                self._trio.lowlevel.spawn_system_task(self._run_timer_task, name="zmq_async timers")
            except RuntimeError:
                return timer  # the run is shutting down: no timer will be needed
            self._timer_task = True
        elif self._timer_scope is not None and deadline < self._timer_scope.deadline:
            self._timer_scope.deadline = deadline
        return timer

    def may_unwatch_here(self) -> bool:
        """Yes in the run's own thread, and anywhere once the run is over."""
        return self.thread == _thread.get_ident() or not self.alive()

    # -- liveness ---------------------------------------------------------------------------

    def alive(self) -> bool:
        """Whether the trio run of this driver is still going."""
        try:
            self.token.run_sync_soon(_noop)
        except self._trio.RunFinishedError:
            return False
        return True

    # -- blocking a task ---------------------------------------------------------------------

    async def block(self, completion: TrioCompletion, keys: Sequence[Key]) -> Any:
        """Wait until ``completion`` is done, watching ``keys`` for everyone when it is our turn.

        Returns its result or raises its error. Once the task is cancelled, the reactor
        skips ``completion`` (:meth:`TrioCompletion.done`); if a message was received for it
        before, the message is returned (nothing is lost) and the cancellation is raised by
        the task's next checkpoint, as its cancel scope is still cancelled.
        """
        trio = self._trio
        # trio's private field: the status of the caller's innermost cancel scope (None in
        # another trio layout: then not known).
        completion.status = getattr(trio.lowlevel.current_task(), "_cancel_status", None)
        try:
            while not completion._done:
                key = self._free_key(keys)
                if key is None:
                    await self._park(completion, keys)
                else:
                    await self._watch(completion, key, keys)
        except BaseException as exc:
            if not completion._done:
                completion._done = completion.cancelled = True  # the reactor skips it now
                raise
            if not isinstance(exc, trio.Cancelled) or completion.error is not None:
                raise
            if completion.cancelled:
                raise
        if completion.error is not None:
            raise completion.error
        return completion.result

    async def block_any(self, completion: TrioCompletion, keys: Sequence[Key]) -> Any:
        """:meth:`block` on several FDs (a poll): one helper task per extra FD watches it.

        A task can wait on one FD at a time, so each further FD gets a child task for the
        duration of the call (no task outlives it). Raises what :meth:`block` raises.
        """
        keys = list(dict.fromkeys(keys))
        if len(keys) <= 1:
            return await self.block(completion, keys)
        trio = self._trio
        helpers = [TrioCompletion(self) for _ in keys[1:]]
        error: BaseException | None = None
        result: Any = None
        async with trio.open_nursery() as nursery:
            for helper, key in zip(helpers, keys[1:], strict=True):
                nursery.start_soon(self._help, helper, key)
            try:
                result = await self.block(completion, keys[:1])
            except BaseException as exc:
                error = exc  # raised below, outside the nursery: not wrapped in a group
            finally:
                for helper in helpers:
                    helper.cancel()  # wakes each helper, which returns
        if error is not None:
            raise error
        return result

    async def _help(self, helper: TrioCompletion, key: Key) -> None:
        """Watch ``key`` (when it is our turn) until ``helper`` is cancelled by the poll."""
        with contextlib.suppress(self._trio.Cancelled):
            # A cancellation of the poll reaches its own task, which raises it.
            await self.block(helper, (key,))

    def _free_key(self, keys: Sequence[Key]) -> Key | tuple[()] | None:
        """A key of ``keys`` nobody watches; ``()`` if none is registered at all; else None."""
        registered = False
        for key in keys:
            if key in self._callbacks:
                if key not in self._watchers:
                    return key
                registered = True
        return None if registered else ()

    async def _watch(
        self, completion: TrioCompletion, key: Key | tuple[()], keys: Sequence[Key]
    ) -> None:
        """Wait on one FD (``()``: on nothing but the timers) as its watcher, then serve it.

        A zmq FD is watched bare: only our watcher ever waits on it, so ``notify_closing``
        ends the wait early, where another FD needs a cancel scope (a third of the Python
        calls of a trio REQ/REP round trip went to entering and leaving one).
        """
        trio = self._trio
        lowlevel = trio.lowlevel
        if key:
            self._watchers[key] = completion
        ready = False
        try:
            try:
                if key and completion.zmq_fds:
                    completion.waits_on = key[0]
                    await lowlevel.wait_readable(key[0])
                    ready = True
                else:
                    scope = completion.scope = trio.CancelScope()
                    with scope:
                        if not key:
                            await trio.sleep_forever()
                        elif key[1]:
                            await lowlevel.wait_writable(key[0])
                        else:
                            await lowlevel.wait_readable(key[0])
                        ready = True
            except trio.ClosedResourceError:
                pass  # notify_closing(): stop_watching(), or its socket is closing
            finally:
                completion.scope = None
                completion.waits_on = None
                if key and self._watchers.get(key) is completion:
                    del self._watchers[key]
            if ready and key:
                for callback in tuple(self._callbacks.get(key, ())):
                    callback()
        except BaseException:
            self._hand_off_all(keys)  # cancelled or failed: someone else must watch
            raise
        if completion._done and self._parked:
            self._hand_off_all(keys)  # (no task parked at all: nobody to hand the role to)
        # else: we were woken for nothing (or served someone else): block() watches again.

    async def _park(self, completion: TrioCompletion, keys: Sequence[Key]) -> None:
        lowlevel = self._trio.lowlevel
        completion.keys = keys
        completion.parked = True
        for key in keys:
            self._parked.setdefault(key, {})[completion] = None
        completion.task = lowlevel.current_task()

        def abort(_: object) -> Any:
            self._forget(completion)
            return lowlevel.Abort.SUCCEEDED

        await lowlevel.wait_task_rescheduled(abort)

    def unpark(self, completion: TrioCompletion) -> None:
        """Wake a parked task (its completion is done, or it is to take a watcher's role)."""
        task = self._forget(completion)
        if task is not None:
            self._trio.lowlevel.reschedule(task)

    def _forget(self, completion: TrioCompletion) -> Any:
        """Take a parked task off every parked list; its task, or None if it was not parked."""
        if not completion.parked:
            return None
        completion.parked = False
        for key in completion.keys:
            parked = self._parked.get(key)
            if parked is not None:
                parked.pop(completion, None)
                if not parked:
                    del self._parked[key]
        return completion.task

    def _hand_off(self, key: Key) -> None:
        """If ``key`` is wanted but unwatched, wake one task parked on it to watch it."""
        if key in self._watchers or key not in self._callbacks:
            return
        parked = self._parked.get(key)
        if parked:
            self.unpark(next(iter(parked)))

    def _hand_off_all(self, keys: Sequence[Key]) -> None:
        for key in keys:
            self._hand_off(key)

    # -- timers -----------------------------------------------------------------------------

    def _next_deadline(self) -> float:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
            self._timers_cancelled -= 1
        return timers[0][0] if timers else inf

    def _timer_cancelled(self) -> None:
        """Count a cancelled timer; drop them all once they are most of the heap.

        A timer is cancelled as its waiter is served, mostly long before it is due (a
        RCVTIMEO of a minute, and thousands of waits a second): left to its deadline, each
        would stay a minute in the heap. asyncio's loop does the same.
        """
        self._timers_cancelled += 1
        timers = self._timers
        if self._timers_cancelled > _TIMERS_KEPT and 2 * self._timers_cancelled > len(timers):
            timers[:] = [entry for entry in timers if not entry[2].cancelled]  # in place
            heapq.heapify(timers)
            self._timers_cancelled = 0

    async def _run_timer_task(self) -> None:
        """The timer task: run due timers, sleep until the next deadline; end when none is left."""
        trio = self._trio
        try:
            while True:
                self._run_timers()
                deadline = self._next_deadline()
                if deadline == inf:
                    return
                with trio.CancelScope(deadline=deadline) as scope:
                    self._timer_scope = scope
                    await trio.sleep_forever()
                self._timer_scope = None
        finally:
            self._timer_scope = None
            self._timer_task = False

    def _run_timers(self) -> None:
        timers = self._timers
        now = self._trio.current_time()
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if timer.cancelled:
                self._timers_cancelled -= 1
            else:
                timer.cancelled = True  # (fired: cancelling it now is a no-op)
                timer.callback(*timer.args)


def _noop() -> None:
    pass


#: Cancelled timers the heap may hold before they are dropped in bulk (when also most of it).
_TIMERS_KEPT = 64


#: Drivers by trio token; an entry lives as long as a socket is bound to its driver.
_drivers: WeakValueDictionary[Any, TrioDriver] = WeakValueDictionary()


def trio_driver(trio_module: Any, token: trio.lowlevel.TrioToken) -> TrioDriver:
    """The one driver of the trio run whose token is ``token``."""
    driver = _drivers.get(token)
    if driver is None:
        driver = _drivers[token] = TrioDriver(trio_module, token)
    return driver
