"""ROUTER/DEALER: one server, several clients with requests in flight at once.

The ROUTER sees each request prefixed with the sender's routing id and uses it to address
the reply; DEALER clients send several requests without waiting for each answer.

Run: python examples/gevent/router_dealer.py
"""

import gevent

import zmq_async.green as zmq

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
        with gevent.Timeout(5):
            clients = [gevent.spawn(client, d, n) for d, n in zip(dealers, names, strict=True)]
            gevent.joinall([gevent.spawn(server, router), *clients], raise_error=True)
        for name, greenlet in zip(names, clients, strict=True):
            print(f"{name} got {greenlet.value}")
    finally:
        ctx.destroy(linger=0)
    print("router_dealer: done")


if __name__ == "__main__":
    main()
