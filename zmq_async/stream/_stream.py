"""``ZMQStream``: callbacks on a zmq socket, served by the core reactor.

Receiving is one standing waiter in the socket's :class:`~zmq_async._reactor.Reactor`: its
completion (:class:`_Receiver`) hands each message to the callback and queues itself again,
so one dispatch drains up to :data:`~zmq_async._reactor.BATCH` messages with NOBLOCK receives
and no per-message Future. Sending is an ordered buffer: a message goes out at once when
nothing is queued ahead and no ``on_send`` callback waits for it, otherwise a standing send
waiter (:class:`_Sender`) sends from the buffer's head, up to BATCH messages, each time EVENTS
allows.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
import sys
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn, SupportsIndex

import zmq
from zmq.backend import Socket as _BackendSocket
from zmq.utils import jsonapi

from zmq_async import _ops
from zmq_async._reactor import BATCH, Reactor, Waiter
from zmq_async._socket import HANDED_CLOSE_WAIT, hook_close
from zmq_async._thread import get_ident as _get_ident
from zmq_async.asyncio._driver import driver_for, thread_marker
from zmq_async.asyncio._socket import Socket as _AsyncioSocket
from zmq_async.asyncio._socket import closes_at_term, finish_when_stopped

__all__ = ["SendQueueFull", "ZMQStream"]

#: Where callback failures and send errors are logged (zmq.eventloop.zmqstream uses Tornado's
#: ``tornado.general``; the messages are the same).
log = logging.getLogger("zmq_async.stream")
_REPR_NAME = "zmq_async.stream.ZMQStream"

_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_get: Callable[[Any, int], Any] = _BackendSocket.get
_FATAL = (zmq.ENOTSOCK, zmq.ETERM)
_Again = zmq.Again
_EFSM = zmq.EFSM
#: A receive that fails with these is not an error for a stream, which waits for POLLIN: not
#: its turn (EFSM: a REQ before its send, a REP before its reply), or a socket that cannot
#: receive (ENOTSUP: a PUB, a PUSH), on which the peer's stream never tries.
_NOT_RECEIVING = (zmq.EFSM, zmq.ENOTSUP)
_recv: Callable[..., Any] = _ops.recv
_send: Callable[..., Any] = _ops.send
_recv_multipart = _ops.recv_multipart
_send_multipart = _ops.send_multipart
_isawaitable = inspect.isawaitable
_get_running_loop = asyncio._get_running_loop

#: A queued message: (as given, frames to send, flags, copy, track, extra send options). The
#: frames are the error instead when the message cannot be sent (a frame that is not a buffer):
#: the stream logs it when the message's turn comes, as the peer does.
_Item = tuple[Any, "Sequence[Any] | Exception", int, bool, bool, "dict[str, Any] | None"]


class SendQueueFull(zmq.Again):
    """A send was refused: ``max_send_queue`` messages already wait to go out.

    A subclass of ``zmq.Again`` (errno EAGAIN): "try again later". Nothing was queued; wait
    for the drain callback (:meth:`ZMQStream.set_drain_callback`) before sending more.
    """

    def __init__(self, limit: int) -> None:
        zmq.ZMQError.__init__(self, zmq.EAGAIN, f"ZMQStream send queue is full ({limit} messages)")
        self.limit = limit


class _NotCallable(TypeError, AssertionError):
    """A callback that is not callable; an AssertionError too, as the peer raises that."""


class _Receiver:
    """The standing receive: a Completion the reactor sees as live until receiving stops.

    Its operation (:meth:`drain`) receives messages and hands each to the stream's callback
    in a tight loop, up to :data:`~zmq_async._reactor.BATCH` per wakeup, with no Future and
    no reactor round per message. A failed (NOBLOCK) receive ends it, leaving it first in
    line and the FD re-armed; a full batch yields to the loop first (rule 3); with other
    receivers queued on a shared socket it takes one message per turn, as they do.

    While messages come one per wakeup (a REQ/REP turn, a trickle), it reads EVENTS
    (``Reactor.events``) before receiving a second one instead: a failed receive builds a
    ``zmq.Again``, several times the cost of that look, which re-arms the FD as well (rule 1);
    a socket its user closed raises there (ENOTSOCK), as the receive would.
    """

    __slots__ = (
        "_requeue_cb",
        "active",
        "callback",
        "copy",
        "lone",
        "parked",
        "reactor",
        "stream",
        "turn",
        "waiter",
    )

    def __init__(
        self,
        stream: ZMQStream,
        reactor: Reactor,
        callback: Callable[[list[Any]], Any],
        copy: bool,
    ) -> None:
        self.stream = stream
        self.reactor = reactor
        self.active = True
        #: The ``on_recv`` callback and its ``copy``, changed in place by a later ``on_recv``.
        self.callback = callback
        self.copy = copy
        #: The last wakeup found one message only: look (EVENTS) before receiving a second.
        self.lone = False
        #: The drain ended on a look that found no message: set_result queues as after a
        #: failed receive.
        self.parked = False
        self.waiter = Waiter(self, self.drain)
        self._requeue_cb = self._requeue
        #: Waits for POLLIN after a failed receive (EFSM: a REQ that has not sent; ENOTSUP: a PUB).
        self.turn = _Turn(self)

    def done(self) -> bool:
        return not self.active

    def drain(self, socket: zmq.Socket[Any]) -> int:
        """The waiter's operation: receive and dispatch messages; returns how many.

        Raises zmq.Again when the socket has no more (after dispatching those it had), unless
        a look (``lone``) found that first.
        """
        # The hot path: everything per message is local here, or in slots (the stream's own
        # attributes are read through its __getattr__ hook, several times slower).
        reactor = self.reactor
        recvq = reactor.recvq
        recv = _recv
        spawn = self.stream._spawn
        count = 0
        lone = self.lone
        while True:
            if lone and count:
                if not reactor.events() & _POLLIN:
                    self.parked = True
                    return count
                lone = self.lone = False  # a second message: a burst, receive without asking
            # A Frame says whether more follow (zmq_msg_more); asking the socket (RCVMORE)
            # costs more than copying the frame out.
            try:
                frame = recv(socket, _NOBLOCK, False, False)
            except _Again:
                if count == 1:
                    self.lone = True
                raise
            if self.copy:
                msg = [frame.bytes]
                while frame.more:
                    frame = recv(socket, _NOBLOCK, False, False)
                    msg.append(frame.bytes)
            else:
                msg = [frame]
                while frame.more:
                    frame = recv(socket, _NOBLOCK, False, False)
                    msg.append(frame)
            if not self.active:
                return count  # closed from another thread while receiving: not delivered
            count += 1
            try:
                result = self.callback(msg)
            except Exception:
                log.error("Uncaught exception in ZMQStream callback", exc_info=True)
            except BaseException:
                # (CancelledError, KeyboardInterrupt ...) It propagates, as from the peer's
                # stream; the loop may go on: so does receiving (the reactor dropped us).
                reactor.driver.call_soon(self._requeue_cb)  # type: ignore[union-attr]
                raise
            else:
                if result is not None:
                    spawn(result)
            if count >= BATCH or recvq or not self.active or reactor.closed:
                return count  # (closed: by the callback, closing the shared socket)

    def set_result(self, count: int, /) -> None:
        parked, self.parked = self.parked, False
        if not self.active:
            return
        reactor = self.reactor
        if reactor.closed:  # a callback closed the (shared) socket itself
            self.active = False
            self.stream._released(reactor)
        elif count >= BATCH:
            # Let the loop run (and other sockets be served) before the next batch.
            reactor.driver.call_soon(self._requeue_cb)  # type: ignore[union-attr]
        elif parked:
            # Our look was the last touch of the socket and found nothing: as after a failed
            # receive, the dispatch may end here (the FD is re-armed).
            reactor.wait_recv(self.waiter, tried=True)
        else:
            # Others wait on this shared socket: back of the line. Popped by the dispatch
            # that is calling us, which is watching the FD: no need for wait_recv's
            # bookkeeping (or its RCVTIMEO deadline; a stream waits forever).
            reactor.recvq.append(self.waiter)

    def _requeue(self) -> None:
        reactor = self.reactor
        if self.active and not reactor.closed:
            reactor.wait_recv(self.waiter)
            reactor.dispatch()  # the socket may hold more, with no edge to come

    def set_exception(self, exception: BaseException, /) -> None:
        stream = self.stream
        if self.reactor.closed:
            self.active = False
            stream._lost_socket(exception)
            return
        if isinstance(exception, _Again):  # RCVTIMEO ran out: not an error for a stream
            if self.active:
                self.reactor.wait_recv(self.waiter)
            return
        if not (isinstance(exception, zmq.ZMQError) and exception.errno in _NOT_RECEIVING):
            log.error("ZMQStream receive error: %s", exception)
        # The peer only receives once EVENTS shows POLLIN: wait for that, not retry (a busy
        # loop, which a socket that cannot receive now, or ever, would never leave).
        if self.active:
            self.turn.wait()

    def cancel(self) -> bool:
        # The reactor released its waiters: the socket was closed (a zmq_async socket's own
        # close()), or it was moved to another loop by a use there.
        was_active, self.active = self.active, False
        if was_active:
            self.stream._released(self.reactor)
        return was_active


class _Turn:
    """A poll waiter's completion: once POLLIN is set, the receiver queues again."""

    __slots__ = ("pending", "receiver")

    def __init__(self, receiver: _Receiver) -> None:
        self.receiver = receiver
        self.pending = False

    def wait(self) -> None:
        self.pending = True
        self.receiver.reactor.wait_poll(Waiter(self, None, mask=_POLLIN), None)

    def done(self) -> bool:
        return not (self.pending and self.receiver.active)

    def set_result(self, events: int, /) -> None:
        self.pending = False
        receiver = self.receiver
        if receiver.active and not receiver.reactor.closed:
            receiver.reactor.wait_recv(receiver.waiter)
            receiver.reactor.kick()  # the EVENTS read that found POLLIN took the edge

    def set_exception(self, exception: BaseException, /) -> None:
        self.pending = False
        self.receiver.set_exception(exception)

    def cancel(self) -> bool:
        self.pending = False
        return self.receiver.cancel()


