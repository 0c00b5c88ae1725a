"""PUSH/PULL pipeline: a ventilator fans tasks out to workers; a sink collects the results.

Run: python examples/asyncio/push_pull.py
"""

import asyncio
import json

import zmq

import zmq_async.asyncio

TASKS = 10
WORKERS = 2


async def ventilator(push: zmq_async.asyncio.Socket) -> None:
    for n in range(TASKS):
        await push.send_json({"n": n})


async def worker(pull: zmq_async.asyncio.Socket, push: zmq_async.asyncio.Socket) -> None:
    async for frames in pull:  # yields what recv_multipart() returns
        n = json.loads(frames[0])["n"]
        await push.send_json({"n": n, "square": n * n})


async def sink(pull: zmq_async.asyncio.Socket) -> list[dict[str, int]]:
    return [await pull.recv_json() for _ in range(TASKS)]


async def main() -> None:
    ctx = zmq_async.asyncio.Context()
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
            workers.append(asyncio.create_task(worker(pull, push)))
        try:
            _, results = await asyncio.wait_for(
                asyncio.gather(ventilator(tasks_out), sink(results_in)), timeout=5
            )
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        squares = sorted(r["square"] for r in results)
        print(f"ventilator sent {TASKS} tasks to {WORKERS} workers")
        print(f"sink collected {len(results)} results: {squares}")
        print(f"sum of squares = {sum(squares)}")
    finally:
        ctx.destroy(linger=0)
    print("push_pull: done")


if __name__ == "__main__":
    asyncio.run(main())
