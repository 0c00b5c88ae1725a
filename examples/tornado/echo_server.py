"""An echo server in one line: a ROUTER ZMQStream sends every message back with on_recv.

The client is a future-returning ``zmq_async.tornado`` DEALER socket, awaited on Tornado's
IOLoop; the server's stream shares the same context.

Run: python examples/tornado/echo_server.py
"""

import zmq
from tornado.ioloop import IOLoop

import zmq_async.tornado
from zmq_async.tornado import ZMQStream


async def main() -> None:
    ctx = zmq_async.tornado.Context()
    try:
        # A stream drives a plain zmq.Socket (a future socket would be shadowed, with a warning).
        server = ZMQStream(ctx.socket(zmq.ROUTER, socket_class=zmq.Socket))
        port = server.bind_to_random_port("tcp://127.0.0.1")
        # A ROUTER receives [client identity, request]; sending it back answers that client.
        server.on_recv(server.send_multipart)

        client = ctx.socket(zmq.DEALER)
        client.connect(f"tcp://127.0.0.1:{port}")
        for word in ("hello", "ping", "bye"):
            await client.send_string(word)
            reply = await client.recv_string()
            print(f"client sent {word!r}, got {reply!r}")
        server.close()
        client.close()
    finally:
        ctx.destroy(linger=0)
    print("echo_server: done")


if __name__ == "__main__":
    IOLoop.current().run_sync(main, timeout=10)
