"""Socket operations as plain functions ``op(socket, *args)``, the shape a Waiter runs.

They call pyzmq's backend methods directly, not the (overridden) methods of our socket
classes, and are always given NOBLOCK in ``flags`` by their callers. Multipart operations
move a whole message or nothing: see rule 4 of :mod:`zmq_async._reactor`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import zmq
from zmq.backend import Socket as _BackendSocket
from zmq.utils import jsonapi

__all__ = [
    "decoder",
    "frames",
    "json_loader",
    "recv",
    "recv_into",
    "recv_multipart",
    "send",
    "send_multipart",
    "send_with_options",
    "unpickle",
]

send = _BackendSocket.send
recv = _BackendSocket.recv
_get = _BackendSocket.get
_sugar_send = zmq.Socket.send
_RCVMORE = int(zmq.RCVMORE)
_SNDMORE = int(zmq.SNDMORE)
_FRAME_TYPES = (zmq.Frame, bytes, memoryview)


def send_with_options(
    socket: zmq.Socket[Any], data: Any, flags: int, copy: bool, track: bool, options: dict[str, Any]
) -> Any:
    """Send one frame with pyzmq's extra options (``routing_id``, ``group``)."""
    return _sugar_send(socket, data, flags, copy, track, **options)


def recv_into(socket: zmq.Socket[Any], buffer: Any, nbytes: int, flags: int) -> int:
    """Receive one frame into ``buffer``; returns the frame's size."""
    return int(_BackendSocket.recv_into(socket, buffer, nbytes=nbytes, flags=flags))


def recv_multipart(socket: zmq.Socket[Any], flags: int, copy: bool, track: bool) -> list[Any]:
    """Receive every frame of one message (all are there once the first is)."""
    parts = [recv(socket, flags, copy, track)]
    while _get(socket, _RCVMORE):
        parts.append(recv(socket, flags, copy, track))
    return parts


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


def _decode_utf8(data: bytes) -> str:
    return data.decode()


def decoder(encoding: str) -> Callable[[bytes], str]:
    """The function that decodes a received frame as ``encoding`` text."""
    if encoding in ("utf-8", "utf8"):
        return _decode_utf8
    return partial(bytes.decode, encoding=encoding)


def json_loader(options: dict[str, Any]) -> Callable[[bytes], Any]:
    """The function that decodes a received frame as JSON, with ``json.loads`` options."""
    return partial(jsonapi.loads, **options) if options else jsonapi.loads


unpickle: Callable[[bytes], Any] = pickle.loads
