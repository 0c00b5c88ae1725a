"""ROUTER/DEALER: one asynchronous server, several clients with requests in flight at once.

The ROUTER sees each request prefixed with the sender's routing id and uses it to address
the reply; DEALER clients send several requests without waiting for each answer.

Run: python examples/anyio/router_dealer.py [asyncio|trio]   (default: asyncio)
"""

import sys

import anyio
import zmq

import zmq_async.anyio

CLIENTS = 3
REQUESTS = 2


async def server(router: zmq_async.anyio.Socket) -> None:
    for _ in range(CLIENTS * REQUESTS):
        routing_id, request = await router.recv_multipart()
        await router.send_multipart([routing_id, b"reply to " + request])


async def client(dealer: zmq_async.anyio.Socket, name: str, replies: dict[str, list[str]]) -> None:
    async with dealer:  # closes it when the client is done
        for i in range(REQUESTS):
            await dealer.send_string(f"{name}/{i}")  # all requests first ...
        replies[name] = [await dealer.recv_string() for _ in range(REQUESTS)]  # ... then replies


async def main() -> None:
    ctx = zmq_async.anyio.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        names = [f"client-{c}" for c in range(CLIENTS)]
        replies: dict[str, list[str]] = {}
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(server, router)
                for name in names:
                    dealer = ctx.socket(zmq.DEALER)
                    dealer.connect(f"tcp://127.0.0.1:{port}")
                    tg.start_soon(client, dealer, name, replies)
        for name in names:
            print(f"{name} got {replies[name]}")
    finally:
        ctx.destroy(linger=0)
    print("router_dealer: done")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
