"""zmq-anyio's API on our reactor: ``arecv``/``asend``/``apoll`` return ``anyio.Future`` objects.

A :class:`Socket` holds a private :class:`zmq_async.anyio.Socket` shadowing the same libzmq
socket; that one does the waiting. Each ``a*`` call returns an ``anyio.Future`` at once: the
operation is tried at once (NOBLOCK) when nothing of ours is queued ahead of it, else it is
queued, and one task per direction, started in the socket's task group, runs the queued
operations in order (FIFO: tasks started together run in any order on trio). The operation
fulfils the Future in the reactor's dispatch, the moment a message is consumed, so a Future
holding a message can no longer be cancelled; cancelling a pending Future cancels its
operation, which consumes nothing. ``RCVTIMEO``/``SNDTIMEO`` count from the call, as in
zmq-anyio.
"""

from __future__ import annotations

import contextlib
import math
import pickle
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import zmq
from anyio import (
    TASK_STATUS_IGNORED,
    CancelScope,
    Event,
    Future,
    create_task_group,
    current_time,
)
from anyio.abc import TaskGroup, TaskStatus
from anyio.lowlevel import checkpoint
from zmq.utils import jsonapi

from zmq_async import _ops, _thread
from zmq_async._socket import ReactorSocket, closes_first
from zmq_async.anyio._poller import Poller as _AsyncPoller
from zmq_async.anyio._socket import Socket as _AsyncSocket

__all__ = ["Poller", "Socket"]

_T = TypeVar("_T")
_SocketT = TypeVar("_SocketT", bound="Socket")

_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_PENDING = Future.Status.PENDING
_NOT_STARTED = "Socket must be used with async context manager (or `await sock.start()`)"
_WRONG_THREAD = "Socket must be used in the same thread"


class _OpFuture(Future[_T]):
    """An ``anyio.Future`` whose ``cancel()`` also cancels the operation behind it."""

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        super().__init__()
        #: The cancel scope of the running operation, while it runs.
        self._scope: CancelScope | None = None

    def cancel(self) -> None:
        """Cancel the Future and its operation (which then consumes nothing); no-op if done."""
        if self.status is not _PENDING:
            return
        super().cancel()
        if self._scope is not None:
            self._scope.cancel()

    def __repr__(self) -> str:
        return f"<Future {self.status.name.lower()} name={self._name!r}>"


class _Op(NamedTuple):
    """One queued operation: ``op(inner_socket, *args)``, decoded by ``post``, into ``future``."""

    sending: bool
    future: _OpFuture[Any]
    op: Callable[..., Any]
    args: tuple[Any, ...]
    flags: int
    post: Callable[[Any], Any]
    deadline: float


