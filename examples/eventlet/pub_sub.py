"""PUB/SUB: a publisher sends two topics; the subscriber only gets the one it asked for.

A subscription takes a moment to reach the publisher (the "slow joiner"), so the publisher
keeps publishing until the subscriber has what it wants, then stops.

Run: python examples/eventlet/pub_sub.py
"""

import eventlet
import eventlet.event

import zmq_async.green.eventlet as zmq

WANTED = 3


def publisher(pub: zmq.Socket, stop: eventlet.event.Event) -> int:
    seq = 0
    while not stop.ready():
        pub.send_multipart([b"weather", b"%d" % seq])
        pub.send_multipart([b"sports", b"%d" % seq])
        seq += 1
        eventlet.sleep(0.01)  # publish at 100 Hz
    return seq


def subscriber(sub: zmq.Socket, stop: eventlet.event.Event) -> list[str]:
    topics = []
    for _ in range(WANTED):
        topic, _seq = sub.recv_multipart()
        topics.append(topic.decode())
    stop.send()
    return topics


def main() -> None:
    ctx = zmq.Context()
    try:
        pub = ctx.socket(zmq.PUB)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        sub = ctx.socket(zmq.SUB)
        sub.connect(f"tcp://127.0.0.1:{port}")
        sub.subscribe(b"weather")
        stop = eventlet.event.Event()
        with eventlet.Timeout(5):
            pub_g, sub_g = (
                eventlet.spawn(publisher, pub, stop),
                eventlet.spawn(subscriber, sub, stop),
            )
            published, topics = pub_g.wait(), sub_g.wait()
        print(f"publisher sent {published} updates on each of 'weather' and 'sports'")
        print(f"subscriber got {len(topics)} updates, topics: {sorted(set(topics))}")
    finally:
        ctx.destroy(linger=0)
    print("pub_sub: done")


if __name__ == "__main__":
    main()
