"""PUB/SUB: a publisher sends two topics; the subscriber only gets the one it asked for.

A subscription takes a moment to reach the publisher (the "slow joiner"), so the publisher
keeps publishing until the subscriber has what it wants, then stops.

Run: python examples/asyncio/pub_sub.py
"""

import asyncio

import zmq

import zmq_async.asyncio

WANTED = 3


async def publisher(pub: zmq_async.asyncio.Socket, stop: asyncio.Event) -> int:
    seq = 0
    while not stop.is_set():
        await pub.send_multipart([b"weather", b"%d" % seq])
        await pub.send_multipart([b"sports", b"%d" % seq])
        seq += 1
        await asyncio.sleep(0.01)  # publish at 100 Hz
    return seq


async def subscriber(sub: zmq_async.asyncio.Socket, stop: asyncio.Event) -> list[str]:
    topics = []
    for _ in range(WANTED):
        topic, _seq = await sub.recv_multipart()
        topics.append(topic.decode())
    stop.set()
    return topics


async def main() -> None:
    ctx = zmq_async.asyncio.Context()
    try:
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ctx.socket(zmq.SUB)
        sub.connect(f"tcp://127.0.0.1:{port}")
        sub.subscribe(b"weather")
        stop = asyncio.Event()
        published, topics = await asyncio.wait_for(
            asyncio.gather(publisher(pub, stop), subscriber(sub, stop)), timeout=5
        )
        print(f"publisher sent {published} updates on each of 'weather' and 'sports'")
        print(f"subscriber got {len(topics)} updates, topics: {sorted(set(topics))}")
    finally:
        ctx.destroy(linger=0)
    print("pub_sub: done")


if __name__ == "__main__":
    asyncio.run(main())
