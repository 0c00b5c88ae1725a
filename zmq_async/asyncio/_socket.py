"""``Socket``: a zmq.Socket whose blocking methods return asyncio Futures.

The hot path is here, the rest is in the reactor: an operation is tried at once with
NOBLOCK unless others are queued ahead of it, and returns an already-completed Future;
only ``zmq.Again`` queues a waiter in the socket's :class:`~zmq_async._reactor.Reactor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from itertools import chain
from typing import Any, TypeVar

import zmq
from zmq.backend import Socket as _BackendSocket

from zmq_async import _ops
from zmq_async._reactor import Reactor, Waiter, _cancel_timer
from zmq_async._socket import InheritedSocket, ReactorSocket, closes_first
from zmq_async._thread import get_ident as _get_ident
from zmq_async.asyncio._driver import current_loop, driver_for

__all__ = ["Socket", "closes_at_term", "finish_handed_closes", "finish_when_stopped"]

_SocketT = TypeVar("_SocketT", bound="Socket")
Future = asyncio.Future

_get_running_loop = asyncio._get_running_loop
_asyncgen_hooks = sys.get_asyncgen_hooks
#: ``Socket._loop`` before first use: not None, which means "no running loop".
_UNBOUND: Any = object()
_get: Callable[[Any, int], Any] = _BackendSocket.get
_set = _BackendSocket.set
_recv = _ops.recv
_recv_multipart = _ops.recv_multipart
_send = _ops.send
_Again = zmq.Again
_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_RCVTIMEO = int(zmq.RCVTIMEO)
_RCVMORE = int(zmq.RCVMORE)
_SNDTIMEO = int(zmq.SNDTIMEO)
#: Errors after which the socket can never proceed: closed, or its context terminated.
_FATAL = (zmq.ENOTSOCK, zmq.ETERM)


class Socket(ReactorSocket["Future[Any]"]):
    """A socket for asyncio: a drop-in for ``zmq.asyncio.Socket``.

    ``send``/``recv`` (and their multipart, ``_into``, json, pyobj, string and serialized
    forms) and ``poll`` return ``asyncio.Future`` objects. Beyond the peer: ``async for``
    yields ``recv_multipart()`` results, and ``async with`` closes the socket.

    A socket belongs to the loop that first used it (or uses it after that loop stopped).
    Called from another thread while that loop runs, an operation is handed to it
    (``call_soon_threadsafe``), in the caller's order, and the caller gets a Future of its
    own loop; only the owning loop's thread touches the socket.
    """

    _repr_cls = "zmq_async.asyncio.Socket"
    _reactor: Reactor
    _loop: Any = _UNBOUND
    #: ``(linger,)`` of a close handed to the socket's loop by another thread, until done.
    _handed_close: tuple[int | None] | None = None

    def __init__(
        self,
        context: zmq.Context[Any] | zmq.Socket[Any] | None = None,
        socket_type: int = -1,
        io_loop: Any = None,
        _from_socket: zmq.Socket[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(context, zmq.Socket):
            context, _from_socket = None, context
        if _from_socket is not None:
            super().__init__(shadow=_from_socket)  # type: ignore[misc]
        else:
            super().__init__(context, socket_type, **kwargs)  # type: ignore[misc, arg-type]
        if io_loop is not None:
            warnings.warn(
                f"{type(self).__name__}(io_loop) is ignored: the running loop is always used.",
                DeprecationWarning,
                stacklevel=2,
            )
        self._reactor = self._new_reactor()
        if _from_socket is None:
            _from_socket = kwargs.get("shadow")
        if _from_socket is not None:
            closes_first(_from_socket, self)

    @classmethod
    def from_socket(cls: type[_SocketT], socket: zmq.Socket[Any], io_loop: Any = None) -> _SocketT:
        """Wrap an existing (e.g. blocking) socket; both share one libzmq socket."""
        return cls(_from_socket=socket, io_loop=io_loop)

    # -- loop and thread discipline ---------------------------------------------------------

    def _foreign(self) -> bool:
        """Whether the socket's loop runs, in another thread (the caller's is not it)."""
        owner = self._loop
        return owner is not _UNBOUND and owner.is_running()

    def _hand_off(
        self,
        loop: asyncio.AbstractEventLoop | None,
        method: Callable[..., Any],
        *args: Any,
        post: Callable[[Any], Any] | None = None,
        receives: Callable[..., Any] | None = None,
    ) -> Future[Any]:
        """Run ``method(*args)`` on the socket's loop, after the calls handed off before.

        For a caller outside that loop while it runs in another thread. Returns a Future of
        the caller's loop (outside a loop, as the peer: the thread's loop, with its warning)
        that takes the outcome of ``method``'s Future; cancelling it before the operation is
        served cancels the operation, which then consumes nothing. If the socket's loop
        stops before serving it, the operation moves to the caller's loop, as the socket
        does (see :class:`_HandOff`). ``post`` turns the operation's result into the
        caller's (in the caller's thread); ``receives``: the receive operation ``method``
        runs, whose frames go back to the socket if its caller has gone meanwhile.
        """
        if loop is None:
            loop = current_loop()
        hand_off = _HandOff(loop, self._loop, method, args, post, receives)
        try:
            hand_off.owner.call_soon_threadsafe(hand_off.run)
        except RuntimeError:  # the owner closed meanwhile: the socket may move to this loop
            hand_off.take_over()  # (the socket moves to this loop)
            return hand_off.outer
        hand_off.watch()
        return hand_off.outer

    def _hand_off_recv(
        self,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        post: Callable[[Any], Any] | None = None,
    ) -> Future[Any]:
        """Hand a receive to the socket's loop (see :meth:`_hand_off`), decoding in the caller's.

        A frame is received with whether more follow (``recv_more``): if its caller has gone
        when it is taken, it goes back to the socket in its place (see ``_HandOff.gone``).
        """
        if op is _recv:
            op = _ops.recv_more
            post = _first if post is None else partial(_first_then, post)
        elif op is _ops.recv_into:
            # Received as a frame, copied into the buffer here: a frame can go back.
            buffer, nbytes, flags_ = args
            try:
                _ops.into_view(buffer, nbytes)  # a bad buffer fails before anything is received
            except Exception as exc:
                return self._done(exc)
            op, args, post = _ops.recv_more, (flags_, False, False), partial(_into, buffer, nbytes)
        return self._hand_off(
            _get_running_loop(), self._submit, False, op, args, flags, None, post=post, receives=op
        )

    def _bind(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        """Attach to ``loop`` (None: the thread's loop), moving off a loop that has stopped.

        Raises RuntimeError if the socket's loop is running in another thread (callers hand
        their operation to it instead): zmq sockets are not thread-safe, and its waiters
        cannot be moved while that loop serves them.
        """
        owner = self._loop
        if owner is not _UNBOUND and owner.is_running():
            raise RuntimeError(
                f"{self!r} belongs to {owner!r}, which is running in another thread; "
                "a zmq socket may only be used from the thread of its event loop"
            )
        if loop is None:
            loop = current_loop()
        if loop is not owner:
            self._reactor.rebind(driver_for(loop))
            self._loop = loop
        return loop

    def _enter(self) -> Any:
        """The calling thread's running loop (outside one, the thread's), the socket bound to
        it; None when the socket's loop runs in another thread: hand the operation to it.

        ``send`` and ``recv`` make the fast half of this check inline (see
        ``AsyncioDriver.thread`` and ``run``) and call this only when it fails; others
        (``poll``) call this first.
        """
        driver: Any = self._reactor.driver
        if driver is not None and (
            driver.thread._thread_id == (ident := _get_ident())
            or (driver.run is _asyncgen_hooks()[0] and driver.run_thread == ident)
        ):
            return driver.loop
        loop = running = _get_running_loop()
        if loop is not self._loop:
            if self._foreign():
                return None
            loop = self._bind(loop)
        driver = self._reactor.driver
        if running is not None and driver is not None:
            driver.learn_run()  # the fast check knows this run from now on
        return loop

    def _done(self, error: BaseException) -> Future[Any]:
        """A Future already failed with ``error`` (bad arguments found before any I/O)."""
        loop = _get_running_loop()
        if loop is not self._loop:
            # From another thread while the socket's loop runs: nothing to hand over to it.
            loop = (loop or current_loop()) if self._foreign() else self._bind(loop)
        future = loop.create_future()
        future.set_exception(error)
        return future

    # -- the one path every send and receive takes ------------------------------------------

    def _submit(
        self,
        sending: bool,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        post: Callable[[Any], Any] | None = None,
    ) -> Future[Any]:
        """Run ``op(self, *args)`` now if no one is queued ahead, else queue it (FIFO).

        ``args`` carry NOBLOCK; ``flags`` are the caller's: with DONTWAIT a receive is "now or
        never", even with others queued, and so is a send with none queued ahead; a send
        queued behind others waits its turn, as with zmq.asyncio (jumping the queue would
        reorder messages, or split a multipart one). ``recv`` and ``send`` inline this.
        """
        reactor = self._reactor
        driver: Any = reactor.driver
        if driver is not None and (
            driver.thread._thread_id == (ident := _get_ident())
            or (driver.run is _asyncgen_hooks()[0] and driver.run_thread == ident)
        ):
            loop = driver.loop  # the socket's loop, running here (see AsyncioDriver.thread)
        elif (loop := self._enter()) is None:
            if not sending:
                return self._hand_off_recv(op, args, flags, post)
            loop = _get_running_loop()
            return self._hand_off(loop, self._submit, True, op, args, flags, post)
        queue = reactor.sendq if sending else reactor.recvq
        # (A NOBLOCK receive too waits its turn behind frames given back: they came first.)
        if (
            queue
            and (sending or not flags & _NOBLOCK or reactor.given is not None)
            and reactor.busy(queue)
        ):
            return self._queue(sending, loop, op, args, post)
        if not sending and reactor.recv_dry and not flags & _NOBLOCK and not reactor.recv_ready():
            return self._queue(False, loop, op, args, post, tried=True)
        future: Future[Any] = Future(loop=loop)
        try:
            result = op(self, *args)
        except _Again as exc:
            if not flags & _NOBLOCK:
                if not sending:
                    reactor.recv_dry = True
                return self._queue(sending, loop, op, args, post, not sending, future)
            future.set_exception(exc)
        except zmq.ZMQError as exc:
            if exc.errno in _FATAL and not sending:
                raise  # closed, or its context terminated: see recv
            future.set_exception(exc)
        except Exception as exc:
            future.set_exception(exc)
        else:
            if post is None:
                future.set_result(result)
            else:
                try:
                    future.set_result(post(result))
                except Exception as exc:
                    future.set_exception(exc)
        if reactor.recvq or reactor.sendq or reactor.pollq:
            reactor.kick()  # rule 1: the operation may have consumed their edge
        return future

    def _queue(
        self,
        sending: bool,
        loop: asyncio.AbstractEventLoop,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        post: Callable[[Any], Any] | None = None,
        tried: bool = False,
        future: Future[Any] | None = None,
    ) -> Future[Any]:
        """The slow path: queue a waiter for the reactor to serve when EVENTS allows, with
        ``future`` (if the caller made it) or a Future of ``loop`` made here.

        ``tried``: a receive that has just found no message (see ``Reactor.wait_recv``).
        """
        reactor = self._reactor
        if sending:
            if future is None:
                future = Future(loop=loop)
            waiter = Waiter(future, op, args, post)
            reactor.wait_send(waiter)
        else:
            if op is _recv or op is _recv_multipart or op is _ops.recv_into:
                # A task cancelled as this completes must not throw its message away.
                kept = _KeptFuture(loop=loop)
                kept.reactor, kept.post, kept.raw = reactor, post, None
                kept.frame = op is not _recv_multipart
                if op is _ops.recv_into:
                    try:  # a bad buffer fails now, not once a message is taken for it
                        _ops.into_view(*args[:2])
                    except Exception as exc:
                        kept.set_exception(exc)
                        return kept
                    kept.into = args[:2]  # what it received is in the buffer: (buffer, nbytes)
                if post is not None:
                    post = kept  # keeps what the decoder decodes
                future = kept
            elif future is None:
                future = Future(loop=loop)
            waiter = Waiter(future, op, args, post)
            reactor.wait_recv(waiter, tried)
        _disarm_on_cancel(waiter, future)
        return future

    # -- receiving --------------------------------------------------------------------------

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Future[Any]:  # type: ignore[override]
        """Receive one frame: a Future of bytes (``copy=False``: of a ``zmq.Frame``)."""
        # _submit, inlined for the hottest path (a quarter faster, measured).
        reactor = self._reactor
        driver: Any = reactor.driver
        if driver is not None and (
            driver.thread._thread_id == (ident := _get_ident())
            or (driver.run is _asyncgen_hooks()[0] and driver.run_thread == ident)
        ):
            loop = driver.loop  # the socket's loop, running here (see AsyncioDriver.thread)
        elif (loop := self._enter()) is None:
            return self._hand_off_recv(_recv, (flags | _NOBLOCK, copy, track), flags)
        noblock = flags | _NOBLOCK  # bad flags raise here, at the call, as the peer's do
        if reactor.recvq and (not flags & _NOBLOCK or reactor.given is not None):
            return self._submit(False, _recv, (noblock, copy, track), flags)
        if reactor.recv_dry and not flags & _NOBLOCK and not reactor.recv_ready():
            # The last attempt found nothing: EVENTS says so for a third of the cost.
            return self._queue(False, loop, _recv, (noblock, copy, track), None, True)
        future: Future[Any] = Future(loop=loop)
        try:
            future.set_result(_recv(self, noblock, copy, track))
        except _Again as exc:
            if not flags & _NOBLOCK:
                reactor.recv_dry = True
                return self._queue(False, loop, _recv, (noblock, copy, track), None, True)
            future.set_exception(exc)
        except zmq.ZMQError as exc:
            if exc.errno in _FATAL:
                # Closed, or its context terminated: raised at the call, as the peer's
                # receives do (its sends set it on the Future, as ours do).
                raise
            future.set_exception(exc)
        except Exception as exc:
            future.set_exception(exc)
        if reactor.recvq or reactor.sendq or reactor.pollq:
            reactor.kick()
        return future

    def recv_multipart(  # type: ignore[override]
        self, flags: int = 0, copy: bool = True, track: bool = False
    ) -> Future[list[Any]]:
        """Receive a whole multipart message: a Future of a list of frames."""
        return self._submit(False, _ops.recv_multipart, (flags | _NOBLOCK, copy, track), flags)

    def recv_into(self, buf: Any, /, *, nbytes: int = 0, flags: int = 0) -> Future[int]:  # type: ignore[override]
        """Receive one frame into ``buf``: a Future of the frame's size."""
        return self._submit(False, _ops.recv_into, (buf, nbytes, flags | _NOBLOCK), flags)

    def recv_string(self, flags: int = 0, encoding: str = "utf-8") -> Future[str]:  # type: ignore[override]
        """Receive one frame decoded as ``encoding`` text."""
        return self._submit(
            False, _recv, (flags | _NOBLOCK, True, False), flags, _ops.decoder(encoding)
        )

    recv_unicode = recv_string  # type: ignore[assignment]

    def recv_json(self, flags: int = 0, **kwargs: Any) -> Future[Any]:  # type: ignore[override]
        """Receive one frame decoded as JSON (``kwargs`` go to ``json.loads``)."""
        return self._submit(
            False, _recv, (flags | _NOBLOCK, True, False), flags, _ops.json_loader(kwargs)
        )

    def recv_pyobj(self, flags: int = 0) -> Future[Any]:
        """Receive one frame decoded with pickle."""
        return self._submit(False, _recv, (flags | _NOBLOCK, True, False), flags, _ops.unpickle)

    def recv_serialized(  # type: ignore[override]
        self, deserialize: Callable[[list[Any]], Any], flags: int = 0, copy: bool = True
    ) -> Future[Any]:
        """Receive a multipart message decoded by ``deserialize(frames)``."""
        try:
            post = _ops.deserializer(deserialize)
        except TypeError as exc:
            return self._done(exc)  # on the Future, as the peer's
        args = (flags | _NOBLOCK, copy, False)
        return self._submit(False, _ops.recv_multipart, args, flags, post)

    # -- sending (send_json, send_pyobj, send_string, send_serialized come from zmq.Socket,
    #    which calls these two) ------------------------------------------------------------

    def send(  # type: ignore[override]
        self,
        data: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        routing_id: int | None = None,
        group: str | None = None,
    ) -> Future[Any]:
        """Send one frame: a Future of None (or a MessageTracker with ``copy=False``)."""
        if routing_id is not None or group is not None:
            options = {"routing_id": routing_id, "group": group}
            args: tuple[Any, ...] = (data, flags | _NOBLOCK, copy, track, options)
            return self._submit(True, _ops.send_with_options, args, flags)
        # _submit, inlined for the hottest path (a quarter faster, measured).
        reactor = self._reactor
        driver: Any = reactor.driver
        if driver is not None and (
            driver.thread._thread_id == (ident := _get_ident())
            or (driver.run is _asyncgen_hooks()[0] and driver.run_thread == ident)
        ):
            loop = driver.loop  # the socket's loop, running here (see AsyncioDriver.thread)
        elif (loop := self._enter()) is None:
            return self._hand_off(_get_running_loop(), self.send, data, flags, copy, track)
        noblock = flags | _NOBLOCK  # bad flags raise here, at the call, as the peer's do
        if reactor.sendq:  # _submit keeps the order (even with DONTWAIT)
            return self._submit(True, _send, (data, noblock, copy, track), flags)
        future: Future[Any] = Future(loop=loop)
        try:
            future.set_result(_send(self, data, noblock, copy, track))
        except _Again as exc:
            if not flags & _NOBLOCK:
                return self._queue(True, loop, _send, (data, noblock, copy, track), future=future)
            future.set_exception(exc)
        except Exception as exc:
            future.set_exception(exc)
        if reactor.recvq or reactor.sendq or reactor.pollq:
            reactor.kick()
        return future

    def send_multipart(  # type: ignore[override]
        self, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Future[Any]:
        """Send a whole multipart message; a bad frame fails it before any frame is sent."""
        try:
            parts = _ops.frames(msg_parts)
        except (TypeError, IndexError) as exc:
            return self._done(exc)
        return self._submit(
            True, _ops.send_multipart, (parts, flags | _NOBLOCK, copy, track), flags
        )

    # -- polling ----------------------------------------------------------------------------

    def poll(self, timeout: int | None = None, flags: int = zmq.POLLIN) -> Future[int]:  # type: ignore[override]
        """A Future of the events in ``flags`` that are ready; 0 after ``timeout`` ms.

        Raises ZMQError (ENOTSUP, as the peer) if the socket is closed.
        """
        if self.closed:
            raise zmq.ZMQError(zmq.ENOTSUP)
        seconds = _ops.poll_timeout(timeout)
        flags = _ops.poll_flags(flags)
        loop = self._enter()
        if loop is None:
            return self._hand_off(_get_running_loop(), self.poll, timeout, flags)
        future: Future[int] = Future(loop=loop)
        reactor = self._reactor
        try:
            ready = _get(self, _EVENTS) & flags
            if reactor.given is not None:
                ready |= _POLLIN & flags  # a message given back waits (Reactor.give_back)
        except zmq.ZMQError as exc:
            future.set_exception(exc)
            return future
        if ready or timeout == 0:
            future.set_result(ready)
            reactor.after_op()
            return future
        waiter = Waiter(future, None, mask=flags)
        reactor.wait_poll(waiter, seconds)
        _disarm_on_cancel(waiter, future)
        return future

    def get(self, key: int) -> Any:  # zmq.asyncio's parameter name
        """Get the value of a socket option, as ``zmq.Socket.get`` (``key``: zmq.asyncio's name)."""
        return ReactorSocket.get(self, key)

    # -- introspection, as zmq.asyncio exposes it ---------------------------------------------

    @property
    def _recv_futures(self) -> list[Future[Any]]:
        """The pending receive-side futures (receives, and polls for POLLIN), oldest first."""
        return self._pending(self._reactor.recvq, _POLLIN)

    @property
    def _send_futures(self) -> list[Future[Any]]:
        """The pending send-side futures (sends, and polls for POLLOUT), oldest first."""
        return self._pending(self._reactor.sendq, _POLLOUT)

    def _pending(self, queue: Iterable[Waiter], poll_mask: int) -> list[Any]:
        reactor = self._reactor
        polls = (w for w in reactor.pollq if w.mask & poll_mask)
        return [
            w.completion
            for w in chain(queue, polls)
            if not w.completion.done() and w.completion is not reactor.given
        ]

    # -- closing ----------------------------------------------------------------------------

    def _stop_dropped(self, reactor: Reactor) -> None:
        # On its loop, the one thread where unwatching is safe.
        driver: Any = reactor.driver
        if driver is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed: nothing to stop
                driver.loop.call_soon_threadsafe(_stop_if_idle, reactor)

    def close(self, linger: int | None = None) -> None:
        """Cancel pending operations, stop watching the FD, then close the socket.

        Called from another thread while the socket's loop runs, the close is handed to that
        loop and happens there shortly: the FD must be unregistered before it is closed, and
        only the loop's thread may do that (libuv aborts on a watched FD closed under it).
        """
        if not self.closed and "_reactor" in self.__dict__:
            loop = self._loop
            if loop is not _UNBOUND and loop.is_running() and loop is not _get_running_loop():
                try:
                    loop.call_soon_threadsafe(self.close, linger)
                except RuntimeError:
                    pass  # the loop closed meanwhile: no one watches the FD any more
                else:
                    self._handed_close = (linger,)  # see finish_handed_close
                    closes_at_term(self.context, self)
                    return
            self._reactor.close(self._close_error())
        super().close(linger)

    def finish_handed_close(self, timeout: float | None = None) -> bool:
        """Wait until a close handed to the socket's loop (see :meth:`close`) is carried out.

        A loop that stops runs no callback left at its stop: once it has stopped (or from
        its own thread, which cannot run it while waiting here), the close happens here.
        ``Context.term()`` calls this, which would otherwise wait for ever on the socket.
        False if ``timeout`` seconds passed first.
        """
        handed = self._handed_close
        if handed is None:
            return True
        return finish_when_stopped(
            self._loop, lambda: self.closed, partial(self.close, *handed), timeout
        )

    def _close_error(self) -> BaseException | None:
        """What pending operations fail with when the socket closes; None: they are cancelled."""
        return None

    # -- beyond the peer: async iteration and async with --------------------------------------

    def __aiter__(self) -> Socket:
        return self

    async def __anext__(self) -> list[Any]:
        """The next multipart message; iteration ends when the socket is closed."""
        if self.closed:
            raise StopAsyncIteration
        try:
            return await self.recv_multipart()
        except asyncio.CancelledError:
            if self._reactor.closed and not _cancelling():
                raise StopAsyncIteration from None
            raise
        except zmq.ZMQError as exc:
            if exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
                raise StopAsyncIteration from None
            raise

    async def __aenter__(self: _SocketT) -> _SocketT:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


#: How often (seconds) a caller waiting for an operation handed to another thread's loop
#: checks that the loop still runs (it may stop, and close, before serving the operation):
#: after OWNER_CHECK, then at intervals that double up to OWNER_CHECK_MAX, so that thousands
#: of long waits cost little.
OWNER_CHECK = 0.5
OWNER_CHECK_MAX = 4.0


#: ``_KeptFuture.post`` once its frames were given back.
_GIVEN: Any = object()


class _KeptFuture(Future[Any]):
    """The Future of a queued receive, which keeps what it received to give it back.

    A task awaiting it may be cancelled in the tick it completes: asyncio cannot cancel a
    done Future, so ``Task.cancel()`` (which calls ``cancel()`` on the Future the task
    awaits, by name) throws CancelledError into the task instead, and the message would be
    lost (verifiers#921's general form; rule 2). :meth:`cancel` then gives its frames back
    to the socket, first in line for the next receive. Only queued receives get this class:
    a receive served at once completes before its caller can be cancelled.
    """

    __slots__ = ("frame", "into", "post", "raw", "reactor")

    # (Set by Socket._queue: an __init__ of our own would cost every queued receive.)
    reactor: Reactor
    #: One frame (``recv``, ``recv_into``), else a ``recv_multipart``.
    frame: bool
    #: The decoder (recv_string, recv_json...), or None.
    post: Callable[[Any], Any] | None
    #: What a decoded receive received, once decoded; None: not decoded (the result is
    #: what it received), or given back.
    raw: Any
    #: A ``recv_into``'s ``(buffer, nbytes)`` (set for it alone): its frame is there.
    into: tuple[Any, int]

    def __call__(self, raw: Any) -> Any:
        """The waiter's ``post`` for a decoded receive: decode ``raw``, which is kept."""
        result = self.post(raw)  # type: ignore[misc]
        self.raw = raw  # (after decoding: a message its decoder refused is not given back)
        return result

    def cancel(self, msg: Any = None) -> bool:
        """Cancel as a Future does. Done with a result not settled yet: whether its frames go
        back is decided when a task awaiting it wakes (see :class:`_ContestedFuture`)."""
        if super().cancel(msg):
            return True
        if self.post is not _GIVEN and not self.cancelled() and self.exception() is None:
            self.__class__ = _ContestedFuture
        return False

    def _settle(self) -> bool:
        """Give the frames back if every task awaiting this is to get CancelledError instead
        of the result; whether they went back. Decided once.

        Asked as the first of them wakes (it reads ``result()`` first): ``Task.cancel()``
        sets ``_must_cancel`` only after ``cancel()`` here returned False, and a task that
        swallowed a cancellation keeps ``cancelling()`` above 0, so neither is known at the
        ``cancel()``. Another task awaiting it, or none (a user's ``fut.cancel()``), gets it.
        """
        raw = self.raw if self.post is not None else Future.result(self)
        self.raw, self.post = None, _GIVEN  # never twice
        tasks = [t for t in asyncio.all_tasks(self.get_loop()) if _awaits(t, self)]
        if not tasks or raw is None or self.reactor.closed:
            return False
        if not all(getattr(task, "_must_cancel", False) for task in tasks):
            return False  # one of them gets the result
        if self.frame:
            into = getattr(self, "into", None)
            if into is not None:
                # recv_into: its frame as the buffer holds it (cut as it was cut; its size,
                # the result, is lost with the task). A frame is cheaper to rebuild here, on
                # this rare path, than to receive for every waiting recv_into (a zmq.Frame,
                # then a copy into the buffer: +45% per round trip, callgrind).
                buffer, nbytes = into
                raw = bytes(_ops.into_view(buffer, nbytes)[: min(raw, nbytes or len(buffer))])
            # Whether more frames follow, read now rather than at each receive (an RCVMORE
            # read per receive cost 5% of a waited round trip for recv(), 12% for
            # recv_string: callgrind): right unless a receive has taken a frame since (then a
            # message's last frame may go back as if more followed), or this one came from
            # frames given back. A Frame knows.
            more = raw.more if isinstance(raw, zmq.Frame) else _get(self.reactor.socket, _RCVMORE)
            self.reactor.give_back([(raw, bool(more))])
        else:
            self.reactor.give_back(_ops.given_frames(_recv_multipart, raw) or [])
        return True


class _ContestedFuture(_KeptFuture):
    """A :class:`_KeptFuture` whose ``cancel()`` was called once done: its next ``result()``
    (a task's wake-up reads it first) settles whether its frames go back. Made by changing
    the class, so that the hot path pays nothing for this."""

    __slots__ = ()

    def result(self) -> Any:
        """The result; raises CancelledError if the frames went back to the socket."""
        self.__class__ = _KeptFuture  # type: ignore[assignment]
        if self._settle():
            self.__class__ = _GivenFuture  # type: ignore[assignment]
            raise asyncio.CancelledError
        return Future.result(self)


class _GivenFuture(_KeptFuture):
    """A :class:`_KeptFuture` whose frames went back to the socket: its result is not here
    (a task catching the CancelledError and reading it would get the message twice)."""

    __slots__ = ()

    def result(self) -> Any:
        """Raises CancelledError: the message went back to the socket, for the next receive."""
        raise asyncio.CancelledError


_KeptFuture.__name__ = "Future"  # its repr reads as any Future's: "<Future finished ...>"
_ContestedFuture.__name__ = _GivenFuture.__name__ = "Future"


def _awaits(task: asyncio.Task[Any], future: Future[Any]) -> bool:
    """Whether ``task`` is parked on ``future``."""
    return getattr(task, "_fut_waiter", None) is future


class _HandOff:
    """An operation handed by a caller on one loop to the socket's loop, in another thread.

    ``outer``, the caller's Future, takes the outcome of ``inner``, the operation's Future on
    the socket's loop (``owner``), through ``post`` if any (decoding runs in the caller's
    thread). The caller's loop checks now and then (:data:`OWNER_CHECK`) that the owner still
    runs: if it stopped with the operation not served (or served, its outcome not passed on
    yet: the owner copies it in a callback of its own), the operation moves to the caller's
    loop, as the socket does when used after its loop stopped. It hung for ever before, and
    with it anyone awaiting it.

    The caller may cancel ``outer`` at any moment, also while the owner takes a message for
    it: the owner learns it (:meth:`gone`) and cancels the operation, or gives back what it
    received, to the next receive (rule 2; pyzmq#1925 loses that message).
    """

    __slots__ = (
        "args",
        "inner",
        "interval",
        "method",
        "moved",
        "outer",
        "owner",
        "post",
        "receives",
        "settled",
        "timer",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        owner: asyncio.AbstractEventLoop,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        post: Callable[[Any], Any] | None = None,
        receives: Callable[..., Any] | None = None,
    ) -> None:
        self.outer: Future[Any] = loop.create_future()
        self.owner = owner
        self.method = method
        self.args = args
        self.post = post
        #: The receive operation ``method`` runs (see :func:`zmq_async._ops.given_frames`).
        self.receives = receives
        self.inner: Future[Any] | None = None
        #: The caller's loop took the operation over: the owner must not run or copy it.
        self.moved = False
        #: The caller has gone, and its operation was cancelled or its frames given back.
        self.settled = False
        self.timer: Any = None
        self.interval = OWNER_CHECK

    def watch(self) -> None:
        """Start checking on the owner (once it has been handed the operation)."""
        self.timer = self.outer.get_loop().call_later(OWNER_CHECK, self.check)
        self.outer.add_done_callback(self._outer_done)

    def run(self) -> None:
        """On the owner's loop: start the operation (unless cancelled or moved)."""
        if self.moved or self.outer.done():
            return
        try:
            inner = self.method(*self.args)
        except Exception as exc:
            inner = self.owner.create_future()
            inner.set_exception(exc)
        self.inner = inner
        inner.add_done_callback(self._inner_done)
        if self.outer.cancelled():
            self.gone()  # cancelled meanwhile (its _outer_done may have missed ``inner``)

    def _inner_done(self, inner: Future[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop closed: no one waits
            self.outer.get_loop().call_soon_threadsafe(self._copy, inner)

    def _copy(self, inner: Future[Any]) -> None:
        # A caller gone by now is handled on the owner's side (gone): only it may touch
        # the socket, and it learns of the cancel after this outcome was taken.
        if not self.moved:
            _copy_outcome(inner, self.outer, self.post)

    def _outer_done(self, outer: Future[Any]) -> None:
        self.timer.cancel()
        if outer.cancelled() and not self.moved:
            with contextlib.suppress(RuntimeError):  # the socket's loop closed: it never runs
                self.owner.call_soon_threadsafe(self.gone)

    def gone(self) -> None:
        """On the socket's loop, its caller gone: cancel the operation, or, served already,
        give what it received back to the socket (first in line for the next receive)."""
        inner = self.inner
        if self.settled or inner is None:
            return  # (None: never started, as run saw the caller gone)
        self.settled = True
        if not inner.done():
            inner.cancel()  # consumes nothing: its waiter is skipped, or released
        else:
            self._give_back(inner)

    def _give_back(self, inner: Future[Any]) -> None:
        if self.receives is None or inner.cancelled() or inner.exception() is not None:
            return
        frames = _ops.given_frames(self.receives, inner.result())
        socket: Socket = self.method.__self__  # type: ignore[attr-defined]
        if frames is not None and socket._loop is _get_running_loop():
            socket._reactor.give_back(frames)

    def check(self) -> None:
        """On the caller's loop: move the operation here if the owner stopped before serving it."""
        outer = self.outer
        if outer.done():
            return
        if self.owner.is_running():
            self.interval = interval = min(2 * self.interval, OWNER_CHECK_MAX)
            self.timer = outer.get_loop().call_later(interval, self.check)
            return
        self.moved = True
        inner = self.inner
        if inner is not None:
            if inner.done():
                _copy_outcome(inner, outer, self.post)
                return
            with contextlib.suppress(RuntimeError):  # (the owner closed: nothing to wake)
                inner.cancel()  # consumes nothing: its waiter is skipped, or released
        self.take_over()

    def take_over(self) -> None:
        """Run the operation on the caller's loop (the socket moves to it)."""
        self.moved = True
        outer = self.outer
        try:
            moved: Future[Any] = self.method(*self.args)
        except Exception as exc:
            outer.set_exception(exc)
            return
        moved.add_done_callback(self._moved_done)
        outer.add_done_callback(lambda _: outer.cancelled() and moved.cancel())

    def _moved_done(self, moved: Future[Any]) -> None:
        if self.outer.done():
            self._give_back(moved)  # on the socket's loop now: this one
        else:
            _copy_outcome(moved, self.outer, self.post)


def _copy_outcome(
    inner: Future[Any], outer: Future[Any], post: Callable[[Any], Any] | None = None
) -> None:
    """Give ``outer`` the outcome of ``inner`` (done), through ``post``, unless it is done."""
    if outer.done():
        return
    if inner.cancelled():
        outer.cancel()
    elif inner.exception() is not None:
        outer.set_exception(inner.exception())  # type: ignore[arg-type]
    elif post is None:
        outer.set_result(inner.result())
    else:
        try:
            outer.set_result(post(inner.result()))
        except Exception as exc:
            outer.set_exception(exc)


def _first(received: tuple[Any, bool]) -> Any:
    """The frame of what ``_ops.recv_more`` received."""
    return received[0]


def _into(buffer: Any, nbytes: int, received: tuple[Any, bool]) -> int:
    """``recv_into``'s result from the frame ``_ops.recv_more`` received."""
    return _ops.copy_into(buffer, nbytes, received[0])


def _first_then(post: Callable[[Any], Any], received: tuple[Any, bool]) -> Any:
    """``post`` of the frame of what ``_ops.recv_more`` received."""
    return post(received[0])


def _stop_if_idle(reactor: Reactor, _: object = None) -> None:
    """Stop a dropped shadow's reactor once no operation waits on it.

    A pending Future does not hold its socket: the reactor of a shadow dropped with
    operations pending stops when the last of them is done (served, cancelled, timed out),
    not before (they are still served), nor never (its FD callback would stay for ever).
    """
    if reactor.closed:
        return
    pending = _pending_completions(reactor)
    if not pending:
        reactor.close()
    elif _ is None:  # (the first look, from __del__: later ones come from these callbacks)
        for completion in pending:
            completion.add_done_callback(partial(_stop_if_idle, reactor))


def _pending_completions(reactor: Reactor) -> list[Any]:
    """The completions of the reactor's waiters not done yet (frames given back aside)."""
    given = reactor.given
    return [
        waiter.completion
        for queue in (reactor.recvq, reactor.sendq, reactor.pollq)
        for waiter in queue
        if not waiter.completion.done() and waiter.completion is not given
    ]


def _disarm_on_cancel(waiter: Waiter, future: Future[Any]) -> None:
    """A caller cancelling a waiter that has a deadline must not leave the timer armed.

    Only the timer: the waiter, done, is dropped by the queue's next pass (dispatch, the
    FIFO check, the sweep). Looking for it in the queues (``Reactor.discard``) cost a scan
    per waiter served or cancelled: N * N / 2 with N waiting.
    """
    if waiter.timer is not None:
        future.add_done_callback(lambda _: _cancel_timer(waiter))


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not just a Future it awaited)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def finish_handed_closes(context: zmq.Context[Any]) -> None:
    """Carry out the closes handed to loops that stopped first, for ``context.term()``: those
    :func:`closes_at_term` listed (every handed close of a socket or stream is)."""
    for closing in list(getattr(context, "__dict__", {}).get(_HANDED, ())):
        if not isinstance(closing, InheritedSocket):  # (the parent's, after a fork)
            closing.finish_handed_close()


#: The attribute of a context that lists the closes handed to a loop (see closes_at_term).
_HANDED = "_zmq_async_handed_closes"


def closes_at_term(context: zmq.Context[Any] | None, closing: Any) -> None:
    """List ``closing`` (with a ``finish_handed_close()``), whose close was just handed to a
    loop, for ``context.term()`` to finish should that loop stop first.

    Our contexts look through their sockets; a plain ``zmq.Context`` (under a stream, or a
    socket of ours made ``from_socket``) runs none of our code: its ``term`` is hooked
    (an instance attribute, on this rare path), or its term() would wait for ever.
    """
    if context is None or not hasattr(context, "__dict__"):
        return
    handed = context.__dict__.get(_HANDED)
    if handed is None:
        handed = context.__dict__[_HANDED] = weakref.WeakSet()
        if "term" not in context.__dict__ and type(context).term is zmq.Context.term:
            # A strong reference: a weak one is already cleared when the cyclic collector
            # finalizes a context in a cycle (an owner's __del__ calling destroy(), as
            # jupyter_client's managers do), and term() then did nothing. The cycle through
            # the hook ends with the term.

            def term() -> None:
                finish_handed_closes(context)
                zmq.Context.term(context)
                context.__dict__.pop("term", None)

            object.__setattr__(context, "term", term)
    handed.add(closing)


def finish_when_stopped(
    loop: asyncio.AbstractEventLoop,
    done: Callable[[], bool],
    close: Callable[[], Any],
    timeout: float | None = None,
) -> bool:
    """Wait until a close handed to ``loop`` is ``done``; carry it out here (``close()``) once
    the loop has stopped, or from its own thread (which cannot run it while waiting here).

    A loop that stops runs no callback left at its stop: the close would never happen.
    Returns False if ``timeout`` seconds passed first (the close is still to happen), else True.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        if not loop.is_running() or loop is _get_running_loop():
            close()
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
