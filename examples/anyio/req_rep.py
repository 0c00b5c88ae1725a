"""REQ/REP: a client sends requests in lockstep; the server answers each one.

Run: python examples/anyio/req_rep.py [asyncio|trio]   (default: asyncio)
"""

import sys

import anyio
import zmq

import zmq_async.anyio

REQUESTS = ["hello", "ping", "bye"]


async def server(rep: zmq_async.anyio.Socket) -> None:
    for _ in REQUESTS:
        request = await rep.recv_string()
        await rep.send_string(request.upper())


async def client(req: zmq_async.anyio.Socket) -> list[str]:
    replies = []
    for request in REQUESTS:
        await req.send_string(request)
        replies.append(await req.recv_string())
    return replies


async def main() -> None:
    ctx = zmq_async.anyio.Context()
    try:
        rep = ctx.socket(zmq.REP)
        port = rep.bind_to_random_port("tcp://127.0.0.1")
        req = ctx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(server, rep)
                replies = await client(req)
        for request, reply in zip(REQUESTS, replies, strict=True):
            print(f"client sent {request!r}, got {reply!r}")
    finally:
        ctx.destroy(linger=0)
    print("req_rep: done")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
