"""Socket operations as plain functions ``op(socket, *args)``, the shape a Waiter runs.

They call pyzmq's backend methods directly, not the (overridden) methods of our socket
classes, and are always given NOBLOCK in ``flags`` by their callers. Multipart operations
move a whole message or nothing: see rule 4 of :mod:`zmq_async._reactor`.
"""

from __future__ import annotations

import pickle
import struct
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket
from zmq.utils import jsonapi

__all__ = [
    "RECEIVES",
    "copy_into",
    "decoder",
    "deserializer",
    "frames",
    "given_frames",
    "into_view",
    "json_loader",
    "poll_flags",
    "poll_timeout",
    "recv",
    "recv_into",
    "recv_more",
    "recv_multipart",
    "send",
    "send_multipart",
    "send_with_options",
    "take_given",
    "unpickle",
]

send = _BackendSocket.send
recv = _BackendSocket.recv
_get = _BackendSocket.get
_sugar_send = zmq.Socket.send
_RCVMORE = int(zmq.RCVMORE)
_SNDMORE = int(zmq.SNDMORE)
_FRAME_TYPES = (zmq.Frame, bytes, memoryview)
_C_LONG_MAX = 2 ** (8 * struct.calcsize("l") - 1) - 1


def send_with_options(
    socket: zmq.Socket[Any], data: Any, flags: int, copy: bool, track: bool, options: dict[str, Any]
) -> Any:
    """Send one frame with pyzmq's extra options (``routing_id``, ``group``)."""
    return _sugar_send(socket, data, flags, copy, track, **options)


def recv_into(socket: zmq.Socket[Any], buffer: Any, nbytes: int, flags: int) -> int:
    """Receive one frame into ``buffer``; returns the frame's size."""
    return int(_BackendSocket.recv_into(socket, buffer, nbytes=nbytes, flags=flags))


def recv_more(socket: zmq.Socket[Any], flags: int, copy: bool, track: bool) -> tuple[Any, bool]:
    """Receive one frame, and whether more frames of its message follow (``RCVMORE``)."""
    frame = recv(socket, flags, copy, track)
    return frame, bool(_get(socket, _RCVMORE))


def recv_multipart(socket: zmq.Socket[Any], flags: int, copy: bool, track: bool) -> list[Any]:
    """Receive every frame of one message (all are there once the first is)."""
    parts = [recv(socket, flags, copy, track)]
    while _get(socket, _RCVMORE):
        parts.append(recv(socket, flags, copy, track))
    return parts


def take_given(
    op: Callable[..., Any] | None,
    given: deque[tuple[Any, bool]],
    socket: zmq.Socket[Any],
    args: Any,
) -> Any:
    """Run the receive ``op(socket, *args)`` on frames given back (``(frame, more)``, oldest
    first) instead of the socket: they came out of it before anything it still holds.

    A multipart receive whose message goes on in the socket takes the rest from there (libzmq
    holds every frame of a message once it delivered the first).
    """
    if op is recv_multipart:
        flags, copy, track = args
        parts = []
        while given:
            frame, more = given.popleft()
            parts.append(_as_copied(frame, copy))
            if not more:
                return parts
        return parts + recv_multipart(socket, flags, copy, track)
    frame, more = given.popleft()
    if op is recv_into:
        buffer, nbytes, _ = args
        return copy_into(buffer, nbytes, frame)
    copied = _as_copied(frame, args[1])
    return (copied, more) if op is recv_more else copied


def given_frames(op: Callable[..., Any], result: Any) -> list[tuple[Any, bool]] | None:
    """What ``op`` received (``result``) as frames to give back (see :func:`take_given`);
    None for an operation whose frames are not kept (``recv_into``: copied into a buffer)."""
    if op is recv_more:
        return [result]
    if op is recv_multipart:
        return [(part, True) for part in result[:-1]] + [(result[-1], False)]
    return None


def copy_into(buffer: Any, nbytes: int, frame: Any) -> int:
    """``recv_into`` from a frame already received: copy what fits, return the frame's size.

    Raises what ``recv_into`` raises for a bad buffer (see :func:`into_view`).
    """
    view = into_view(buffer, nbytes)
    data = memoryview(frame.buffer if isinstance(frame, zmq.Frame) else frame).cast("B")
    size = min(nbytes or len(view), len(data))
    view[:size] = data[:size]
    return len(data)


