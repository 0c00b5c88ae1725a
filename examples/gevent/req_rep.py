"""REQ/REP: a client sends requests in lockstep; the server answers each one.

Run: python examples/gevent/req_rep.py
"""

import gevent

import zmq_async.green as zmq

REQUESTS = ["hello", "ping", "bye"]


def server(rep: zmq.Socket) -> None:
    for _ in REQUESTS:
        request = rep.recv_string()  # blocks this greenlet only
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
        with gevent.Timeout(5):
            greenlets = [gevent.spawn(server, rep), gevent.spawn(client, req)]
            gevent.joinall(greenlets, raise_error=True)
        for request, reply in zip(REQUESTS, greenlets[1].value, strict=True):
            print(f"client sent {request!r}, got {reply!r}")
    finally:
        ctx.destroy(linger=0)
    print("req_rep: done")


if __name__ == "__main__":
    main()
