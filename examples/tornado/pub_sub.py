"""PUB/SUB with callbacks: a PeriodicCallback publishes two topics, a SUB stream gets one.

A subscription takes a moment to reach the publisher (the "slow joiner"), so the publisher
keeps publishing until the subscriber has what it wants, then stops.

Run: python examples/tornado/pub_sub.py
"""

import asyncio

import zmq
from tornado.ioloop import IOLoop, PeriodicCallback

from zmq_async.stream import ZMQStream

WANTED = 3


async def main() -> None:
    ctx = zmq.Context()
    try:
        pub = ZMQStream(ctx.socket(zmq.PUB))
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ZMQStream(ctx.socket(zmq.SUB))
        sub.connect(f"tcp://127.0.0.1:{port}")
        sub.subscribe(b"weather")

        topics: list[str] = []
        enough = asyncio.get_running_loop().create_future()

        def on_update(msg: list[bytes]) -> None:
            topics.append(msg[0].decode())
            if len(topics) == WANTED:
                sub.stop_on_recv()
                enough.set_result(None)

        sub.on_recv(on_update)

        published = 0

        def publish() -> None:
            nonlocal published
            pub.send_multipart([b"weather", b"%d" % published])
            pub.send_multipart([b"sports", b"%d" % published])
            published += 1

        ticker = PeriodicCallback(publish, 10)  # 100 Hz
        ticker.start()
        await asyncio.wait_for(enough, timeout=5)
        ticker.stop()
        print(f"publisher sent {published} updates on each of 'weather' and 'sports'")
        print(f"subscriber got {len(topics)} updates, topics: {sorted(set(topics))}")
        pub.close(linger=0)
        sub.close(linger=0)
    finally:
        ctx.term()
    print("pub_sub: done")


if __name__ == "__main__":
    IOLoop.current().run_sync(main, timeout=10)
