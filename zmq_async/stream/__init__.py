"""Callback-style ZeroMQ: a drop-in for ``zmq.eventloop.zmqstream``.

Change ``from zmq.eventloop.zmqstream import ZMQStream`` to
``from zmq_async.stream import ZMQStream`` and keep the rest::

    stream = ZMQStream(ctx.socket(zmq.ROUTER))
    stream.bind("tcp://127.0.0.1:5555")
    stream.on_recv(stream.send_multipart)     # an echo server

Runs on Tornado's IOLoop or on a plain asyncio loop; importing it does not import Tornado.
"""

from zmq_async.stream._stream import SendQueueFull, ZMQStream

__all__ = ["SendQueueFull", "ZMQStream"]
