"""The ``zmq-async`` command (also ``python -m zmq_async``).

Subcommands import their implementation only when chosen, so ``--help`` stays cheap and importing
this module pulls in no event loop or framework.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zmq-async", description="ZeroMQ for Python concurrency frameworks."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_bench(commands)
    return parser


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="compare zmq_async with pyzmq and zmq.asyncio",
        description="Run the benchmark workloads for every contender, each measurement in a fresh "
        "process, and print a table of medians and ratios.",
    )
    bench.add_argument("--repeat", type=_positive(int), metavar="N", help="runs per row (3)")
    bench.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repeat, 2/5 of the durations and cap"
    )
    bench.add_argument(
        "--workloads", type=_names, default=(), metavar="A,B", help="only these workloads"
    )
    bench.add_argument(
        "--layers",
        type=_names,
        default=(),
        metavar="X,Y",
        help="only contenders whose label (e.g. zmq.asyncio/uvloop) contains one of these",
    )
    bench.add_argument("--json", dest="json_path", metavar="PATH", help="write all results here")
    bench.add_argument(
        "--messages",
        type=_positive(int),
        metavar="N",
        help="cap on messages / round trips / requests per run (default 2,000,000)",
    )
    bench.add_argument(
        "--duration",
        type=_positive(float),
        metavar="S",
        help="seconds of sending per run, for every workload (default: per workload)",
    )
    bench.add_argument(
        "--timeout",
        type=_positive(float),
        default=30.0,
        metavar="S",
        help="kill a worker after this many seconds and report the run as failed (30)",
    )
    bench.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="run the latency workload unpinned (default: on one CPU, see --list)",
    )
    bench.add_argument("--list", action="store_true", help="list workloads and contenders")
    bench.add_argument(
        "mode",
        nargs="?",
        choices=("scale",),
        help="scale: idle CPU, wake-up, req/rep and throughput at N = 1 .. 10,000 sockets",
    )
    bench.add_argument(
        "--sizes",
        type=_sizes,
        default=(),
        metavar="N,M",
        help="scale: only these numbers of sockets",
    )
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from zmq_async._bench.runner import BenchOptions, run_bench

    if args.mode == "scale":
        from zmq_async._bench.scale import ScaleOptions, run_scale

        return run_scale(
            ScaleOptions(args.quick, args.sizes, args.layers, args.json_path, args.timeout * 10)
        )

    if args.list:
        from zmq_async._bench.layers import variants
        from zmq_async._bench.spec import WORKLOADS

        for w in WORKLOADS.values():
            pinned = " (pinned to one CPU)" if w.pin else ""
            print(f"workload  {w.name:<15} {w.title}{pinned}")
        rows = variants()
        width = max(len(v.label) for v in rows)
        for v in rows:
            print(f"contender {v.label:<{width}}  {v.layer.role}, drives {v.layer.target}")
        return 0
    return run_bench(
        BenchOptions(
            repeat=args.repeat,
            quick=args.quick,
            workloads=args.workloads,
            layers=args.layers,
            json_path=args.json_path,
            messages=args.messages,
            duration=args.duration,
            timeout=args.timeout,
            pin=args.pin,
        )
    )


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(_positive(int)(name) for name in _names(text))  # type: ignore[misc]


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _positive(kind: Callable[[str], int | float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse
