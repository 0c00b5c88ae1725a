"""``Socket``: a zmq.Socket with coroutine methods, on anyio's asyncio and trio backends.

The hot path is here, the rest is in the reactor: an operation is tried at once with NOBLOCK
unless others are queued ahead of it; only ``zmq.Again`` queues a waiter in the socket's
:class:`~zmq_async._reactor.Reactor` and awaits it. The backend is found per call from the
running loop: an asyncio loop (anyio's asyncio backend, any loop with ``add_reader``) gets the
callback-style asyncio driver and asyncio Futures; otherwise trio gets the wait-style
:class:`~zmq_async.anyio._driver.TrioDriver`. The socket caches the loop or trio run it is bound
to, so finding it costs one identity check.

Checkpoints: every call checks for cancellation before it touches the socket (anyio's
``checkpoint_if_cancelled``: a cancelled scope raises there, having consumed nothing), and one
call in :data:`YIELD_EVERY` that would complete at once yields to the loop first, so a task
that always finds a message ready cannot starve the others. A call that waits is a full
checkpoint. A cancelled call has consumed nothing; a call that has consumed a message returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import zmq
from zmq.backend import Socket as _BackendSocket

from zmq_async import _ops, _thread
from zmq_async._reactor import Reactor, Waiter
from zmq_async._socket import ReactorSocket, closed_error, closes_first
from zmq_async._thread import get_ident as _get_ident
from zmq_async.anyio._driver import TrioCompletion, TrioDriver, trio_driver
from zmq_async.asyncio._driver import driver_for

__all__ = ["YIELD_EVERY", "Socket", "current_trio_driver"]

_SocketT = TypeVar("_SocketT", bound="Socket")

#: One call in this many that needs no wait yields to the loop before it runs (see above).
YIELD_EVERY = 64

#: What ``Socket._now`` returns when the call needs an ``await``; ``_Hot.later`` says which.
_LATER: Any = object()
#: ``_Hot.later``: a checkpoint for a cancel scope that may be cancelled, then try.
_CHECK = "check"
#: ``_Hot.later``: yield to the loop (one call in YIELD_EVERY), then try.
_YIELD = "yield"
#: ``_Hot.later``: wait in the queue (behind others, or a send found no room).
_WAIT = "wait"
#: ``_Hot.later``: wait in the queue; a receive just found nothing.
_WAIT_TRIED = "wait tried"

_get_running_loop = asyncio._get_running_loop
_sleep0 = asyncio.sleep
_CancelledError = asyncio.CancelledError
_get: Callable[[Any, int], Any] = _BackendSocket.get
_POLLIN = int(zmq.POLLIN)
_set = _BackendSocket.set
_recv = _ops.recv
_send = _ops.send
_recv_multipart = _ops.recv_multipart
_send_multipart = _ops.send_multipart
_Again = zmq.Again
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_RCVTIMEO = int(zmq.RCVTIMEO)
_SNDTIMEO = int(zmq.SNDTIMEO)
_FATAL = (zmq.ENOTSOCK, zmq.ETERM)

try:
    # The asyncio backend's own check: the public ``anyio.lowlevel.checkpoint_if_cancelled``
    # first asks sniffio which backend runs (a third of the cost, per call).
    from anyio._core._eventloop import get_async_backend

    _checkpoint_if_cancelled = get_async_backend("asyncio").checkpoint_if_cancelled
except Exception:  # pragma: no cover - another anyio layout: the public, slower function
    from anyio.lowlevel import checkpoint_if_cancelled as _checkpoint_if_cancelled


class _Unsure:
    """An anyio task state stand-in whose scope always says "maybe cancelled": checkpoint."""

    __slots__ = ()
    _cancel_called = True
    _shield = False
    _parent_scope = None

    @property
    def cancel_scope(self) -> _Unsure:
        return self


class _Unmanaged:
    """The anyio task state stand-in of a task anyio does not manage: no scope of anyio's."""

    __slots__ = ()
    cancel_scope = None


try:
    # What that check reads, looked up without a coroutine per call: the task's anyio state
    # (its innermost cancel scope, whose private fields the public properties return) and the
    # running task of a loop.
    from anyio._backends._asyncio import CancelScope as _CancelScope
    from anyio._backends._asyncio import _task_states

    _probe = _CancelScope()
    if (_probe._cancel_called, _probe._shield, _probe._parent_scope) != (False, False, None):
        raise AttributeError("another anyio layout")  # pragma: no cover
    _task_state_of: Callable[[Any], Any] = _task_states.get
    _task_of: Callable[[Any], Any] = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
