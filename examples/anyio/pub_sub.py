"""PUB/SUB: a publisher sends two topics; the subscriber only gets the one it asked for.

A subscription takes a moment to reach the publisher (the "slow joiner"), so the publisher
keeps publishing until the subscriber has what it wants; then the subscriber cancels it.

Run: python examples/anyio/pub_sub.py [asyncio|trio]   (default: asyncio)
"""

import sys

import anyio
import zmq

import zmq_async.anyio

WANTED = 3


async def publisher(pub: zmq_async.anyio.Socket, sent: list[int]) -> None:
    while True:  # until cancelled
        await pub.send_multipart([b"weather", b"%d" % len(sent)])
        await pub.send_multipart([b"sports", b"%d" % len(sent)])
        sent.append(1)
        await anyio.sleep(0.01)  # publish at 100 Hz


async def subscriber(sub: zmq_async.anyio.Socket) -> list[str]:
    topics = []
    for _ in range(WANTED):
        topic, _seq = await sub.recv_multipart()
        topics.append(topic.decode())
    return topics


async def main() -> None:
    ctx = zmq_async.anyio.Context()
    try:
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ctx.socket(zmq.SUB)
        sub.connect(f"tcp://127.0.0.1:{port}")
        sub.subscribe(b"weather")
        sent: list[int] = []
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(publisher, pub, sent)
                topics = await subscriber(sub)
                tg.cancel_scope.cancel()  # a cancel scope stops the publisher mid-send safely
        print(f"publisher sent {len(sent)} updates on each of 'weather' and 'sports'")
        print(f"subscriber got {len(topics)} updates, topics: {sorted(set(topics))}")
    finally:
        ctx.destroy(linger=0)
    print("pub_sub: done")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
