"""Callback-style ZeroMQ: a drop-in for ``zmq.eventloop.zmqstream``.

Change ``from zmq.eventloop.zmqstream import ZMQStream`` to
``from zmq_async.stream import ZMQStream`` and keep the rest::

    stream = ZMQStream(ctx.socket(zmq.ROUTER))
    stream.bind("tcp://127.0.0.1:5555")
    stream.on_recv(stream.send_multipart)     # an echo server

Runs on Tornado's IOLoop or on a plain asyncio loop; importing it does not import Tornado.
"""

from typing import Any

from zmq_async.stream import _stream
from zmq_async.stream._stream import SendQueueFull, ZMQStream

#: The logger callback errors go to ("zmq_async.stream"). The peer module has ``gen_log`` too
#: (Tornado's "tornado.general"), so after ``import zmq_async.stream as zmqstream`` code that
#: captures ``zmqstream.gen_log`` records keeps working.
gen_log = _stream.log

__all__ = ["SendQueueFull", "ZMQStream"]


def __getattr__(name: str) -> Any:
    """``IOLoop``: Tornado's, as ``zmq.eventloop.zmqstream.IOLoop`` (``IOLoop.instance()``)."""
    from zmq_async.tornado._ioloop import peer_attribute  # (zmq_async.tornado imports us)

    return peer_attribute(__name__, name)