except Exception:  # pragma: no cover - another anyio or asyncio layout: always checkpoint
    _task_state_of = _task_of = lambda _: _Unsure()


def _task_state(hot: _Hot, task: Any) -> Any:
    """The anyio state of ``task``, remembered in ``hot`` (a task keeps one for its life).

    No task (None): the caller runs in a callback of the loop, as a trio guest run's tasks do
    (see :func:`running_asyncio_loop`); "maybe cancelled" sends it to ``Socket._later``,
    which finds out.
    """
    if task is None:
        return _Unsure()
    state = _task_state_of(task)
    if state is None:
        state = _Unmanaged()
    hot.task = task
    hot.state = state
    return state


#: trio, imported on first use from a trio run (never at import: trio is optional).
_trio: Any = None
#: trio's run context: ``.task`` is the running task (AttributeError outside a run).
_trio_context: Any = None


def _import_trio() -> Any:
    global _trio, _trio_context
    if _trio is None:
        import trio
        import trio.lowlevel

        try:
            # What trio.lowlevel.current_task() reads, read without a call per operation.
            from trio._core import _run

            context: Any = _run.GLOBAL_RUN_CONTEXT
        except (ImportError, AttributeError):  # pragma: no cover - another layout: checkpoint
            context = None
        _trio_context = context
        _trio = trio
    return _trio


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop if an asyncio task runs in it, else None.

    None too when a loop runs but no task of it: a trio run in guest mode hosted by that loop
    runs its tasks in the loop's callbacks, and they must wait the trio way.
    """
    loop = _get_running_loop()
    if loop is not None and _task_of(loop) is None:
        return None
    return loop


def current_trio_driver(user: object) -> TrioDriver:
    """The driver of the trio run in this thread.

    Raises RuntimeError (naming ``user``) outside any async run: no asyncio loop, no trio run.
    """
    trio = _trio if _trio is not None else _import_trio()
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        raise RuntimeError(
            f"{user!r} must be used from an async function in an anyio event loop "
            "(asyncio or trio), in the thread that runs it"
        ) from None
    return trio_driver(trio, token)


class _Hot:
    """What every operation of a socket reads, in slots: a zmq socket's own attributes are read
    through pyzmq's ``__getattr__`` hook (measured: four times the instructions of a slot)."""

    __slots__ = ("countdown", "later", "loop", "reactor", "state", "task", "trio_driver")

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        #: The asyncio loop the socket is bound to, or None.
        self.loop: Any = None
        #: The trio run's driver the socket is bound to, or None.
        self.trio_driver: TrioDriver | None = None
        #: Calls left before one yields (see :data:`YIELD_EVERY`).
        self.countdown = YIELD_EVERY
        #: The last asyncio task that called, and its anyio state (see ``_task_state``).
        self.task: Any = _LATER  # (not None: that is no task)
        self.state: Any = None
        #: What ``Socket._later`` must do, set by ``Socket._now`` when it returns ``_LATER``.
        self.later = _WAIT