class _Sender:
    """The send side: the standing send, queued in the reactor while the stream's send buffer
    is not empty, and the state ``send_multipart``'s hot path reads, in slots (the stream's own
    attributes are read through its ``__getattr__`` hook, several times slower)."""

    __slots__ = (
        "armed",
        "buf",
        "callback",
        "closed",
        "home",
        "loop",
        "pollq",
        "reactor",
        "recvq",
        "sendq",
        "socket",
        "stream",
        "waiter",
    )

    def __init__(
        self,
        stream: ZMQStream,
        socket: zmq.Socket[Any],
        reactor: Reactor,
        loop: asyncio.AbstractEventLoop,
        buf: deque[_Item],
    ) -> None:
        self.stream = stream
        self.armed = False
        self.waiter = Waiter(self, stream._send_buffered)
        #: The stream is closed (:attr:`ZMQStream._closed`).
        self.closed = False
        #: The ``on_send`` callback.
        self.callback: Callable[[list[Any], Any], Any] | None = None
        self.socket = socket
        self.reactor = reactor
        self.recvq = reactor.recvq
        self.sendq = reactor.sendq
        self.pollq = reactor.pollq
        self.loop = loop
        self.home = thread_marker(loop)
        self.buf = buf

    def done(self) -> bool:
        return self.closed

    def set_result(self, count: int, /) -> None:
        stream = self.stream
        if self.closed:
            self.armed = False
        elif self.reactor.closed:
            self.armed = False
            stream._released(self.reactor)  # a callback closed the (shared) socket
        elif self.buf:
            if count >= BATCH:
                # Let the loop run (and other sockets be served) before the next batch.
                self.reactor.driver.call_soon(self._requeue)  # type: ignore[union-attr]
            else:
                self.sendq.append(self.waiter)  # as in _Receiver.set_result
        else:
            self.armed = False
            stream._maybe_drained()

    def _requeue(self) -> None:
        reactor = self.reactor
        if self.armed and not self.closed and not reactor.closed:
            reactor.wait_send(self.waiter)
            reactor.dispatch()  # the socket may take more, with no edge to come

    def set_exception(self, exception: BaseException, /) -> None:
        self.armed = False
        stream = self.stream
        if stream._reactor.closed:
            stream._lost_socket(exception)
        elif stream._sendbuf and not stream._closed:
            stream._arm_sender()  # SNDTIMEO ran out: a stream keeps trying

    def cancel(self) -> bool:
        self.armed = False
        self.stream._released(self.stream._reactor)
        return True


