"""Orchestration: probe the contenders, run every measurement in a fresh worker, report.

Runs are interleaved (for each workload, for each repeat, every contender once) so slow drift in
the machine's speed spreads over all contenders instead of penalising whichever ran last.
"""

from __future__ import annotations

import json
import os
import platform
import site
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import zmq_async
from zmq_async._bench.layers import LAYERS, Variant, variants
from zmq_async._bench.report import WIDTH, evaluate_targets, format_report
from zmq_async._bench.results import Row
from zmq_async._bench.spec import UNITS, WORKLOADS, Params, Sample, Workload

#: ``--quick`` scales every duration and the message cap down by this factor.
QUICK_SCALE = 0.4
DEFAULT_CAP = 2_000_000
#: Seconds a probe (importing a layer) may take, whatever ``--timeout`` says.
PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class BenchOptions:
    """The ``bench`` command's settings (see ``zmq-async bench --help``)."""

    repeat: int | None = None
    quick: bool = False
    workloads: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    json_path: str | None = None
    messages: int | None = None
    duration: float | None = None
    timeout: float = 30.0
    #: Pin the workloads that ask for it (``Workload.pin``) to one CPU, where the OS allows.
    pin: bool = True
    #: Draw the results here (``.svg`` or ``.png``, see :mod:`.plot`).
    plot_path: str | None = None

    @property
    def repeats(self) -> int:
        return self.repeat if self.repeat is not None else (1 if self.quick else 3)

    def params(self, workload: Workload) -> Params:
        scale = QUICK_SCALE if self.quick else 1.0
        return Params(
            workload=workload.name,
            size=workload.size,
            frames=workload.frames,
            hwm=workload.hwm,
            duration=self.duration if self.duration is not None else workload.duration * scale,
            cap=self.messages if self.messages is not None else int(DEFAULT_CAP * scale),
            cpu=pin_cpu() if self.pin and workload.pin else None,
            transport=workload.transport,
        )


def pin_cpu() -> int | None:
    """The CPU pinned workloads run on (the highest one allowed), or None where unsupported."""
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        return None  # macOS, Windows
    return max(os.sched_getaffinity(0))


def run_bench(opts: BenchOptions, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the benchmark and print the report.

    Returns 0 if every measurement ran, 1 if any failed, 2 on bad options, 130 if interrupted.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    unknown = [name for name in opts.workloads if name not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {', '.join(unknown)}; have {', '.join(WORKLOADS)}", file=err)
        return 2
    workloads = [WORKLOADS[name] for name in opts.workloads or WORKLOADS]
    chosen = variants(list(opts.layers))
    if not chosen:
        labels = ", ".join(v.label for v in variants())
        print(f"no contender matches {', '.join(opts.layers)}; have {labels}", file=err)
        return 2
    if opts.plot_path is not None:
        from zmq_async._bench.plot import check

        problem = check(opts.plot_path)  # now, not after the run
        if problem is not None:
            print(problem, file=err)
            return 2

    started = time.monotonic()
    skipped = {v.label: reason for v in chosen if (reason := _probe(v, opts.timeout)) is not None}
    for label, reason in skipped.items():
        print(f"skipping {label}: {reason}", file=err)
    runnable = [v for v in chosen if v.label not in skipped]
    rows = {
        (w.name, v.label): Row(w, v, skipped=skipped.get(v.label))
        for w in workloads
        for v in chosen
    }

    try:
        _measure(rows, workloads, runnable, opts, err)
        interrupted = False
    except KeyboardInterrupt:  # the worker is already killed: report what ran
        err.write("interrupted\n")
        interrupted = True
    elapsed = time.monotonic() - started

    meta = _meta(opts, elapsed)
    out.write(format_report(list(rows.values()), _header(meta, opts), opts.repeats))
    out.flush()
    print(f"done in {elapsed:.1f}s", file=err)
    document = {
        "meta": meta,
        "workloads": {w.name: {**asdict(w), "params": opts.params(w).to_json()} for w in workloads},
        "results": [row.to_json() for row in rows.values()],
        "targets": [t.to_json() for t in evaluate_targets(rows.values())],
    }
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {opts.json_path}", file=err)
    if opts.plot_path:
        from zmq_async._bench.plot import draw

        try:
            draw(document, opts.plot_path)
        except ValueError as e:  # nothing was measured: the table above says why
            print(f"no chart: {e}", file=err)
        else:
            print(f"wrote {opts.plot_path}", file=err)
    if interrupted:
        return 130
    return 1 if any(row.errors for row in rows.values()) else 0


def _measure(
    rows: dict[tuple[str, str], Row],
    workloads: list[Workload],
    runnable: list[Variant],
    opts: BenchOptions,
    err: TextIO,
) -> None:
    """Fill ``rows``: for each workload and repeat, every runnable contender once."""
    total = len(workloads) * opts.repeats * len(runnable)
    done = 0
    for workload in workloads:
        request = {"params": opts.params(workload).to_json()}
        for rep in range(opts.repeats):
            for variant in runnable:
                done += 1
                err.write(
                    f"[{done}/{total}] {workload.name} {variant.label} "
                    f"run {rep + 1}/{opts.repeats} ... "
                )
                err.flush()
                row = rows[workload.name, variant.label]
                reply = _call_worker(
                    {"layer": variant.layer.name, "loop": variant.loop, **request}, opts.timeout
                )
                if reply.get("ok"):
                    row.runs.append(reply["sample"])
                    err.write(_progress_value(workload, reply["sample"]) + "\n")
                else:
                    row.errors.append(str(reply.get("error")))
                    err.write(f"FAILED: {reply.get('error')}\n")
                err.flush()


def _probe(variant: Variant, timeout: float) -> str | None:
    """``None`` if the contender can run here, else why not (it is then skipped, not failed)."""
    request = {"layer": variant.layer.name, "loop": variant.loop, "probe": True}
    reply = _call_worker(request, max(timeout, PROBE_TIMEOUT))
    return None if reply.get("ok") else str(reply.get("error"))


def _call_worker(
    request: dict[str, Any], timeout: float, module: str = "zmq_async._bench.worker"
) -> dict[str, Any]:
    """Run one worker process (``python -m module``); a timeout kills it. Returns a reply dict."""
    cmd = [sys.executable, "-m", module, json.dumps(request)]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_worker_env(),
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:g}s (worker killed)"}
    lines = proc.stdout.strip().splitlines()
    try:
        reply = json.loads(lines[-1])
    except (IndexError, ValueError):
        reply = None
    if not isinstance(reply, dict):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"worker exited {proc.returncode}: {tail}"}
    return reply


