"""REQ/REP: a client sends requests in lockstep; the server answers each one.

Run: python examples/eventlet/req_rep.py
"""

import eventlet

import zmq_async.green.eventlet as zmq

REQUESTS = ["hello", "ping", "bye"]


def server(rep: zmq.Socket) -> None:
    for _ in REQUESTS:
        request = rep.recv_string()  # blocks this green thread only
        rep.send_string(request.upper())


def client(req: zmq.Socket) -> list[str]:
    replies = []
    for request in REQUESTS:
        req.send_string(request)
        replies.append(req.recv_string())
    return replies


def main() -> None:
    ctx = zmq.Context()
    try:
        rep = ctx.socket(zmq.REP)
        port = rep.bind_to_random_port("tcp://127.0.0.1")
        req = ctx.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{port}")
        with eventlet.Timeout(5):
            threads = [eventlet.spawn(server, rep), eventlet.spawn(client, req)]
            _, replies = [thread.wait() for thread in threads]
        for request, reply in zip(REQUESTS, replies, strict=True):
            print(f"client sent {request!r}, got {reply!r}")
    finally:
        ctx.destroy(linger=0)
    print("req_rep: done")


if __name__ == "__main__":
    main()