class ZMQStream:
    """Callbacks for a zmq socket's messages: a drop-in for ``zmq.eventloop.zmqstream.ZMQStream``.

    Runs on Tornado's IOLoop or on any asyncio loop (``asyncio.run``, uvloop). ``io_loop`` is
    a Tornado ``IOLoop`` or an asyncio loop; by default the running loop (or, with Tornado
    imported, ``IOLoop.current()``).

    ``socket`` may be a plain ``zmq.Socket`` or a :mod:`zmq_async.asyncio` /
    :mod:`zmq_async.tornado` socket, whose futures keep working beside the stream. A
    ``zmq.asyncio`` (peer) socket is replaced by a plain shadow of it, with a RuntimeWarning,
    as the peer does.

    Beyond the peer: ``max_send_queue`` bounds the messages waiting to be sent; a send beyond
    it raises :class:`SendQueueFull` instead of growing the queue without limit.

    Any thread may call the stream, as with the peer: a call that changes it, made outside its
    loop while that loop runs in another thread, is handed to the loop
    (``call_soon_threadsafe``) and carried out there in the caller's order; only the loop's
    thread touches the socket and the reactor.

    Raises TypeError if ``socket`` is not a zmq socket, RuntimeError if there is no loop.
    """

    socket: zmq.Socket[Any]
    io_loop: Any
    _io_loop_entry: tuple[Any, Any] | None = None  # its listing in a Tornado IOLoop
    #: ``(linger,)`` of a close handed to the stream's loop by another thread, until done.
    _handed_close: tuple[int | None] | None = None
    bind: Callable[..., Any]
    bind_to_random_port: Callable[..., int]
    connect: Callable[..., Any]
    setsockopt: Callable[..., None]
    getsockopt: Callable[..., Any]
    setsockopt_string: Callable[..., None]
    getsockopt_string: Callable[..., str]
    setsockopt_unicode: Callable[..., None]
    getsockopt_unicode: Callable[..., str]

    def __init__(
        self,
        socket: zmq.Socket[Any],
        io_loop: Any = None,
        *,
        max_send_queue: int | None = None,
    ) -> None:
        if max_send_queue is not None and max_send_queue < 1:
            raise ValueError(f"max_send_queue must be None or at least 1, not {max_send_queue}")
        given, socket = socket, _stream_socket(socket)
        self.io_loop, loop = _resolve_loop(io_loop)
        self._loop = loop
        if isinstance(given, _AsyncioSocket):
            # One reactor per libzmq socket: its futures and this stream share the FD's edges.
            if given._loop is not loop:
                given._bind(loop)  # raises if its loop runs in another thread
            self._reactor = given._reactor
            self._owns_reactor = False
            self._closer: zmq.Socket[Any] = given  # closes the shared reactor, then the socket
        else:
            self._reactor = Reactor(socket, driver_for(loop))
            self._owns_reactor = True
            self._closer = socket
            _closes_on_its_loop(socket, self)
        self.socket = socket
        self.max_send_queue = max_send_queue
        self._sendbuf: deque[_Item] = deque()
        self._sender = _Sender(self, socket, self._reactor, loop, self._sendbuf)
        #: Receiving: the ``on_recv`` callback and its ``copy`` live in it; None: no callback.
        self._receiver: _Receiver | None = None
        self._close_callback: Callable[[], Any] | None = None
        self._drain_callback: Callable[[], Any] | None = None
        self._refused = False
        # Sends handed over by other threads and not yet queued by the loop, counted in
        # send_queue_size (and against max_send_queue) from the moment the caller returns;
        # kept here, not only in the loop's callbacks, which a loop that stops first drops.
        self._handed_sends: deque[tuple[Any, ...]] = deque()
        self._handed_lock = threading.Lock()
        # The peer links these straight to the socket's methods.
        self.bind = socket.bind
        self.bind_to_random_port = socket.bind_to_random_port
        self.connect = socket.connect
        self.setsockopt = socket.setsockopt
        self.getsockopt = socket.getsockopt
        self.setsockopt_string = socket.setsockopt_string
        self.getsockopt_string = socket.getsockopt_string
        self.setsockopt_unicode = socket.setsockopt_unicode
        self.getsockopt_unicode = socket.getsockopt_unicode
        if hasattr(self.io_loop, "add_handler"):  # a Tornado IOLoop
            from zmq_async.tornado._ioloop import enlist

            # Listed among its handlers, as the peer's socket is: IOLoop.close(all_fds=True)
            # closes the stream. It takes the place of its zmq_async.tornado socket's listing.
            enlist(self, self.io_loop, self._reactor.fd, take_over=given)

    @property
    def _closed(self) -> bool:
        """Whether the stream is closed; kept in the send side's slots, which its hot path reads."""
        return self._sender.closed

    @_closed.setter
    def _closed(self, value: bool) -> None:
        self._sender.closed = value

    def __getattr__(self, name: str) -> Any:
        """The rest of the socket's interface (``subscribe``, ``unbind``, options ...).

        Not its receive methods nor ``poll``: messages arrive through ``on_recv``.
        """
        if name.startswith(("_", "recv", "poll")):
            raise AttributeError(name)
        socket = self.__dict__.get("socket")
        if socket is None:
            raise AttributeError(name)
        return getattr(socket, name)

    def __copy__(self) -> ZMQStream:
        """A shallow copy, as the peer's: another stream object over the same state."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        """Raises TypeError: a stream (its socket, its loop) cannot be pickled nor deep-copied.

        As the peer's pickling (its socket refuses); a deep copy would otherwise copy the
        event loop's innards and leave a broken loop behind for the garbage collector.
        """
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __repr__(self) -> str:
        if "_sender" not in self.__dict__:  # a subclass that skipped __init__, as the peer's
            return object.__repr__(self)
        state = "closed" if self._closed else f"fd={self._reactor.fd}"
        cls = type(self)  # a subclass by its own name, as pyzmq names its sockets' subclasses
        name = f"{cls.__module__}.{cls.__qualname__}" if cls is not ZMQStream else _REPR_NAME
        return f"<{name}({self.__dict__.get('socket')!r}) {state}>"

    # -- receiving --------------------------------------------------------------------------

    def on_recv(self, callback: Callable[[list[Any]], Any] | None, copy: bool = True) -> None:
        """Call ``callback(msg)`` with each multipart message received (a list of frames).

        Frames are bytes, or ``zmq.Frame`` objects with ``copy=False``. One callback at a
        time: this replaces the previous one. ``None`` pauses receiving (messages wait in
        the socket); registering a callback again resumes. The callback may be a coroutine
        function; its coroutines run as tasks. Exceptions in it are logged.

        Raises OSError if the stream is closed, TypeError (also an AssertionError, as the
        peer raises) if ``callback`` is not callable.
        """
        self._check_closed()
        if callback is not None and not callable(callback):
            raise _NotCallable(f"callback must be callable or None, not {callback!r}")
        if _get_running_loop() is not self._loop and self._loop.is_running():
            self._hand_off(self.on_recv, callback, copy)
            return
        receiver = self._receiver
        if callback is None:
            if receiver is not None:
                receiver.active = False  # the reactor drops its waiter: done() is now True
                self._receiver = None
        elif receiver is not None and receiver.active:
            receiver.callback = callback  # from the next message on, even within a batch
            receiver.copy = copy
        else:  # (inactive: released by the reactor)
            receiver = self._receiver = _Receiver(self, self._reactor, callback, copy)
            self._reactor.wait_recv(receiver.waiter)
            # Messages may already be waiting, their edge consumed: look now, not on the FD.
            self._reactor.kick()

    def on_recv_stream(
        self, callback: Callable[[ZMQStream, list[Any]], Any] | None, copy: bool = True
    ) -> None:
        """Like :meth:`on_recv`, but ``callback(stream, msg)`` also gets this stream."""
        if callback is None:
            self.stop_on_recv()
        else:
            self.on_recv(lambda msg: callback(self, msg), copy=copy)

    @property
    def _recv_callback(self) -> Callable[[list[Any]], Any] | None:
        """The receive callback (``on_recv_stream``'s wraps its own), None when not receiving.

        The peer's attribute, read by programs that chain a callback of their own in front of
        the one registered. Read-only: register with ``on_recv``.
        """
        receiver = self._receiver
        return None if receiver is None else receiver.callback

    @property
    def _send_callback(self) -> Callable[[list[Any], Any], Any] | None:
        """The ``on_send`` callback, or None: the peer's attribute. Read-only: see ``on_send``."""
        return self._sender.callback

    def stop_on_recv(self) -> None:
        """Stop receiving (``on_recv(None)``); messages wait in the socket."""
        self.on_recv(None)

    def receiving(self) -> bool:
        """Whether a receive callback is registered.

        From another thread: as of the calls the loop has carried out (an ``on_recv`` handed
        over a moment ago may not count yet).
        """
        return self._receiver is not None

    # -- sending ----------------------------------------------------------------------------

    def on_send(self, callback: Callable[[list[Any], Any], Any] | None) -> None:
        """Call ``callback(msg, status)`` after each message is sent.

        ``msg`` is the list of frames as given to ``send_multipart`` (``[msg]`` for
        ``send``); ``status`` is None, a ``zmq.MessageTracker`` (``track=True``), or the
        ``zmq.ZMQError`` the send failed with. ``None`` removes the callback.

        Raises OSError if the stream is closed, TypeError (also an AssertionError) if
        ``callback`` is not callable.
        """
        self._check_closed()
        if callback is not None and not callable(callback):
            raise _NotCallable(f"callback must be callable or None, not {callback!r}")
        if _get_running_loop() is not self._loop and self._loop.is_running():
            self._hand_off(self.on_send, callback)
            return
        self._sender.callback = callback

    def on_send_stream(self, callback: Callable[[ZMQStream, list[Any], Any], Any] | None) -> None:
        """Like :meth:`on_send`, but ``callback(stream, msg, status)`` also gets this stream."""
        if callback is None:
            self.stop_on_send()
        else:
            self.on_send(lambda msg, status: callback(self, msg, status))

    def stop_on_send(self) -> None:
        """Remove the send callback (``on_send(None)``)."""
        self.on_send(None)

    def sending(self) -> bool:
        """Whether messages are waiting to be sent (sends handed over by other threads too)."""
        with self._handed_lock:
            return bool(self._sendbuf or self._handed_sends)

    @property
    def send_queue_size(self) -> int:
        """How many messages wait to be sent (sends handed over by other threads too)."""
        with self._handed_lock:
            return len(self._sendbuf) + len(self._handed_sends)

    def set_drain_callback(self, callback: Callable[[], Any] | None) -> None:
        """Call ``callback()`` when the send queue is empty again after a refused send.

        Pairs with ``max_send_queue``: on :class:`SendQueueFull`, stop sending until then.
        """
        if _get_running_loop() is not self._loop and self._loop.is_running():
            self._hand_off(self.set_drain_callback, callback)
            return
        self._drain_callback = callback

    def send(
        self,
        msg: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        callback: Callable[[list[Any], Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send one frame, ``send_multipart([msg], ...)``."""
        self.send_multipart([msg], flags, copy, track, callback, **kwargs)

    def send_multipart(
        self,
        msg: Sequence[Any],
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        callback: Callable[[list[Any], Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue a multipart message; messages go out in order as soon as the socket allows.

        ``callback``, if given, becomes the :meth:`on_send` callback (as with the peer).
        A message that cannot be sent (a frame without the buffer interface, no frame at all)
        fails where the peer's does: the call returns, and the stream logs the error when the
        message's turn comes, dropping only that message; the stream keeps running.
        Raises OSError if the stream is closed, :class:`SendQueueFull` if ``max_send_queue``
        messages already wait (nothing is queued then).
        """
        # The hot path: one frame, nothing to keep order with, no one to tell, on the loop.
        sender = self._sender
        if (
            callback is None
            and not kwargs
            and not sender.closed
            and sender.callback is None
            and type(msg) is list
            and len(msg) == 1
            and not sender.buf
            and not sender.sendq
            and not sender.reactor.closed  # (also abandoned: inherited across fork)
            and (sender.home._thread_id == _get_ident() or _get_running_loop() is sender.loop)
        ):
            try:
                _send(sender.socket, msg[0], flags | _NOBLOCK, copy, track)
            except Exception:
                pass  # nothing was sent: _send below sorts it out (queue, log, or defer)
            else:
                if sender.recvq or sender.pollq:
                    sender.reactor.kick()  # rule 1: our send may have consumed their edge
                return
        if sender.closed:
            raise OSError("Stream is closed")
        if (
            # (the thread marker first: _get_running_loop() makes a system call on 3.11)
            (sender.home._thread_id != _get_ident() or sender.reactor.closed)
            and _get_running_loop() is not sender.loop
            and sender.loop.is_running()
        ):
            self._hand_send_off(msg, flags, copy, track, callback, kwargs)
            return
        self._send(msg, flags, copy, track, callback, kwargs, self.max_send_queue)

    def _send(
        self,
        msg: Sequence[Any],
        flags: int,
        copy: bool,
        track: bool,
        callback: Callable[[list[Any], Any], Any] | None,
        kwargs: dict[str, Any],
        limit: int | None,
    ) -> None:
        """send_multipart on the loop's thread, against a queue of at most ``limit``."""
        if callback is not None:
            self.on_send(callback)
        buf = self._sendbuf
        unsendable: Exception | None = None
        if type(msg) is list and len(msg) == 1 and type(msg[0]) is bytes:
            parts: Sequence[Any] = msg  # the common case, checked in a glance
        else:
            try:
                parts = _ops.frames(msg)
            except (TypeError, IndexError) as exc:
                unsendable = exc  # logged in its turn: the peer's fails there
        if unsendable is None and not buf and self._sender.callback is None:
            # Nothing ahead of it and no one to tell: try it now, as a zmq_async socket does.
            reactor = self._reactor
            sendq = reactor.sendq
            if not (sendq and reactor.busy(sendq)):
                try:
                    if kwargs:
                        _send_with_options(
                            self.socket, parts, flags | _NOBLOCK, copy, track, kwargs
                        )
                    elif len(parts) == 1:
                        _send(self.socket, parts[0], flags | _NOBLOCK, copy, track)
                    else:
                        _send_multipart(self.socket, parts, flags | _NOBLOCK, copy, track)
                except _Again:
                    pass  # queued below
                except zmq.ZMQError as exc:
                    if exc.errno in _FATAL:
                        raise
                    if exc.errno != _EFSM:  # out of turn (REQ/REP): queued below
                        log.error("SEND Error: %s", exc)
                        return
                else:
                    if reactor.recvq or sendq or reactor.pollq:
                        reactor.kick()  # rule 1: our send may have consumed their edge
                    return
        if limit is not None and len(buf) >= limit:
            self._refused = True
            raise SendQueueFull(limit)
        buf.append((msg, unsendable or parts, flags | _NOBLOCK, copy, track, kwargs or None))
        if not self._sender.armed:
            self._arm_sender()

    def _hand_send_off(
        self,
        msg: Sequence[Any],
        flags: int,
        copy: bool,
        track: bool,
        callback: Callable[[list[Any], Any], Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        """send_multipart from another thread: admitted here, queued by the loop, in order."""
        if callback is not None:
            self.on_send(callback)  # handed over first, so it is in place for this message
        limit = self.max_send_queue
        with self._handed_lock:
            if limit is not None and len(self._sendbuf) + len(self._handed_sends) >= limit:
                self._refused = True
                raise SendQueueFull(limit)
            self._handed_sends.append((msg, flags, copy, track, None, kwargs, None))
        self._hand_off(self._send_handed)

    def _send_handed(self) -> None:
        """Queue (or send) the oldest send handed over, if a flush has not taken it yet."""
        # Queued (or sent) and no longer counted as handed over in one step, so that another
        # thread never finds it in neither count (send_queue_size, max_send_queue).
        with self._handed_lock:
            if not self._handed_sends:
                return
            args = self._handed_sends.popleft()
            # Closed: dropped, as close() drops every unsent message. Admitted by the caller.
            if not self._closed:
                self._send(*args)

    def send_string(
        self,
        u: str,
        flags: int = 0,
        encoding: str = "utf-8",
        callback: Callable[[list[Any], Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send ``u`` encoded as ``encoding``. Raises TypeError if ``u`` is not a str."""
        if not isinstance(u, str):
            raise TypeError("unicode/str objects only")
        self.send(u.encode(encoding), flags=flags, callback=callback, **kwargs)

    send_unicode = send_string

    def send_json(
        self,
        obj: Any,
        flags: int = 0,
        callback: Callable[[list[Any], Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send ``obj`` serialized as JSON."""
        self.send(jsonapi.dumps(obj), flags=flags, callback=callback, **kwargs)

    def send_pyobj(
        self,
        obj: Any,
        flags: int = 0,
        protocol: int = -1,
        callback: Callable[[list[Any], Any], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send ``obj`` pickled with ``protocol``."""
        self.send(pickle.dumps(obj, protocol), flags, callback=callback, **kwargs)

    def _arm_sender(self) -> None:
        self._sender.armed = True
        self._reactor.wait_send(self._sender.waiter)
        # The socket may be writable with no edge to come: look now.
        self._reactor.kick()

    def _send_buffered(self, socket: zmq.Socket[Any]) -> int:
        """The send waiter's operation: send queued messages in order while the socket takes
        them, up to :data:`~zmq_async._reactor.BATCH`, each followed by its ``on_send``
        callback; returns how many left the queue.

        One EVENTS read per batch, not per message. Raises zmq.Again, with nothing consumed,
        if the socket takes none.
        """
        buf = self._sendbuf
        sender = self._sender
        reactor = self._reactor
        count = 0
        while buf:
            try:
                result = self._send_head(socket)
            except _Again:
                if count:
                    return count  # the dispatch reads EVENTS next (rule 1)
                raise
            count += 1
            if result is not None:
                try:
                    self._sent(result)
                except BaseException:
                    # Not an Exception (those are logged): it propagates, as from the peer's
                    # stream; the loop may go on: so does sending (the reactor dropped us).
                    reactor.driver.call_soon(sender._requeue)  # type: ignore[union-attr]
                    raise
            if count >= BATCH or sender.closed or reactor.closed:
                break
        return count

    def _send_head(self, socket: zmq.Socket[Any]) -> tuple[Any, Any] | None:
        """The send waiter's operation: send the oldest queued message, ``(msg, status)``.

        Raises zmq.Again, with nothing consumed, if the socket cannot take it yet.
        """
        buf = self._sendbuf
        if not buf:
            return None  # flush() sent it
        msg, parts, flags, copy, track, kwargs = buf[0]
        if isinstance(parts, Exception):
            buf.popleft()
            log.error("SEND Error: %s", parts, exc_info=parts)
            return None  # no status for the send callback: the peer's raised before it
        try:
            if kwargs:
                status = _send_with_options(socket, parts, flags, copy, track, kwargs)
            elif len(parts) == 1:
                status = _send(socket, parts[0], flags, copy, track)
            else:
                status = _send_multipart(socket, parts, flags, copy, track)
        except _Again:
            raise
        except zmq.ZMQError as exc:
            if exc.errno in _FATAL:
                raise
            if exc.errno == _EFSM:
                # Out of turn (a REQ awaiting its reply, a REP its request): the peer sends
                # on POLLOUT only, which such a socket shows once its turn comes; wait for it.
                raise _Again() from None
            buf.popleft()
            log.error("SEND Error: %s", exc)
            return msg, exc
        except Exception as exc:
            # Not a socket error (a buffer pyzmq cannot send): the peer's send raised it, so
            # that message only is dropped; left at the head, it would fail at every turn.
            buf.popleft()
            log.error("SEND Error: %s", exc, exc_info=exc)
            return None
        buf.popleft()
        return msg, status

    def _sent(self, result: tuple[Any, Any]) -> None:
        callback = self._sender.callback
        if callback is not None and not self._closed:
            self._run_callback(callback, *result)

    def _maybe_drained(self) -> None:
        if self._refused and not self._sendbuf and not self._closed:
            self._refused = False
            callback = self._drain_callback
            if callback is not None:
                self._run_callback(callback)

    # -- flush ------------------------------------------------------------------------------

    def flush(self, flag: int = zmq.POLLIN | zmq.POLLOUT, limit: int | None = None) -> int:
        """Handle pending messages now, without waiting for the loop; returns how many.

        With POLLIN in ``flag``, receives every waiting message and passes it to the receive
        callback (dropping it if there is none); with POLLOUT, sends the queued messages the
        socket takes now. Stops when neither can proceed, or after ``limit`` messages.
        Called from another thread while the loop runs, the flush is handed to the loop and
        0 is returned. Raises OSError if the stream is closed.
        """
        self._check_closed()
        if _get_running_loop() is not self._loop and self._loop.is_running():
            self._hand_off(self.flush, flag, limit)
            return 0
        while self._handed_sends:  # handed to a loop that may have stopped before queueing
            self._send_handed()
        socket = self.socket
        count = 0
        try:
            while not limit or count < limit:
                # As the peer: EVENTS says what can proceed (a PUSH is never asked to recv).
                events = _get(socket, _EVENTS) & flag
                if not self._sendbuf:
                    events &= ~_POLLOUT
                if not events:
                    break
                if events & _POLLIN:
                    receiver = self._receiver
                    copy = receiver is None or receiver.copy
                    try:
                        msg = _recv_multipart(socket, _NOBLOCK, copy, False)
                    except _Again:
                        pass
                    else:
                        count += 1
                        if receiver is not None:
                            self._run_callback(receiver.callback, msg)
                        if self._closed or (limit and count >= limit):
                            break
                if events & _POLLOUT and self._sendbuf:
                    try:
                        result = self._send_head(socket)
                    except _Again:
                        pass
                    else:
                        if result is not None:
                            count += 1
                            self._sent(result)
                            if self._closed:
                                break
        finally:
            if not self._closed:
                self._reactor.after_op()  # rule 1: we touched the socket outside dispatch
                self._maybe_drained()
        return count

    # -- closing ----------------------------------------------------------------------------

    def set_close_callback(self, callback: Callable[[], Any] | None) -> None:
        """Call ``callback()`` once, when the stream is closed."""
        if _get_running_loop() is not self._loop and self._loop.is_running():
            self._hand_off(self.set_close_callback, callback)
            return
        self._close_callback = callback

    def close(self, linger: int | None = None) -> None:
        """Stop every callback, drop unsent messages, close the socket; then the close callback.

        No receive or send callback runs after this. Idempotent. Called from another thread
        while the stream's loop runs, the stream counts as closed at once (``closed()`` is
        True, further calls raise OSError) and the close is handed to that loop, which must
        unwatch the FD before the socket closes; a callback the loop runs meanwhile finds
        the stream closed. Should the loop stop before carrying it out (asyncio runs no
        callback left at its stop), the caller closes the socket if it sees the loop stopped
        on return, the socket's ``Context.term()`` does (a plain ``zmq.Context``'s too: see
        ``closes_at_term``), and so does ``close()`` called again once the loop has stopped.
        """
        loop = self._loop
        if _get_running_loop() is not loop and loop.is_running():
            if self._closed:
                return  # handed over already (the loop's thread alone may unwatch the FD)
            self._closed = True
            receiver = self._receiver
            if receiver is not None:
                receiver.active = False  # a drain in progress delivers no more
            closer = self._closer
            # Should the loop stop before its next turn (asyncio runs no callback left at
            # its stop), the socket's context's term() carries the close out.
            self._handed_close = (linger,)
            closes_at_term(closer.context, self)
            # The user closed the stream, not its socket: no late-unregister warning when
            # the socket is closed (ctx.destroy()) before the loop carries this out.
            self._hand_off(self._close, linger, False)
            if not loop.is_running():
                # Stopped meanwhile, perhaps before that turn: no loop uses the socket now.
                self._close(linger, warn_late=False)
            return
        self._close(linger, warn_late=True)

    def finish_handed_close(self, timeout: float | None = None) -> bool:
        """Wait until a close handed to the stream's loop (see :meth:`close`) is carried out;
        carry it out here once that loop has stopped (for the socket's ``Context.term()``).
        False if ``timeout`` seconds passed first."""
        handed = self._handed_close
        if handed is None:
            return True
        return finish_when_stopped(
            self._loop, lambda: self.socket is None, partial(self._close, *handed, False), timeout
        )

    def _close_listed(self) -> None:
        """``IOLoop.close(all_fds=True)`` closes the stream; the peer does not warn there."""
        self._close(None, warn_late=False)

    def _close(self, linger: int | None, warn_late: bool) -> None:
        socket: zmq.Socket[Any] | None = self.socket
        if socket is None:  # torn down already (``_closed`` may be set by another thread)
            return
        reactor = self._reactor
        if warn_late and socket.closed and not reactor.closed:
            _warn_late_unregister(reactor.fd, stacklevel=4)
        self._closed = True
        self._sender.callback = None
        if self._receiver is not None:
            self._receiver.active = False
            self._receiver = None
        self._sendbuf.clear()
        self._handed_sends.clear()  # (no lock: a send handed off may be closing the stream)
        if self._owns_reactor:
            reactor.close()  # unwatch the FD while it is still valid
        self._closer.close(linger)  # a zmq_async socket closes the shared reactor first
        self.socket = None  # type: ignore[assignment]  # as the peer: closed() is "socket is None"
        if self._io_loop_entry is not None:
            from zmq_async.tornado._ioloop import unlist

            unlist(self)
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            self._run_callback(callback)

    def closed(self) -> bool:
        """Whether the stream is closed; closes it if its socket was closed under it.

        True at once after ``close()``, from any thread, even while the loop has still to
        carry out a close handed over by another thread.
        """
        if self._closed:
            return True
        if self.socket.closed:
            self.close()
            return True
        return False

    def stop_on_err(self) -> None:
        """Deprecated, does nothing (as in the peer)."""
        log.warning("on_err does nothing, and will be removed")

    def on_err(self, callback: Callable[..., Any]) -> None:
        """Deprecated, does nothing (as in the peer)."""
        log.warning("on_err does nothing, and will be removed")

    # -- internals --------------------------------------------------------------------------

    def _check_closed(self) -> None:
        """Raise OSError if the stream is closed."""
        if self._closed:
            raise OSError("Stream is closed")

    def _hand_off(self, method: Callable[..., Any], *args: Any) -> None:
        """Have the stream's loop call ``method(*args)``, after the calls handed off before.

        For a caller outside the loop while it runs in another thread: a zmq socket is not
        thread-safe, nor is the stream's state, so only the loop's thread touches them.
        """
        try:
            self._loop.call_soon_threadsafe(_run_handed, method, args)
        except RuntimeError:  # the loop closed meanwhile: no thread serves the stream now
            method(*args)

    def _lost_socket(self, exception: BaseException) -> None:
        """The reactor found the socket closed (ENOTSOCK) or its context terminated."""
        if self._closed:
            return
        log.warning("Got events for stream %r attached to closed socket: %s", self, exception)
        late = self._owns_reactor and self.socket.closed
        self.close()
        if late:
            # The reactor unregistered the FD after libzmq closed it, as the peer warns. From
            # the loop, not here: the reactor is still releasing its waiters.
            self._loop.call_soon(_warn_late_unregister, self._reactor.fd)

    def _released(self, reactor: Reactor) -> None:
        if self._closed:
            return
        if reactor.closed:
            self._lost_socket(zmq.ZMQError(zmq.ENOTSOCK, "socket closed"))
        else:
            log.warning("%r stopped: its socket was used on another event loop", self)

    def _run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
        except Exception:
            log.error("Uncaught exception in ZMQStream callback", exc_info=True)
        else:
            if result is not None:
                self._spawn(result)

    def _spawn(self, result: Any) -> None:
        """Run a coroutine (or other awaitable) a callback returned, logging its failure."""
        if _isawaitable(result):
            asyncio.ensure_future(result, loop=self._loop).add_done_callback(_log_failure)


def _run_handed(method: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Carry out a call another thread handed to the loop; its failure is logged."""
    try:
        method(*args)
    except Exception:
        log.error(
            "ZMQStream.%s, called from another thread, failed", method.__name__, exc_info=True
        )


def _warn_late_unregister(fd: int, stacklevel: int = 1) -> None:
    warnings.warn(
        f"Unregistering FD {fd} after closing socket. This could result in unregistering "
        "handlers for the wrong socket. "
        "Please use stream.close() instead of closing the socket directly.",
        stacklevel=stacklevel + 1,
    )


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("Uncaught exception in ZMQStream callback", exc_info=future.exception())


def _send_with_options(
    socket: zmq.Socket[Any],
    parts: Sequence[Any],
    flags: int,
    copy: bool,
    track: bool,
    options: dict[str, Any],
) -> Any:
    """``send_multipart`` with pyzmq's extra per-frame options (``routing_id``, ``group``)."""
    last = len(parts) - 1
    for index in range(last):
        _ops.send_with_options(socket, parts[index], flags | zmq.SNDMORE, copy, track, options)
    return _ops.send_with_options(socket, parts[last], flags, copy, track, options)


def _closes_on_its_loop(plain: zmq.Socket[Any], stream: ZMQStream) -> None:
    """Make ``plain.close()`` (and so its context's ``destroy()``), called from another thread
    while the stream's loop runs, close the stream on that loop, and wait for it there.

    Closed from the other thread itself, the socket could go while the loop's thread was
    inside a libzmq call on it (the stream receiving): libzmq sockets are not thread-safe,
    and that crashed the process (use after free) or failed libzmq's assertions, about one
    ``destroy()`` in 100. The stream's own close (on its loop) then closes ``plain`` through
    this hook, in the loop's thread. Costs nothing per operation: only ``plain``'s ``close``
    changes (an instance attribute); both are referred to weakly (no cycle keeps ``plain``).
    """
    stream_ref = weakref.ref(stream)

    def first(linger: int | None) -> bool:
        owner = stream_ref()
        if owner is not None and owner.socket is not None:
            loop = owner._loop
            if loop.is_running() and loop is not _get_running_loop():
                owner.close(linger)  # handed to the loop, which closes ``plain`` from there
                # Not carried out in time: its loop is blocked, out of libzmq: close here.
                return owner.finish_handed_close(HANDED_CLOSE_WAIT)
        return False

    hook_close(plain, first)


def _stream_socket(socket: Any) -> zmq.Socket[Any]:
    """The socket a stream drives and shows as ``stream.socket``: a plain ``zmq.Socket`` as
    is; a future socket (ours or the peer's) as a plain shadow, with the peer's RuntimeWarning.
    A green socket counts as plain, as the peer's ``zmq.green`` ones do for the peer's stream
    (pyzmq's ``zmq.green.eventloop`` runs the stream over them): the stream drives it with
    non-blocking calls and its own reactor.

    Raises TypeError for anything else, or a zmq_async socket of another framework.
    """
    ours = isinstance(socket, _AsyncioSocket)
    if not ours:
        if not isinstance(socket, zmq.Socket):
            raise TypeError(f"ZMQStream needs a zmq.Socket, not {type(socket).__name__}")
        module = type(socket).__module__
        if module.startswith("zmq_async.") and not module.startswith("zmq_async.green."):
            raise TypeError(
                f"ZMQStream runs on an asyncio loop; a {module} socket belongs to another "
                "framework. Use a plain zmq.Socket or a zmq_async.asyncio / zmq_async.tornado one."
            )
        if not any(cls.__module__ == "zmq._future" for cls in type(socket).__mro__):
            return socket
    # A future socket's methods return Futures: as the peer's ZMQStream, drive (and show the
    # callbacks) a plain shadow. Ours shares its reactor with the stream, so its futures still
    # work beside it; the peer's (zmq.asyncio, zmq.eventloop.future) watch the FD themselves.
    warnings.warn(
        "ZMQStream only supports the base zmq.Socket class; "
        f"{type(socket).__module__}.{type(socket).__name__} is replaced by a plain shadow "
        "(zmq.Socket(shadow=socket)). "
        + (
            "Its futures still work beside the stream."
            if ours
            else "Do not await its futures while the stream runs."
        ),
        RuntimeWarning,
        stacklevel=3,
    )
    return zmq.Socket(shadow=socket)


def _resolve_loop(io_loop: Any) -> tuple[Any, asyncio.AbstractEventLoop]:
    """``(io_loop, asyncio loop)``: what the stream reports as its loop, and what it runs on.

    Tornado is used only if the caller already imported it: a Tornado IOLoop runs on its
    ``asyncio_loop``.
    """
    if io_loop is None:
        tornado_ioloop = sys.modules.get("tornado.ioloop")
        if tornado_ioloop is not None:
            io_loop = tornado_ioloop.IOLoop.current()
        else:
            loop = asyncio._get_running_loop()
            if loop is None:
                raise RuntimeError(
                    "ZMQStream needs an event loop: create it while the loop runs, "
                    "or pass io_loop (an asyncio loop or a Tornado IOLoop)"
                )
            return loop, loop
    asyncio_loop = getattr(io_loop, "asyncio_loop", None)
    if isinstance(asyncio_loop, asyncio.AbstractEventLoop):
        return io_loop, asyncio_loop
    if isinstance(io_loop, asyncio.AbstractEventLoop):
        return io_loop, io_loop
    raise TypeError(f"io_loop must be a Tornado IOLoop or an asyncio loop, not {io_loop!r}")
