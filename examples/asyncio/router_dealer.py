"""ROUTER/DEALER: one asynchronous server, several clients with requests in flight at once.

The ROUTER sees each request prefixed with the sender's routing id and uses it to address
the reply; DEALER clients send several requests without waiting for each answer.

Run: python examples/asyncio/router_dealer.py
"""

import asyncio

import zmq

import zmq_async.asyncio

CLIENTS = 3
REQUESTS = 2


async def server(router: zmq_async.asyncio.Socket) -> None:
    for _ in range(CLIENTS * REQUESTS):
        routing_id, request = await router.recv_multipart()
        await router.send_multipart([routing_id, b"reply to " + request])


async def client(dealer: zmq_async.asyncio.Socket, name: str) -> list[str]:
    for i in range(REQUESTS):
        await dealer.send_string(f"{name}/{i}")  # all requests first ...
    return [await dealer.recv_string() for _ in range(REQUESTS)]  # ... then the replies


async def main() -> None:
    ctx = zmq_async.asyncio.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealers = []
        for _ in range(CLIENTS):
            dealer = ctx.socket(zmq.DEALER)
            dealer.connect(f"tcp://127.0.0.1:{port}")
            dealers.append(dealer)
        names = [f"client-{c}" for c in range(CLIENTS)]
        _, *replies = await asyncio.wait_for(
            asyncio.gather(server(router), *map(client, dealers, names)), timeout=5
        )
        for name, got in zip(names, replies, strict=True):
            print(f"{name} got {got}")
    finally:
        ctx.destroy(linger=0)
    print("router_dealer: done")


if __name__ == "__main__":
    asyncio.run(main())
