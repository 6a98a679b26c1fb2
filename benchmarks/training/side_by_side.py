"""Several GPU training runs side by side in one device-tool call.

A batch-8 LiteMedSAM distillation leaves an H100 mostly waiting on kernel launches and NNCF's Python, so N runs
started together take about the time of one or a little more: one call (and one machine start) instead of N. The
plan is a YAML file that travels with the tree:

    common: "--pack carried/distill --data sets --add carried/g5/base.npz --steps 750"
    runs:
      seed1: {args: "--variant 'distill_seed=1'", keep: true}     # keep: its student comes back under $OUT/NAME
      refresh: {args: "--variant 'distill_refresh_every=50'"}
    script: benchmarks/training/distill_gpu.py                 # optional, the default

    python benchmarks/training/side_by_side.py PLAN.yaml --out $OUT --deadline 540

Each run gets ``--json OUT/NAME.json`` and ``--save DIR`` (``OUT/NAME`` when kept, else a scratch folder: the
device tool returns at most 8 files, so keep at most two 23 MB students). At ``--deadline`` seconds every run
still going gets SIGINT (the scripts write their JSON after every finished variant), then SIGKILL 20 s later.
Logs stay out of ``OUT`` (its file count is capped); their tails are printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("plan", help="YAML: common, runs {NAME: {args, keep}}, script")
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, required=True, help="seconds after which every run is stopped")
    ap.add_argument("--only", nargs="*", help="run only these names of the plan")
    ap.add_argument("--tail", type=int, default=6, help="log lines printed per run")
    args = ap.parse_args()
    plan = yaml.safe_load(Path(args.plan).read_text())
    runs = {k: v for k, v in plan["runs"].items() if not args.only or k in args.only}
    if not runs:
        raise SystemExit(f"no runs selected from {args.plan}")
    kept = [k for k, v in runs.items() if v.get("keep")]
    if len(kept) > 2:
        raise SystemExit(f"keep at most two students (the device returns 8 files): {kept}")
    out, scratch = Path(args.out), Path(tempfile.mkdtemp(prefix="side_by_side_"))
    out.mkdir(parents=True, exist_ok=True)
    script = plan.get("script", "benchmarks/training/distill_gpu.py")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs, started = {}, time.monotonic()
    for name, run in runs.items():
        save = out / name if run.get("keep") else scratch / name
        cmd = [sys.executable, script, *shlex.split(plan.get("common", "")), *shlex.split(run.get("args", "")),
               "--json", str(out / f"{name}.json"), "--save", str(save)]
        log = open(scratch / f"{name}.log", "w")
        print(f"[{name}] {shlex.join(cmd)}", flush=True)
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.monotonic())
    ended: dict[str, float] = {}
    while len(ended) < len(procs):
        time.sleep(2)
        now = time.monotonic()
        for name, (proc, _, t0) in procs.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = now - t0
        if now - started > args.deadline:
            for proc, _, _ in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            grace = time.monotonic() + 20
            while time.monotonic() < grace and any(p.poll() is None for p, _, _ in procs.values()):
                time.sleep(1)
            for name, (proc, _, t0) in procs.items():
                if proc.poll() is None:
                    proc.kill()
                ended.setdefault(name, time.monotonic() - t0)
    for name, (proc, log, _) in procs.items():
        log.close()
        lines = (scratch / f"{name}.log").read_text(errors="replace").splitlines()
        print(f"=== [{name}] rc {proc.returncode}, {ended[name]:.0f} s", *lines[-args.tail:], sep="\n", flush=True)


if __name__ == "__main__":
    main()
