"""REQ/REP: a client sends requests in lockstep; the server answers each one.

Run: python examples/asyncio/req_rep.py
"""

import asyncio

import zmq

import zmq_async.asyncio

REQUESTS = ["hello", "ping", "bye"]


async def server(rep: zmq_async.asyncio.Socket) -> None:
    for _ in REQUESTS:
        request = await rep.recv_string()
        await rep.send_string(request.upper())


async def client(req: zmq_async.asyncio.Socket) -> list[str]:
    replies = []
    for request in REQUESTS:
        await req.send_string(request)
        replies.append(await req.recv_string())
    return replies


async def main() -> None:
    ctx = zmq_async.asyncio.Context()
    try:
        rep = ctx.socket(zmq.REP)
        port = rep.bind_to_random_port("tcp://127.0.0.1")
        req = ctx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        _, replies = await asyncio.wait_for(asyncio.gather(server(rep), client(req)), timeout=5)
        for request, reply in zip(REQUESTS, replies, strict=True):
            print(f"client sent {request!r}, got {reply!r}")
    finally:
        ctx.destroy(linger=0)
    print("req_rep: done")


if __name__ == "__main__":
    asyncio.run(main())