def _fulfil(future: _OpFuture[Any], decode: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """The ``post`` that completes ``future`` where the message is consumed (in dispatch)."""

    def post(result: Any) -> Any:
        value = result if decode is None else decode(result)
        future.return_value = value
        return value

    return post


class Socket(ReactorSocket[Any]):
    """A zmq socket with zmq-anyio's API: ``a*`` methods return ``anyio.Future`` objects.

    ``Socket(context, socket_type)`` makes a socket; ``Socket(sock)`` shadows ``sock`` (and
    closing either closes both). Start it with ``async with sock`` or
    ``await task_group.start(sock.start)`` (or give ``task_group=``) before any ``a*`` call;
    until then ``send``/``send_multipart`` block as pyzmq's do. ``recv`` and the other
    synchronous methods are pyzmq's. ``close()`` (or leaving ``async with``, or ``stop()``)
    cancels every pending Future.
    """

    _repr_cls = "zmq_async.zmq_anyio.Socket"
    #: Set once the socket is started, and once it is stopped (closed).
    started: Event
    stopped: Event
    _async: _AsyncSocket
    _shadowed: zmq.Socket[Any] | None = None
    _task_group: TaskGroup | None
    _own_group: Any
    _thread: int | None
    _starting: bool
    _recvq: deque[_Op]
    _sendq: deque[_Op]
    _polls: set[_OpFuture[Any]]

    def __init__(
        self,
        context_or_socket: zmq.Context[Any] | zmq.Socket[Any],
        socket_type: int = -1,
        task_group: TaskGroup | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(context_or_socket, zmq.Socket):
            super().__init__(shadow=context_or_socket.underlying)
            self.context = context_or_socket.context
            # The shadowed socket owns the libzmq socket: its garbage collection would close it.
            self._shadowed = context_or_socket
            closes_first(context_or_socket, self)
        else:
            super().__init__(context_or_socket, socket_type, **kwargs)
        # A shadow of the libzmq socket by address: shadowing ``self`` would keep ``self``
        # alive from ``_async`` (a cycle), and a dropped socket would not close at once.
        self._async = _AsyncSocket(_from_socket=self.underlying)
        self._reactor = self._async._reactor
        self._task_group = task_group
        self._own_group = None
        self._thread = None
        self._starting = False
        self._sendq = deque()
        # REQ and REP alternate send and receive: one queue keeps a receive behind the send
        # before it (which may still be waiting), as zmq-anyio's wait for POLLIN does.
        alternating = self.get(zmq.TYPE) in (zmq.REQ, zmq.REP)
        self._recvq = self._sendq if alternating else deque()
        self._polls = set()
        self.started = Event()
        self.stopped = Event()

    # -- starting and stopping --------------------------------------------------------------

    def _mark_started(self) -> None:
        self._thread = _thread.get_ident()
        self.started.set()

    async def __aenter__(self: _SocketT) -> _SocketT:
        if self._starting:
            return self
        self._starting = True
        if self._task_group is None:
            group = create_task_group()
            await group.__aenter__()
            self._own_group = self._task_group = group
        self._mark_started()
        return self

    async def __aexit__(self, exc_type: Any, exc_value: Any, exc_tb: Any) -> bool | None:
        self.close()
        group, self._own_group = self._own_group, None
        if group is not None:
            return await group.__aexit__(exc_type, exc_value, exc_tb)  # type: ignore[no-any-return]
        return None

    async def start(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """Start the socket; runs (in its own task group) until the socket is stopped.

        With a ``task_group`` given at construction, it returns at once.
        """
        if self._starting:
            task_status.started()
            return
        self._starting = True
        if self._task_group is not None:
            self._mark_started()
            task_status.started()
            return
        try:
            async with create_task_group() as group:
                self._task_group = group
                self._mark_started()
                task_status.started()
                await self.stopped.wait()
        finally:
            self._task_group = None
            self.stopped.set()

    async def stop(self) -> None:
        """Stop the socket: close it (pending Futures are cancelled)."""
        self.close()
        await checkpoint()

    def close(self, linger: int | None = None) -> None:
        """Cancel every pending Future, stop watching the FD, close the socket."""
        if "_recvq" in self.__dict__:
            for queue in {id(q): q for q in (self._recvq, self._sendq)}.values():
                for item in queue:
                    item.future.cancel()
            for future in list(self._polls):
                future.cancel()
            self._async.close(linger)  # (its reactor, even if the socket closed already)
            # The shadow closed the libzmq socket: let its owners see that now (pyzmq's deep
            # check), or their garbage collection would close it again, by then perhaps a new
            # socket at the same address.
            _ = self.closed, self._shadowed is not None and self._shadowed.closed
            self._task_group = None
            with contextlib.suppress(RuntimeError):  # no async run any more: nobody waits
                self.stopped.set()
        super().close(linger)

    def _check_started(self) -> TaskGroup:
        """The socket's task group; RuntimeError if not started or used from another thread."""
        group = self._task_group
        if group is None:
            raise RuntimeError(_NOT_STARTED)
        if self._thread is None:  # given a task group: started by its first use
            self._mark_started()
        elif self._thread != _thread.get_ident():
            raise RuntimeError(_WRONG_THREAD)
        return group

    # -- the one path of every a* operation -------------------------------------------------

    def _submit(
        self,
        sending: bool,
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        decode: Callable[[Any], Any] | None = None,
    ) -> _OpFuture[Any]:
        """Try ``op`` at once if nothing of ours is queued ahead, else queue it (FIFO)."""
        group = self._check_started()
        future: _OpFuture[Any] = _OpFuture()
        post = _fulfil(future, decode)
        queue = self._sendq if sending else self._recvq
        if queue or not self._now(future, op, args, flags, post):
            timeout = self.get(zmq.SNDTIMEO if sending else zmq.RCVTIMEO)
            deadline = math.inf if timeout < 0 else current_time() + timeout / 1000
            queue.append(_Op(sending, future, op, args, flags, post, deadline))
            if len(queue) == 1:
                try:
                    group.start_soon(self._drain, queue)
                except BaseException:
                    # (its task group ended): left queued, with no task to run it, the
                    # operation would hold every later one behind it for ever
                    queue.pop()
                    raise
        return future

    def _now(
        self,
        future: _OpFuture[Any],
        op: Callable[..., Any],
        args: tuple[Any, ...],
        flags: int,
        post: Callable[[Any], Any],
    ) -> bool:
        """Run ``op`` once without waiting; False if it must wait (``zmq.Again``, no NOBLOCK)."""
        try:
            try:
                result = op(self._async, *args)
            finally:
                self._reactor.after_op()
            post(result)
        except zmq.Again as exc:
            if not flags & _NOBLOCK:
                return False
            future.exception = exc
        except Exception as exc:
            future.exception = exc
        return True

    async def _drain(self, queue: deque[_Op]) -> None:
        """Run the queued operations in order; the queue empties with the last one."""
        try:
            while queue:
                item = queue[0]
                if item.future.status is _PENDING:
                    await self._run(item)
                queue.popleft()
        finally:
            # Cancelled from outside (the task group ended): nobody will run the rest.
            for item in queue:
                item.future.cancel()
            queue.clear()

    async def _run(self, item: _Op) -> None:
        future = item.future
        with CancelScope(deadline=item.deadline) as scope:
            future._scope = scope
            try:
                await self._async._call(item.sending, item.op, item.args, item.flags, item.post)
            except Exception as exc:
                if future.status is _PENDING:
                    future.exception = exc
        future._scope = None
        if future.status is _PENDING:  # the deadline (RCVTIMEO/SNDTIMEO from the call) passed
            future.exception = zmq.Again()

    # -- receiving --------------------------------------------------------------------------

    def arecv(
        self, flags: int = 0, copy: bool = True, track: bool = False
    ) -> Future[bytes | zmq.Frame]:
        """A Future of one frame: bytes (``copy=False``: a ``zmq.Frame``)."""
        return self._submit(False, _ops.recv, (flags | _NOBLOCK, copy, track), flags)

    def arecv_multipart(
        self, flags: int = 0, copy: bool = True, track: bool = False
    ) -> Future[list[bytes] | list[zmq.Frame]]:
        """A Future of one whole multipart message."""
        return self._submit(False, _ops.recv_multipart, (flags | _NOBLOCK, copy, track), flags)

    def arecv_json(self, flags: int = 0, **kwargs: Any) -> Future[Any]:
        """A Future of one frame decoded as JSON (``kwargs`` go to ``json.loads``)."""
        args = (flags | _NOBLOCK, True, False)
        return self._submit(False, _ops.recv, args, flags, _ops.json_loader(kwargs))

    def arecv_string(self, flags: int = 0, encoding: str = "utf-8") -> Future[str]:
        """A Future of one frame decoded as ``encoding`` text."""
        args = (flags | _NOBLOCK, True, False)
        return self._submit(False, _ops.recv, args, flags, _ops.decoder(encoding))

    def arecv_pyobj(self, flags: int = 0) -> Future[Any]:
        """A Future of one frame decoded with pickle."""
        return self._submit(False, _ops.recv, (flags | _NOBLOCK, True, False), flags, _ops.unpickle)

    def arecv_serialized(
        self, deserialize: Callable[[list[Any]], Any], flags: int = 0, copy: bool = True
    ) -> Future[Any]:
        """A Future of one multipart message decoded by ``deserialize(frames)``."""
        args = (flags | _NOBLOCK, copy, False)
        post = _ops.deserializer(deserialize)
        return self._submit(False, _ops.recv_multipart, args, flags, post)

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        """pyzmq's blocking ``recv``; then lets our pending operations re-check the socket."""
        try:
            return super().recv(flags, copy, track)
        finally:
            self._reactor.after_op()

    # -- sending ----------------------------------------------------------------------------

    def asend(
        self, data: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Future[zmq.MessageTracker | None]:
        """A Future of sending one frame: None (a MessageTracker with ``track=True``).

        ``kwargs``: pyzmq's ``routing_id`` and ``group``.
        """
        if kwargs:
            args: tuple[Any, ...] = (data, flags | _NOBLOCK, copy, track, kwargs)
            return self._submit(True, _ops.send_with_options, args, flags)
        return self._submit(True, _ops.send, (data, flags | _NOBLOCK, copy, track), flags)

    def asend_multipart(
        self,
        msg_parts: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        **kwargs: Any,
    ) -> Future[zmq.MessageTracker | None]:
        """A Future of sending a whole multipart message (a bad frame fails it, sending none)."""
        try:
            parts = _ops.frames(msg_parts)
        except (TypeError, IndexError) as exc:
            self._check_started()
            future: _OpFuture[Any] = _OpFuture()
            future.exception = exc
            return future
        args = (parts, flags | _NOBLOCK, copy, track)
        return self._submit(True, _ops.send_multipart, args, flags)

    def asend_json(self, obj: Any, flags: int = 0, **kwargs: Any) -> Future[Any]:
        """A Future of sending ``obj`` as JSON (``routing_id``/``group`` go to the send)."""
        options = {key: kwargs.pop(key) for key in ("routing_id", "group") if key in kwargs}
        return self.asend(jsonapi.dumps(obj, **kwargs), flags, **options)

    def asend_string(
        self, u: str, flags: int = 0, copy: bool = True, encoding: str = "utf-8", **kwargs: Any
    ) -> Future[Any]:
        """A Future of sending ``u`` encoded as ``encoding``; TypeError if it is not a str."""
        if not isinstance(u, str):
            raise TypeError("str objects only")
        return self.asend(u.encode(encoding), flags, copy, **kwargs)

    def asend_pyobj(
        self, obj: Any, flags: int = 0, protocol: int = pickle.DEFAULT_PROTOCOL, **kwargs: Any
    ) -> Future[Any]:
        """A Future of sending ``obj`` pickled with ``protocol``."""
        return self.asend(pickle.dumps(obj, protocol), flags, **kwargs)

    def asend_serialized(
        self,
        msg: Any,
        serialize: Callable[[Any], Any],
        flags: int = 0,
        copy: bool = True,
        **kwargs: Any,
    ) -> Future[Any]:
        """A Future of sending the frames ``serialize(msg)`` returns, as one message."""
        return self.asend_multipart(serialize(msg), flags, copy, **kwargs)

    def send(
        self,
        data: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        routing_id: int | None = None,
        group: str | None = None,
    ) -> Any:
        """Send one frame: started, it never blocks (a send that must wait is queued, as
        ``asend``); not started, pyzmq's blocking send. Errors found at once are raised."""
        kwargs: dict[str, Any] = {}
        if routing_id is not None:
            kwargs["routing_id"] = routing_id
        if group is not None:
            kwargs["group"] = group
        if self._task_group is None:
            return super().send(data, flags, copy, track, **kwargs)
        return _result_now(self.asend(data, flags, copy, track, **kwargs))

    def send_multipart(
        self, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Any:
        """Send a multipart message, as :meth:`send` sends one frame."""
        if self._task_group is None:
            return super().send_multipart(msg_parts, flags, copy, track, **kwargs)
        return _result_now(self.asend_multipart(msg_parts, flags, copy, track, **kwargs))

    # -- polling ----------------------------------------------------------------------------

    def apoll(self, timeout: int | None = None, flags: int = zmq.POLLIN) -> Future[int]:
        """A Future of the events in ``flags`` that are ready; 0 after ``timeout`` ms.

        Raises ZMQError (ENOTSUP) if the socket is closed.
        """
        group = self._check_started()
        if self.closed:
            raise zmq.ZMQError(zmq.ENOTSUP)
        future: _OpFuture[int] = _OpFuture()
        if timeout == 0:
            try:
                future.return_value = self.get(_EVENTS) & _ops.poll_flags(flags)
            except Exception as exc:
                future.exception = exc
            return future
        self._polls.add(future)
        group.start_soon(_fill, future, self._async.poll, (timeout, flags), self._polls)
        return future


def _result_now(future: Future[Any]) -> Any:
    """A sync send's answer: its result or error if it is done, else None (it was queued)."""
    if future.status is Future.Status.FAILED:
        raise future.exception  # type: ignore[misc]
    if future.status is Future.Status.FINISHED:
        return future.return_value
    return None


async def _fill(
    future: _OpFuture[Any],
    call: Callable[..., Any],
    args: tuple[Any, ...],
    pending: set[_OpFuture[Any]] | None = None,
) -> None:
    """Await ``call(*args)`` into ``future``; cancelling the future cancels the call."""
    try:
        if future.status is not _PENDING:
            return
        with CancelScope() as scope:
            future._scope = scope
            try:
                result = await call(*args)
            except Exception as exc:
                if future.status is _PENDING:
                    future.exception = exc
            else:
                if future.status is _PENDING:
                    future.return_value = result
        future._scope = None
    finally:
        if pending is not None:
            pending.discard(future)
        future.cancel()  # cancelled from outside (its task group ended): no-op if done


class Poller(zmq.Poller):
    """A poller whose ``apoll(task_group, timeout)`` returns an ``anyio.Future``.

    Polls our sockets (started or not), plain ``zmq.Socket`` objects, raw file descriptors
    and objects with ``fileno()``.
    """

    def apoll(
        self, task_group: TaskGroup, timeout: int | None = -1
    ) -> Future[list[tuple[Any, int]]]:
        """A Future of the ready ``(socket, event)`` pairs; ``[]`` after ``timeout`` ms.

        ``timeout`` None or negative waits for ever; 0 answers at once.
        """
        future: _OpFuture[list[tuple[Any, int]]] = _OpFuture()
        if timeout == 0:
            try:
                future.return_value = zmq.Poller.poll(self, 0)
            except Exception as exc:
                future.exception = exc
            return future
        task_group.start_soon(_fill, future, self._poll, (timeout,))
        return future

    async def _poll(self, timeout: int | None) -> list[tuple[Any, int]]:
        """Poll through our anyio poller, our sockets by their private anyio sockets."""
        inner = _AsyncPoller()
        ours: dict[int, Any] = {}
        for item, mask in self.sockets:
            if isinstance(item, Socket):
                ours[id(item._async)] = item
                item = item._async
            inner.register(item, mask)
        ready = await inner.poll(timeout)
        return [(ours.get(id(item), item), events) for item, events in ready]
