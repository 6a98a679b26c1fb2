"""How long the test suite takes on this machine: run ``python -m pytest`` in a checkout and record wall time,
outcome counts and the slowest tests, or record a log of such a run made already (``--log``, its wall time from
``/usr/bin/time -v`` or ``--seconds``).

    python benchmarks/suite/suite_time.py --label after --json R.json [-- -n 2]   # runs the suite here
    python benchmarks/suite/suite_time.py --label before --checkout /tmp/base --log before.txt \
        --time-log before_time.txt --json R.json                                     # a finished run
Several labels accumulate in one JSON file (before / after side by side).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path


def parse(log: str) -> dict:
    """Outcome counts and the slowest test phases from pytest's ``-q --durations=N`` output."""
    summary = [line for line in log.splitlines() if re.search(r"\d+ (passed|failed)", line)][-1]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped|xfailed|deselected)",
                                                summary)}
    slow = [{"seconds": float(s), "phase": p, "test": t}
            for s, p, t in re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)", log, re.M)]
    return {"counts": counts, "summary": summary.strip("= "), "slowest": slow[:15]}


def wall_seconds(time_log: str) -> float:
    """Elapsed wall time from ``/usr/bin/time -v`` output (h:mm:ss or m:ss.ss)."""
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", time_log)
    if not m:
        raise ValueError("no '/usr/bin/time -v' wall-clock line in the time log")
    parts = [float(p) for p in m.group(1).split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", required=True, help="name of this run in the JSON (before, after, ...)")
    ap.add_argument("--json", required=True, help="results file; labels already in it are kept")
    ap.add_argument("--checkout", default=".", help="the checkout whose suite runs (or ran)")
    ap.add_argument("--log", default=None, help="pytest output of a finished run instead of running it")
    ap.add_argument("--time-log", default=None, help="with --log: /usr/bin/time -v output of that run")
    ap.add_argument("--seconds", type=float, default=None, help="with --log and no --time-log: that run's wall time")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args()
    checkout = Path(args.checkout).resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True,
                            text=True).stdout.strip()
    if args.log:
        log = Path(args.log).read_text()
        if args.time_log is None and args.seconds is None:
            ap.error("--log needs --time-log or --seconds")
        seconds = wall_seconds(Path(args.time_log).read_text()) if args.time_log else args.seconds
        command = "(recorded run)"
    else:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=15", *args.pytest_args]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        log, command = done.stdout + done.stderr, " ".join(cmd[1:])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    path = Path(args.json)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.label] = {"commit": commit, "seconds": round(seconds, 1), "minutes": round(seconds / 60, 2),
                        "command": command, "pytest_args": args.pytest_args, "cpu": cpu,
                        "cores": len([1 for line in Path("/proc/cpuinfo").read_text().splitlines()
                                      if line.startswith("processor")]), **parse(log)}
    path.write_text(json.dumps(data, indent=2))
    print(f"{args.label}: {seconds / 60:.1f} min, {data[args.label]['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
