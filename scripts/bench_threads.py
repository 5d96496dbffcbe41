"""CPU threads: training speed alone and with runs side by side, per thread setting.

Starts ``--runs`` ``molgan train`` processes at once (the default recipe, eager, on the CPU)
with the same thread setting, waits for them, and reads each run's steps per second from its
``metrics.jsonl`` (from the first logged step to the last, so start-up and the first steps
are left out). Settings: ``auto`` (molgan's default: :class:`molgan.threads.ThreadPolicy`), or
a fixed count (``--threads N``; N = the core count is torch's own default). Configurations
alternate within each repeat, so all see the same machine; prints one JSON line per run.

    python scripts/bench_threads.py --settings auto 2 1 --runs 1 2 --steps 150 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def steps_per_second(metrics: Path) -> float:
    """Steps per second between the first and the last logged step of a run."""
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    logged = [r for r in records if "seconds" in r and "step" in r]
    if len(logged) < 2:
        raise RuntimeError(f"{metrics}: fewer than two logged steps")
    first, last = logged[0], logged[-1]
    return (last["step"] - first["step"]) / (last["seconds"] - first["seconds"])


def run_together(setting: str, runs: int, steps: int, data: str, workdir: Path,
                 extra: list[str]) -> list[dict]:
    """Starts ``runs`` trainings at once with one thread setting; one record per run."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    processes = []
    for index in range(runs):
        out = workdir / f"{setting}-x{runs}-{index}-{time.monotonic_ns()}"
        command = [sys.executable, "-m", "molgan", "train", "--data", data, "--steps", str(steps),
                   "--out", str(out), "--log-every", "10", "--eval-every", "1000000",
                   "--ckpt-every", "1000000", "--seed", str(index), *extra]
        if setting != "auto":
            command += ["--threads", setting]
        processes.append((out, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE, text=True)))
    records = []
    for out, process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"molgan train failed ({process.returncode}):\n{stderr[-2000:]}")
        chosen = [line.strip() for line in stderr.splitlines() if "CPU thread" in line]
        records.append({"setting": setting, "runs_together": runs, "steps": steps,
                        "steps_per_s": round(steps_per_second(out / "metrics.jsonl"), 3),
                        "thread_choices": chosen})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["auto", str(os.cpu_count()), "1"],
                        help="auto, or a fixed thread count")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2],
                        help="how many trainings run at once")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default="qm9")
    parser.add_argument("--json", default=None, help="append the JSON lines here")
    parser.add_argument("extra", nargs="*", help="more `molgan train` flags, after --")
    args = parser.parse_args()
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for runs in args.runs:
                for setting in args.settings:
                    for record in run_together(setting, runs, args.steps, args.data, Path(tmp),
                                               args.extra):
                        results.setdefault((setting, runs), []).append(record["steps_per_s"])
                        line = json.dumps(record)
                        print(line, flush=True)
                        if args.json:
                            with open(args.json, "a") as handle:
                                handle.write(line + "\n")
    for (setting, runs), rates in results.items():
        print(f"{setting:>5} threads, {runs} at once: median {statistics.median(rates):.2f} "
              f"steps/s per run over {len(rates)} runs", flush=True)


if __name__ == "__main__":
    main()