class Socket(ReactorSocket[Any]):
    """A zmq socket for anyio (asyncio and trio backends); blocking methods are coroutines.

    ``await send(...)``/``await recv(...)`` (and their multipart, ``_into``, json, pyobj,
    string and serialized forms) and ``await poll(...)``. No task group or ``async with`` is
    needed; ``async with`` closes the socket and ``async for`` yields ``recv_multipart()``
    results until it is closed. Cancel any call with anyio's cancel scopes or ``fail_after``.

    Operations pending when the socket is closed (or its context destroyed) raise
    ``zmq.ZMQError`` (ENOTSOCK), as any operation on a closed socket does.
    """

    _repr_cls = "zmq_async.anyio.Socket"
    _reactor: Reactor
    #: The state every operation reads (its assignments also skip pyzmq's slow
    #: ``__setattr__``).
    _hot: _Hot

    def __init__(
        self,
        context: zmq.Context[Any] | zmq.Socket[Any] | None = None,
        socket_type: int = -1,
        _from_socket: zmq.Socket[Any] | int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(context, zmq.Socket):
            context, _from_socket = None, context
        if _from_socket is not None:
            super().__init__(shadow=_from_socket)
        else:
            super().__init__(context, socket_type, **kwargs)  # type: ignore[arg-type]
        self._reactor = self._new_reactor()
        self._hot = _Hot(self._reactor)
        if _from_socket is not None:
            closes_first(_from_socket, self)

    @classmethod
    def from_socket(cls: type[_SocketT], socket: zmq.Socket[Any]) -> _SocketT:
        """Wrap an existing (e.g. blocking) socket; both share one libzmq socket."""
        return cls(_from_socket=socket)

    # -- backend, loop and thread discipline ------------------------------------------------

    @property
    def _loop(self) -> Any:
        """The asyncio loop the socket is bound to, or None."""
        return self._hot.loop

    @property
    def _trio_driver(self) -> TrioDriver | None:
        """The trio run's driver the socket is bound to, or None."""
        return self._hot.trio_driver

    def _bind_asyncio(self, loop: asyncio.AbstractEventLoop) -> None:
        self._check_owner()
        self._reactor.rebind(driver_for(loop))
        hot = self._hot
        hot.loop = loop
        hot.trio_driver = None

    def _trio(self) -> TrioDriver:
        """The driver of the current trio run, binding to it if needed.

        Raises RuntimeError outside any async run (no asyncio loop, no trio run).
        """
        driver = current_trio_driver(self)
        if driver is not self._trio_driver:
            self._check_owner()
            self._reactor.rebind(driver)
            hot = self._hot
            hot.trio_driver = driver
            hot.loop = None
        return driver

    def _check_owner(self) -> None:
        """Raise RuntimeError if the socket is bound to a loop still running in another thread.

        zmq sockets are not thread-safe, and the waiters of a running loop cannot be moved.
        """
        loop = self._loop
        driver = self._trio_driver
        if loop is not None and loop.is_running() and loop is not _get_running_loop():
            owner = repr(loop)
        elif driver is not None and driver.thread != _thread.get_ident() and driver.alive():
            owner = "a trio run"
        else:
            return
        raise RuntimeError(
            f"{self!r} belongs to {owner} running in another thread; "
            "a zmq socket may only be used from the thread of its event loop"
        )

    # -- the one path every send and receive takes ------------------------------------------

    async def _call(
        self,
        sending: bool,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        post: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Run ``op(self, *args)`` now if no one is queued ahead, else wait for it (FIFO).

        ``args`` carry NOBLOCK; ``flags`` are the caller's: with NOBLOCK it is now or never
        (``zmq.Again``). Checks for cancellation first (see the module docstring). The public
        methods inline this: each ``await`` of a coroutine costs a coroutine.
        """
        result = self._now(sending, op, args, flags, post)
        if result is _LATER:
            return await self._later(sending, op, args, flags, post)
        return result

    def _now(
        self,
        sending: bool,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        post: Callable[[Any], Any] | None = None,
        checked: bool = False,
    ) -> Any:
        """:meth:`_call` without an ``await``: its result if it needs none, else ``_LATER``.

        ``_LATER`` leaves in ``_hot.later`` what :meth:`_later` must do: a checkpoint first
        (``_CHECK``, ``_YIELD``), or wait (``_WAIT``; ``_WAIT_TRIED`` once a receive found
        nothing). ``checked``: that checkpoint was just made (and the socket bound), so only
        try. Raises what ``op`` raises (``zmq.Again`` only with NOBLOCK in ``flags``), and
        RuntimeError outside any async run.
        """
        hot = self._hot
        reactor = hot.reactor
        if not checked:
            bound = hot.loop
            bound_driver: Any = reactor.driver
            if (
                bound is not None
                and bound_driver is not None
                and bound_driver.home._thread_id == _get_ident()
            ):
                loop = bound  # the socket's asyncio loop, running here (see thread_marker)
            else:
                loop = _get_running_loop()
                if loop is not None and loop is not bound:
                    if _task_of(loop) is None:
                        loop = None  # a trio guest run's task (see running_asyncio_loop)
                    else:
                        self._bind_asyncio(loop)
            if loop is not None:
                # anyio's checkpoint_if_cancelled, inline: is a scope around the task cancelled
                # (innermost outwards, up to a shield)? If so, checkpoint (it raises there).
                task = _task_of(loop)
                state = hot.state if task is hot.task else _task_state(hot, task)
                scope = state.cancel_scope
                while scope is not None:
                    if scope._cancel_called:
                        hot.later = _CHECK
                        return _LATER
                    if scope._shield:
                        break
                    scope = scope._parent_scope
            else:
                driver = hot.trio_driver
                if driver is None or _trio is None:
                    driver = self._trio()
                try:
                    # trio's checkpoint_if_cancelled and current_trio_token, read inline: no
                    # coroutine and no calls per operation.
                    task = _trio_context.task
                    runner = task._runner
                    cancelled = task._cancel_status.effectively_cancelled or (
                        runner.ki_pending and task is runner.main_task
                    )
                    token = runner.trio_token
                except AttributeError:  # pragma: no cover - another trio layout: its public calls
                    cancelled = True
                    token = _trio.lowlevel.current_trio_token()
                if driver.token is not token:
                    self._trio()
                if cancelled:
                    hot.later = _CHECK
                    return _LATER
            hot.countdown -= 1
            if not hot.countdown:
                hot.countdown = YIELD_EVERY
                hot.later = _YIELD
                return _LATER
        queue = reactor.sendq if sending else reactor.recvq
        # (A NOBLOCK receive too waits its turn behind frames given back: they came first.)
        if queue and (not flags & _NOBLOCK or reactor.given is not None) and reactor.busy(queue):
            hot.later = _WAIT  # FIFO: wait behind the others
            return _LATER
        if not sending and reactor.recv_dry and not flags & _NOBLOCK and not reactor.recv_ready():
            # The last attempt found nothing: EVENTS says so for a third of the cost.
            hot.later = _WAIT_TRIED
            return _LATER
        try:
            result = op(self, *args)
        except _Again:
            if flags & _NOBLOCK:
                raise
            if sending:
                hot.later = _WAIT
            else:
                reactor.recv_dry = True
                hot.later = _WAIT_TRIED
            return _LATER
        except Exception:
            reactor.after_op()
            raise
        if reactor.recvq or reactor.sendq or reactor.pollq:
            reactor.kick()  # rule 1: the operation may have consumed their edge
        return result if post is None else post(result)

    async def _later(
        self,
        sending: bool,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        post: Callable[[Any], Any] | None = None,
    ) -> Any:
        """:meth:`_call` after :meth:`_now` returned ``_LATER``: checkpoint, try again, wait."""
        hot = self._hot
        why = hot.later
        driver = hot.trio_driver  # None on asyncio (binding to one backend unbinds the other)
        if why is _CHECK or why is _YIELD:
            if driver is None and _task_of(hot.loop) is None:
                # A trio guest run's task, on the asyncio loop that hosts it (see
                # running_asyncio_loop): bind to trio (RuntimeError if not in one).
                driver = self._trio()
            if driver is None:
                await (_checkpoint_if_cancelled() if why is _CHECK else _sleep0(0))
            elif why is _CHECK:
                await _trio.lowlevel.checkpoint_if_cancelled()
            else:
                await _trio.lowlevel.checkpoint()
            result = self._now(sending, op, args, flags, post, checked=True)
            if result is not _LATER:
                return result
            why = hot.later
        reactor = hot.reactor
        tried = why is _WAIT_TRIED
        waiter: Waiter
        if driver is None:
            future = hot.loop.create_future()
            waiter = Waiter(future, op, args, post)
            if sending:
                reactor.wait_send(waiter)
            else:
                reactor.wait_recv(waiter, tried)
            try:
                return await future
            except _CancelledError:
                if _kept(reactor, waiter, future):
                    return future.result()
                raise
        completion = TrioCompletion(driver, zmq_fds=True)
        waiter = Waiter(completion, op, args, post)
        if sending:
            reactor.wait_send(waiter)
        else:
            reactor.wait_recv(waiter, tried)
        try:
            return await driver.block(completion, ((reactor.fd, False),))
        finally:
            if waiter.timer is not None:
                reactor.discard(waiter)

    # -- receiving --------------------------------------------------------------------------

    async def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:  # type: ignore[override]
        """Receive one frame: bytes (``copy=False``: a ``zmq.Frame``)."""
        args = (flags | _NOBLOCK, copy, track)
        result = self._now(False, _recv, args, flags)  # _call, inlined (one coroutine less)
        if result is _LATER:
            return await self._later(False, _recv, args, flags)
        return result

    async def recv_multipart(  # type: ignore[override]
        self, flags: int = 0, copy: bool = True, track: bool = False
    ) -> list[Any]:
        """Receive a whole multipart message: a list of frames."""
        args = (flags | _NOBLOCK, copy, track)
        result = self._now(False, _recv_multipart, args, flags)  # _call, inlined
        if result is _LATER:
            return await self._later(False, _recv_multipart, args, flags)  # type: ignore[no-any-return]
        return result  # type: ignore[no-any-return]

    async def recv_into(self, buf: Any, /, *, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
        """Receive one frame into ``buf``; returns the frame's size."""
        return await self._call(  # type: ignore[no-any-return]
            False, _ops.recv_into, (buf, nbytes, flags | _NOBLOCK), flags
        )

    async def recv_string(self, flags: int = 0, encoding: str = "utf-8") -> str:  # type: ignore[override]
        """Receive one frame decoded as ``encoding`` text."""
        return await self._call(  # type: ignore[no-any-return]
            False, _recv, (flags | _NOBLOCK, True, False), flags, _ops.decoder(encoding)
        )

    recv_unicode = recv_string  # type: ignore[assignment]

    async def recv_json(self, flags: int = 0, **kwargs: Any) -> Any:  # type: ignore[override]
        """Receive one frame decoded as JSON (``kwargs`` go to ``json.loads``)."""
        return await self._call(
            False, _recv, (flags | _NOBLOCK, True, False), flags, _ops.json_loader(kwargs)
        )

    async def recv_pyobj(self, flags: int = 0) -> Any:
        """Receive one frame decoded with pickle."""
        return await self._call(False, _recv, (flags | _NOBLOCK, True, False), flags, _ops.unpickle)

    async def recv_serialized(  # type: ignore[override]
        self, deserialize: Callable[[list[Any]], Any], flags: int = 0, copy: bool = True
    ) -> Any:
        """Receive a multipart message decoded by ``deserialize(frames)``."""
        post = _ops.deserializer(deserialize)
        return await self._call(
            False, _ops.recv_multipart, (flags | _NOBLOCK, copy, False), flags, post
        )

    # -- sending (send_json, send_pyobj, send_string, send_serialized come from zmq.Socket,
    #    which returns what these two return: an awaitable) -----------------------------------

    async def send(  # type: ignore[override]
        self,
        data: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        routing_id: int | None = None,
        group: str | None = None,
    ) -> Any:
        """Send one frame; returns None (a MessageTracker with ``copy=False, track=True``)."""
        if routing_id is not None or group is not None:
            options = {"routing_id": routing_id, "group": group}
            args: tuple[Any, ...] = (data, flags | _NOBLOCK, copy, track, options)
            return await self._call(True, _ops.send_with_options, args, flags)
        args = (data, flags | _NOBLOCK, copy, track)
        result = self._now(True, _send, args, flags)  # _call, inlined
        if result is _LATER:
            return await self._later(True, _send, args, flags)
        return result

    async def send_multipart(  # type: ignore[override]
        self, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Any:
        """Send a whole multipart message; a bad frame fails it before any frame is sent.

        Raises TypeError for a frame without the buffer interface, IndexError for no frames.
        """
        parts: Sequence[Any] = _ops.frames(msg_parts)
        args = (parts, flags | _NOBLOCK, copy, track)
        result = self._now(True, _send_multipart, args, flags)  # _call, inlined
        if result is _LATER:
            return await self._later(True, _send_multipart, args, flags)
        return result

    # -- polling ----------------------------------------------------------------------------

    async def poll(self, timeout: int | None = None, flags: int = zmq.POLLIN) -> int:  # type: ignore[override]
        """The events in ``flags`` that are ready; 0 after ``timeout`` ms (None: no limit).

        Raises ZMQError (ENOTSUP) if the socket is closed.
        """
        if self.closed:
            raise zmq.ZMQError(zmq.ENOTSUP)
        seconds = _ops.poll_timeout(timeout)
        flags = _ops.poll_flags(flags)
        loop = running_asyncio_loop()
        driver: TrioDriver | None = None
        hot = self._hot
        # One poll in YIELD_EVERY yields, as the other calls do: a loop of polls that are
        # ready at once must still let other tasks run and its own deadline pass.
        hot.countdown -= 1
        yields = not hot.countdown
        if yields:
            hot.countdown = YIELD_EVERY
        if loop is not None:
            if loop is not self._loop:
                self._bind_asyncio(loop)
            await (_sleep0(0) if yields else _checkpoint_if_cancelled())
        else:
            driver = self._trio()
            lowlevel = _trio.lowlevel
            await (lowlevel.checkpoint() if yields else lowlevel.checkpoint_if_cancelled())
        reactor = self._reactor
        ready: int = _get(self, _EVENTS) & flags
        if reactor.given is not None:
            ready |= _POLLIN & flags  # a message given back waits (Reactor.give_back)
        if ready or timeout == 0:
            reactor.after_op()
            return ready
        if driver is None:
            future = loop.create_future()  # type: ignore[union-attr]
            waiter = Waiter(future, None, mask=flags)
            reactor.wait_poll(waiter, seconds)
            try:
                return await future  # type: ignore[no-any-return]
            except _CancelledError:
                if _kept(reactor, waiter, future):
                    return future.result()  # type: ignore[no-any-return]
                raise
        completion = TrioCompletion(driver, zmq_fds=True)
        waiter = Waiter(completion, None, mask=flags)
        reactor.wait_poll(waiter, seconds)
        try:
            return await driver.block(completion, ((reactor.fd, False),))  # type: ignore[no-any-return]
        finally:
            if waiter.timer is not None:
                reactor.discard(waiter)

    # -- closing ----------------------------------------------------------------------------

    def close(self, linger: int | None = None) -> None:
        """Fail pending operations with ZMQError(ENOTSOCK), stop watching the FD, close.

        Called from another thread while the socket's loop or trio run goes on, the close is
        handed to that loop and happens there shortly: only its thread may stop watching the
        FD, which must happen before the FD is closed.
        """
        reactor: Reactor | None = self.__dict__.get("_reactor")
        # Its reactor even if the libzmq socket was closed through another handle (another
        # shadow of it): its waiters must not stay behind.
        if reactor is not None and not reactor.closed:
            if self._handed_to_owner(linger):
                return
            open_before = not self.closed
            # The error only if someone still waits: building one imports, which fails when
            # the interpreter shuts down (a socket left open is closed by its __del__ then).
            queues = (reactor.recvq, reactor.sendq, reactor.pollq)
            waiting = any(not w.completion.done() for queue in queues for w in queue)
            reactor.close(closed_error() if waiting else None)
            driver = self._trio_driver
            # (Closed before, its FD number may be another's now: our own watchers were
            # told by their completions, above.)
            if open_before and driver is not None and driver.thread == _thread.get_ident():
                # A task still waiting on the FD (cancelled, not yet run) must let go. If the
                # run is over (RuntimeError), nobody waits.
                with contextlib.suppress(RuntimeError):
                    _trio.lowlevel.notify_closing(reactor.fd)
        super().close(linger)

    def _handed_to_owner(self, linger: int | None) -> bool:
        """Schedule the close in the socket's loop if it runs in another thread."""
        loop = self._loop
        driver = self._trio_driver
        try:
            if loop is not None and loop.is_running() and loop is not _get_running_loop():
                loop.call_soon_threadsafe(self.close, linger)
                return True
            if driver is not None and driver.thread != _thread.get_ident():
                driver.token.run_sync_soon(self.close, linger)
                return True
        except RuntimeError:
            pass  # that loop closed, or that run finished, meanwhile: no one watches the FD
        return False

    # -- async iteration and async with --------------------------------------------------------

    def __aiter__(self) -> Socket:
        return self

    async def __anext__(self) -> list[Any]:
        """The next multipart message; iteration ends when the socket is closed."""
        if self.closed:
            raise StopAsyncIteration
        try:
            return await self.recv_multipart()
        except zmq.ZMQError as exc:
            if exc.errno in _FATAL:
                raise StopAsyncIteration from None
            raise

    async def __aenter__(self: _SocketT) -> _SocketT:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


def _kept(reactor: Reactor, waiter: Waiter, future: asyncio.Future[Any]) -> bool:
    """Whether a queued waiter's Future, whose await was cancelled, got its result first.

    Then the caller returns that result rather than lose a message (anyio delivers the
    cancellation at the next checkpoint). Stops the waiter's timer either way.
    """
    if waiter.timer is not None:
        reactor.discard(waiter)
    return future.done() and not future.cancelled() and future.exception() is None