def _worker_env() -> dict[str, str]:
    """The environment plus, when running from a source tree, that tree on ``PYTHONPATH``."""
    env = dict(os.environ)
    root = str(Path(zmq_async.__file__).resolve().parent.parent)
    installed = {str(Path(p).resolve()) for p in site.getsitepackages()}
    if root not in installed:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _progress_value(workload: Workload, sample: Sample) -> str:
    if workload.metric == "latency":
        return f"median {sample['median_us']:,.1f} us, p99 {sample['p99_us']:,.1f} us"
    return f"{sample['rate']:,.0f} {UNITS[workload.metric]}"


#: Distributions whose versions a report names, when installed (the loops and the peers).
_FRAMEWORKS = ("uvloop", "tornado", "gevent", "eventlet", "anyio", "trio", "zmq-anyio")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _meta(opts: BenchOptions, elapsed: float) -> dict[str, Any]:
    import zmq  # core pyzmq only: no event loop or framework

    return {
        "zmq_async": zmq_async.__version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "uvloop": _version("uvloop"),
        "frameworks": {d: v for d in _FRAMEWORKS if (v := _version(d)) is not None},
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "argv": sys.argv,
        "options": asdict(opts),
        "repeat": opts.repeats,
        "layers": {name: asdict(layer) for name, layer in LAYERS.items()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - elapsed)),
        "elapsed_s": elapsed,
    }


def _header(meta: dict[str, Any], opts: BenchOptions) -> list[str]:
    versions = [f"pyzmq {meta['pyzmq']}", f"libzmq {meta['libzmq']}"]
    versions += [f"{dist} {version}" for dist, version in meta["frameworks"].items()]
    mode = " --quick" if opts.quick else ""
    return [
        f"zmq-async bench{mode}: {meta['python']}, {meta['platform']}, {meta['cpus']} CPUs",
        *_joined(versions, WIDTH),
        f"each row the median of {opts.repeats} run(s), each in a fresh process",
        *_pinning(opts),
        "vs peer: ratio to the layer's peer on the same loop; vs limit: ratio to plain pyzmq in",
        "  one thread: pyzmq.poller (non-blocking, a zmq.Poller) or, for reqrep, blocking pyzmq",
        "  > 1.00x means better (for latency: theirs / ours); spread: (max - min) / median",
    ]


def _pinning(opts: BenchOptions) -> list[str]:
    pinned = [w.name for w in WORKLOADS.values() if w.pin]
    cpu = pin_cpu() if opts.pin else None
    if not pinned or cpu is None:
        return []
    return [f"{', '.join(pinned)}: on CPU {cpu} alone, libzmq's I/O thread too (--no-pin: not)"]


def _joined(items: list[str], width: int) -> list[str]:
    """``items`` joined by commas into lines of at most ``width``, never splitting an item."""
    lines = [items[0]]
    for item in items[1:]:
        if len(lines[-1]) + 2 + len(item) > width:
            lines[-1] += ","
            lines.append(item)
        else:
            lines[-1] += f", {item}"
    return lines
