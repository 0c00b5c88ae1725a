"""PUSH/PULL pipeline: a ventilator fans tasks out to workers; a sink collects the results.

Workers iterate their socket with ``async for`` and stop when it is closed.

Run: python examples/anyio/push_pull.py [asyncio|trio]   (default: asyncio)
"""

import json
import sys

import anyio
import zmq

import zmq_async.anyio

TASKS = 10
WORKERS = 2


async def ventilator(push: zmq_async.anyio.Socket) -> None:
    for n in range(TASKS):
        await push.send_json({"n": n})


async def worker(pull: zmq_async.anyio.Socket, push: zmq_async.anyio.Socket) -> None:
    async with push:  # closes it when the worker ends
        async for frames in pull:  # yields what recv_multipart() returns; ends when pull closes
            n = json.loads(frames[0])["n"]
            await push.send_json({"n": n, "square": n * n})


async def main() -> None:
    ctx = zmq_async.anyio.Context()
    try:
        tasks_out = ctx.socket(zmq.PUSH)
        tasks_port = tasks_out.bind_to_random_port("tcp://127.0.0.1")
        results_in = ctx.socket(zmq.PULL)
        results_port = results_in.bind_to_random_port("tcp://127.0.0.1")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                pulls = []
                for _ in range(WORKERS):
                    pull = ctx.socket(zmq.PULL)
                    pull.connect(f"tcp://127.0.0.1:{tasks_port}")
                    push = ctx.socket(zmq.PUSH)
                    push.connect(f"tcp://127.0.0.1:{results_port}")
                    pulls.append(pull)
                    tg.start_soon(worker, pull, push)
                await ventilator(tasks_out)
                results = [await results_in.recv_json() for _ in range(TASKS)]
                for pull in pulls:
                    pull.close()  # ends each worker's ``async for``
        squares = sorted(r["square"] for r in results)
        print(f"ventilator sent {TASKS} tasks to {WORKERS} workers")
        print(f"sink collected {len(results)} results: {squares}")
        print(f"sum of squares = {sum(squares)}")
    finally:
        ctx.destroy(linger=0)
    print("push_pull: done")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
