"""``zmq-async bench --soak``: millions of messages through every contender, RSS watched.

Each contender pushes ``--messages`` (default 10 million) 64-byte messages PUSH -> PULL over
tcp with the default HWM (so the queues stay bounded and any growth is ours), in a fresh
worker process, while the parent samples the worker's resident set size every second. The
report gives, per contender, the least-squares slope of RSS over time after a warm-up, and
MISS when the memory it predicts the run gained exceeds :data:`TOLERANCE`: memory must stay
flat however many messages go through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from zmq_async._bench.layers import Variant, variants
from zmq_async._bench.runner import BenchOptions, _probe, _worker_env
from zmq_async._bench.spec import WORKLOADS

#: Messages per contender, and with ``--quick``.
MESSAGES = 10_000_000
QUICK_MESSAGES = 1_000_000
#: Seconds between two RSS samples.
INTERVAL = 1.0
#: The first part of a run (allocator, caches and queues filling) is left out of the fit.
WARMUP_FRACTION = 0.2
#: Growth over the fitted part of a run beyond which memory is not flat (a leak of one byte a
#: message is 10 MB over a full run).
TOLERANCE = 4 * 1024 * 1024
#: The workload the messages go through: bounded queues, so memory may not grow legitimately.
WORKLOAD = WORKLOADS["push_pull_hwm"]
#: A worker is presumed hung below this rate (messages/s) and killed.
SLOWEST_RATE = 2_000

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int) -> int | None:
    """The resident set size of process ``pid``, or None where /proc is not available.

    None too for a process that is exiting (its RSS reads 0).
    """
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE or None
    except (OSError, ValueError, IndexError):
        return None


def slope(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(t, y)`` points, or None for fewer than two times."""
    n = len(points)
    if n < 2:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / var


def fitted(samples: list[tuple[float, int]]) -> list[tuple[float, float]]:
    """The samples a slope is fitted to: the run after its first :data:`WARMUP_FRACTION`."""
    if not samples:
        return []
    end = samples[-1][0]
    return [(t, float(y)) for t, y in samples if t >= end * WARMUP_FRACTION]


def measure(variant: Variant, messages: int, interval: float, timeout: float) -> dict[str, Any]:
    """One contender's soak run: the worker's reply and its RSS samples ``[(seconds, bytes)]``."""
    params = replace(
        BenchOptions().params(WORKLOAD), cap=messages, duration=1e9, cpu=None
    ).to_json()
    request = {"layer": variant.layer.name, "loop": variant.loop, "params": params}
    cmd = [sys.executable, "-m", "zmq_async._bench.worker", json.dumps(request)]
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, env=_worker_env()
        )
        start = time.monotonic()
        try:
            while True:
                try:
                    proc.wait(timeout=interval)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - start
                rss = rss_bytes(proc.pid)
                if rss is not None:
                    samples.append((elapsed, rss))
                if elapsed > timeout:
                    proc.kill()
                    proc.wait()
                    return {"ok": False, "error": f"timed out after {timeout:g}s", "rss": samples}
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        lines = out.read().strip().splitlines()
        err.seek(0)
        tail = (err.read().strip().splitlines() or ["no output"])[-1]
    try:
        reply: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        reply = {"ok": False, "error": f"worker exited {proc.returncode}: {tail}"}
    reply["rss"] = samples
    return reply


def verdict(samples: list[tuple[float, int]]) -> tuple[float | None, str]:
    """The fitted RSS slope (bytes/s) and PASS, MISS, or n/a (too few samples)."""
    points = fitted(samples)
    rate = slope(points)
    if rate is None:
        return None, "n/a"
    growth = rate * (points[-1][0] - points[0][0])
    return rate, "MISS" if growth > TOLERANCE else "PASS"


def run_soak(
    opts: BenchOptions,
    interval: float = INTERVAL,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Soak every chosen contender and print the RSS report.

    Returns 0 if every run completed with flat memory, 1 if any failed or grew, 2 on bad options.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    messages = opts.messages or (QUICK_MESSAGES if opts.quick else MESSAGES)
    chosen = variants(list(opts.layers))
    if not chosen:
        print(f"no contender matches {', '.join(opts.layers)}", file=err)
        return 2
    timeout = opts.timeout + messages / SLOWEST_RATE
    label_w = max([24, *(len(v.label) for v in chosen)])
    lines = [
        f"soak: {messages:,} x 64 B PUSH->PULL over tcp, HWM 1000, RSS every {interval:g} s;",
        f"  slope fitted after the first {WARMUP_FRACTION:.0%} of each run; MISS: it predicts "
        f"more than {TOLERANCE // 2**20} MiB of growth",
        "  "
        + "contender".ljust(label_w)
        + "".join(
            h.rjust(11) for h in ("msgs/s", "RSS MiB", "end MiB", "KiB/s", "B/1k msg", "verdict")
        ),
    ]
    results: list[dict[str, Any]] = []
    failed = False
    for variant in chosen:
        reason = _probe(variant, opts.timeout)
        if reason is not None:
            print(f"skipping {variant.label}: {reason}", file=err)
            continue
        err.write(f"soak {variant.label}: {messages:,} messages ... ")
        err.flush()
        reply = measure(variant, messages, interval, timeout)
        samples = reply["rss"]
        points = fitted(samples)
        rate, mark = verdict(samples)
        if not reply.get("ok"):
            mark = "FAILED"
        failed = failed or mark in ("MISS", "FAILED")
        sample = reply.get("sample") or {}
        msgs_per_s = sample.get("rate", 0.0)
        err.write(f"{mark} ({reply.get('error', '')})\n" if mark == "FAILED" else f"{mark}\n")
        cells = [
            f"{msgs_per_s:,.0f}",
            f"{points[0][1] / 2**20:.1f}" if points else "-",
            f"{points[-1][1] / 2**20:.1f}" if points else "-",
            "-" if rate is None else f"{rate / 1024:+.2f}",
            "-" if rate is None or not msgs_per_s else f"{rate / msgs_per_s * 1000:+.2f}",
            mark,
        ]
        lines.append("  " + variant.label.ljust(label_w) + "".join(c.rjust(11) for c in cells))
        results.append(
            {"label": variant.label, "verdict": mark, "slope_bytes_per_s": rate, **reply}
        )
    out.write("\n".join(lines) + "\n")
    out.flush()
    if opts.json_path:
        document = {"messages": messages, "interval": interval, "results": results}
        Path(opts.json_path).write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failed else 0
