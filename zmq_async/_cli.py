"""The ``zmq-async`` command (also ``python -m zmq_async``).

Subcommands import their implementation only when chosen, so ``--help`` stays cheap and importing
this module pulls in no event loop or framework.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace

Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit status."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # the program's own options are not ours to parse
        return _run(argv[1:], parser)
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
    _add_run(commands)
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
        "--plot",
        dest="plot_path",
        metavar="FILE",
        help="draw a chart of the results: FILE.svg or FILE.png (needs zmq-async[plot])",
    )
    bench.add_argument(
        "--from-json",
        dest="from_json",
        metavar="PATH",
        help="with --plot: draw the results a --json PATH saved, running nothing",
    )
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
    bench.add_argument(
        "--soak",
        action="store_true",
        help="push --messages (10,000,000; --quick 1,000,000) through every contender, "
        "sampling its RSS each second, and report the RSS slope (memory must stay flat)",
    )
    bench.set_defaults(handler=_bench)


#: ``bench`` options that do something other than run the workloads: nothing to draw.
_NOT_DRAWN = {"mode": "scale", "list": "--list", "soak": "--soak"}
#: ``bench`` options that choose what to run: meaningless when re-drawing a saved run.
_RUN_OPTIONS = {
    **_NOT_DRAWN,
    "repeat": "--repeat",
    "quick": "--quick",
    "workloads": "--workloads",
    "layers": "--layers",
    "json_path": "--json",
    "messages": "--messages",
    "duration": "--duration",
    "sizes": "--sizes",
}


def _bench(args: argparse.Namespace) -> int:
    from zmq_async._bench.runner import BenchOptions, run_bench

    if args.plot_path is not None and (other := _given(args, _NOT_DRAWN)):
        return _usage_error(f"--plot draws the workloads' results; it does not go with {other[0]}")
    if args.from_json is not None:
        if args.plot_path is None:
            return _usage_error("--from-json needs --plot FILE (it only re-draws)")
        if given := _given(args, _RUN_OPTIONS):
            return _usage_error(f"--from-json re-draws a saved run: drop {', '.join(given)}")
        from zmq_async._bench.plot import redraw

        return redraw(args.from_json, args.plot_path, sys.stderr)
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
    if args.soak:
        from zmq_async._bench.soak import run_soak

        soak = BenchOptions(quick=args.quick, layers=args.layers, json_path=args.json_path)
        return run_soak(replace(soak, messages=args.messages, timeout=args.timeout))
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
            plot_path=args.plot_path,
        )
    )


def _given(args: argparse.Namespace, options: dict[str, str]) -> list[str]:
    """The flags among ``options`` (dest: flag) given on the command line (all default falsy)."""
    return [flag for dest, flag in options.items() if getattr(args, dest)]


def _usage_error(message: str) -> int:
    print(f"zmq-async bench: error: {message}", file=sys.stderr)
    return 2


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


# -- run: a whole program on zmq_async ----------------------------------------------------------

_RUN_USAGE = "zmq-async run [-h] (SCRIPT | -m MODULE) [ARGS ...]"


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Only for --help: main() hands `run` its arguments unparsed, as `python` would see them.
    commands.add_parser(
        "run",
        help="run a Python program with zmq_async.install() in force",
        usage=_RUN_USAGE,
        description="Call zmq_async.install(), then run SCRIPT or -m MODULE with ARGS as "
        "`python SCRIPT ARGS` / `python -m MODULE ARGS` would (sys.argv, __main__, sys.path[0], "
        "exit status). It also sets ZMQ_ASYNC_INSTALL=1 in the environment, so child Python "
        "processes (a Jupyter kernel started by a client, multiprocessing workers, ...) "
        "install it at start-up too, wherever zmq_async is installed.",
    )


def _run(argv: list[str], parser: argparse.ArgumentParser) -> int:
    """``zmq-async run``: install, then run the program in this process; return its status.

    The program's ``SystemExit`` and exceptions propagate, so the interpreter reports them
    (and sets the exit status) exactly as for ``python script.py``.
    """
    import os
    import runpy

    from zmq_async._install import ENV_VAR, install

    if argv[:1] in (["-h"], ["--help"]):
        parser.parse_args(["run", "--help"])  # prints the help and exits 0
    try:
        module, target, args = _program(argv)
    except ValueError as e:
        print(f"usage: {_RUN_USAGE}\nzmq-async run: error: {e}", file=sys.stderr)
        return 2
    os.environ[ENV_VAR] = "1"
    install()
    if module:
        from importlib.util import find_spec

        sys.path[0] = os.getcwd()  # what `python -m` puts first
        try:
            found = find_spec(target) is not None
        except (ImportError, ValueError):
            found = False
        if not found:  # what `python -m` says, with its status
            print(f"{sys.executable}: No module named {target}", file=sys.stderr)
            return 1
        sys.argv = [target, *args]  # runpy puts the module's file in argv[0]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return 0
    if not os.path.exists(target):
        print(f"{sys.executable}: can't open file {os.path.abspath(target)!r}", file=sys.stderr)
        return 2
    sys.argv = [target, *args]
    # What `python script.py` puts first on sys.path: the script's directory, links resolved;
    # a directory or zip file with a __main__.py is put there by run_path itself.
    if os.path.isfile(target) and not _is_zip(target):
        sys.path[0] = os.path.dirname(os.path.realpath(target))
    else:
        del sys.path[0]
    runpy.run_path(target, run_name="__main__")
    return 0


def _program(argv: list[str]) -> tuple[bool, str, list[str]]:
    """Split ``run``'s arguments as ``python`` does: (is a module, script or module, its args).

    Raises ValueError if no program is named or an option other than ``-m`` comes first.
    """
    if not argv:
        raise ValueError("a script or -m MODULE is needed")
    first, rest = argv[0], argv[1:]
    if first == "-m":
        if not rest:
            raise ValueError("-m needs a module name")
        return True, rest[0], rest[1:]
    if first.startswith("-m"):  # -mmodule, as python accepts
        return True, first[2:], rest
    if first.startswith("-") and first != "-":
        raise ValueError(f"unknown option {first}")
    return False, first, rest


def _is_zip(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)
