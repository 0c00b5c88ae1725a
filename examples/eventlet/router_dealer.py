"""ROUTER/DEALER: one server, several clients with requests in flight at once.

The ROUTER sees each request prefixed with the sender's routing id and uses it to address
the reply; DEALER clients send several requests without waiting for each answer.

Run: python examples/eventlet/router_dealer.py
"""

import eventlet

import zmq_async.green.eventlet as zmq

CLIENTS = 3
REQUESTS = 2


def server(router: zmq.Socket) -> None:
    for _ in range(CLIENTS * REQUESTS):
        routing_id, request = router.recv_multipart()
        router.send_multipart([routing_id, b"reply to " + request])


def client(dealer: zmq.Socket, name: str) -> list[str]:
    for i in range(REQUESTS):
        dealer.send_string(f"{name}/{i}")  # all requests first ...
    return [dealer.recv_string() for _ in range(REQUESTS)]  # ... then the replies


def main() -> None:
    ctx = zmq.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealers = []
        for _ in range(CLIENTS):
            dealer = ctx.socket(zmq.DEALER)
            dealer.connect(f"tcp://127.0.0.1:{port}")
            dealers.append(dealer)
        names = [f"client-{c}" for c in range(CLIENTS)]
        with eventlet.Timeout(5):
            clients = [eventlet.spawn(client, d, n) for d, n in zip(dealers, names, strict=True)]
            serving = eventlet.spawn(server, router)
            replies = [thread.wait() for thread in clients]
            serving.wait()
        for name, got in zip(names, replies, strict=True):
            print(f"{name} got {got}")
    finally:
        ctx.destroy(linger=0)
    print("router_dealer: done")


if __name__ == "__main__":
    main()
