"""PUSH/PULL pipeline: a ventilator fans tasks out to workers; a sink collects the results.

Run: python examples/eventlet/push_pull.py
"""

import eventlet

import zmq_async.green.eventlet as zmq

TASKS = 10
WORKERS = 2


def ventilator(push: zmq.Socket) -> None:
    for n in range(TASKS):
        push.send_json({"n": n})


def worker(pull: zmq.Socket, push: zmq.Socket) -> None:
    while True:  # until killed
        n = pull.recv_json()["n"]
        push.send_json({"n": n, "square": n * n})


def sink(pull: zmq.Socket) -> list[dict[str, int]]:
    return [pull.recv_json() for _ in range(TASKS)]


def main() -> None:
    ctx = zmq.Context()
    try:
        tasks_out = ctx.socket(zmq.PUSH)
        tasks_port = tasks_out.bind_to_random_port("tcp://127.0.0.1")
        results_in = ctx.socket(zmq.PULL)
        results_port = results_in.bind_to_random_port("tcp://127.0.0.1")
        workers = []
        for _ in range(WORKERS):
            pull = ctx.socket(zmq.PULL)
            pull.connect(f"tcp://127.0.0.1:{tasks_port}")
            push = ctx.socket(zmq.PUSH)
            push.connect(f"tcp://127.0.0.1:{results_port}")
            workers.append(eventlet.spawn(worker, pull, push))
        try:
            with eventlet.Timeout(5):
                vent, collect = (
                    eventlet.spawn(ventilator, tasks_out),
                    eventlet.spawn(sink, results_in),
                )
                vent.wait()
                results = collect.wait()
        finally:
            for thread in workers:
                thread.kill()  # a worker blocked in recv just stops: nothing is lost
        squares = sorted(r["square"] for r in results)
        print(f"ventilator sent {TASKS} tasks to {WORKERS} workers")
        print(f"sink collected {len(results)} results: {squares}")
        print(f"sum of squares = {sum(squares)}")
    finally:
        ctx.destroy(linger=0)
    print("push_pull: done")


if __name__ == "__main__":
    main()