def into_view(buffer: Any, nbytes: int) -> memoryview:
    """``buffer`` as bytes to receive into, checked as pyzmq's ``recv_into`` checks it before
    it receives: TypeError (no buffer), BufferError (read-only, not contiguous), ValueError
    (``nbytes`` negative or beyond the buffer)."""
    view = memoryview(buffer)
    if view.readonly:
        raise BufferError("memoryview: underlying buffer is not writable")
    if not view.c_contiguous:
        raise BufferError("memoryview: underlying buffer is not contiguous")
    view = view.cast("B")
    if nbytes < 0 or nbytes > len(view):
        raise ValueError(f"nbytes={nbytes} too big for memoryview of {len(view)}B")
    return view


def _as_copied(frame: Any, copy: bool) -> Any:
    """A received frame as a receive with ``copy`` returns it: bytes, or a ``zmq.Frame``."""
    if copy:
        return frame.bytes if isinstance(frame, zmq.Frame) else frame
    return frame if isinstance(frame, zmq.Frame) else zmq.Frame(frame)


def send_multipart(
    socket: zmq.Socket[Any], parts: Sequence[Any], flags: int, copy: bool, track: bool
) -> Any:
    """Send every frame of one message (libzmq accepts them all once it took the first)."""
    last = len(parts) - 1
    more = flags | _SNDMORE
    for index in range(last):
        send(socket, parts[index], more, copy, track)
    return send(socket, parts[last], flags, copy, track)


def frames(msg_parts: Any) -> Sequence[Any]:
    """Check a multipart message before any frame is sent, so a bad one sends nothing.

    Raises TypeError for a frame without the buffer interface (as pyzmq does), and
    IndexError for an empty message.
    """
    parts = msg_parts if isinstance(msg_parts, (list, tuple)) else list(msg_parts)
    if not parts:
        raise IndexError("send_multipart needs at least one frame")
    for index, part in enumerate(parts):
        if isinstance(part, _FRAME_TYPES):
            continue
        try:
            memoryview(part)
        except TypeError:
            text = repr(part)
            text = text if len(text) <= 32 else text[:32] + "..."
            raise TypeError(
                f"Frame {index} ({text}) does not support the buffer interface."
            ) from None
    return parts


def poll_timeout(timeout: float | None) -> float | None:
    """A poll ``timeout`` in ms as the reactor's seconds; None (no limit) if None or negative.

    Raises what ``zmq.Poller.poll`` raises for a bad one, at once: TypeError (not a number),
    ValueError (NaN), OverflowError (beyond a C long).
    """
    if timeout is None or timeout < 0:
        return None
    _c_long(int(timeout))
    return timeout / 1000


def poll_flags(flags: int) -> int:
    """A socket poll's ``flags``, as a plain int; raises OverflowError as ``zmq.Poller.poll``
    does for a huge one (which would otherwise wait for ever on events no socket has).

    A plain int, so that ``poll()`` answers one (``EVENTS & flags``), as the peers do, not
    the ``zmq.PollEvent`` of the default ``flags=zmq.POLLIN``.
    """
    if isinstance(flags, int):
        _c_long(flags)
        flags = int(flags)
    return flags


def _c_long(value: int) -> None:
    if not -_C_LONG_MAX - 1 <= value <= _C_LONG_MAX:
        raise OverflowError("Python int too large to convert to C long")


def _decode_utf8(data: bytes) -> str:
    return data.decode()


def decoder(encoding: str) -> Callable[[bytes], str]:
    """The function that decodes a received frame as ``encoding`` text."""
    if encoding in ("utf-8", "utf8"):
        return _decode_utf8
    return partial(bytes.decode, encoding=encoding)


def deserializer(deserialize: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    """``recv_serialized``'s ``deserialize``, checked before anything is received.

    Raises TypeError if it is not callable (pyzmq raises it after taking the message; a
    waiter's ``post`` of None would return the frames undecoded).
    """
    if not callable(deserialize):
        raise TypeError(f"'{type(deserialize).__name__}' object is not callable")
    return deserialize


def json_loader(options: dict[str, Any]) -> Callable[[bytes], Any]:
    """The function that decodes a received frame as JSON, with ``json.loads`` options."""
    return partial(jsonapi.loads, **options) if options else jsonapi.loads


unpickle: Callable[[bytes], Any] = pickle.loads

#: The receive operations that can take frames given back (:func:`take_given`).
RECEIVES = frozenset({recv, recv_more, recv_multipart, recv_into})
