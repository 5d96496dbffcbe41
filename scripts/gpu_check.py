"""Everything to check on a lent CUDA machine, in one run of at most about 10 minutes, with one
JSON report: the GPU-marked tests, training throughput of both recipes at batch 32, 128, 512
and 2048, and a short training on QM9 followed by 10,000 samples and their evaluation.

    python scripts/gpu_check.py --out gpu_check.json                 # on a CUDA machine
    python scripts/gpu_check.py --dry-run --out /tmp/gpu_check.json  # on CPU: tiny budgets
    python scripts/gpu_check.py --train-seconds 300 -- --recipe molgan  # another recipe
    python scripts/gpu_check.py --skip throughput  # other work shares the GPU

Everything after ``--`` goes to the quality stage's ``molgan train`` unchanged; both the
check's own options and those flags are parsed before any stage runs.

``--dry-run`` runs every stage on the CPU with tiny budgets (the test suite runs it), so the
script is known to work before a GPU is lent. Each stage records its seconds and either its
results or the one-line error that stopped it; a failed stage does not stop the others. The
report is rewritten after each stage, so a run killed at its time limit keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import torch  # noqa: E402

from molgan.files import write_text_atomic  # noqa: E402


STAGES = {"tests": "gpu tests", "throughput": "throughput", "quality": "training and quality"}
"""The check's stages in order: ``--skip`` name, report name."""


def stage_tests(dry_run: bool) -> dict[str, Any]:
    """``pytest -m gpu`` (on CPU every GPU test skips: the dry run checks that they collect)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p",
                           "no:cacheprovider", str(REPO / "tests" / "test_gpu.py")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    if done.returncode not in (0,):
        raise RuntimeError(f"pytest -m gpu exited {done.returncode}: {tail[0]}")
    return {"summary": tail[0]}


def stage_throughput(dry_run: bool, device: str, data: str) -> dict[str, Any]:
    """Graphs per second of the default and MolGAN recipes (``scripts/bench_train.py``)."""
    from bench_train import bench

    sizes = [32, 128] if dry_run else [32, 128, 512, 2048]
    windows, steps = (1, 2) if dry_run else (5, 5)
    rows = []
    for batch_size in sizes:
        for recipe in ("molgan", "default"):
            result = bench(batch_size, device, windows, steps, None, data_source=data,
                           recipe=recipe)
            rows.append({k: result[k] for k in ("recipe", "batch_size", "graphs_per_s",
                                                "ms_per_iteration", "peak_memory_mb",
                                                "achieved_gflop_s", "device_name")})
    return {"rows": rows}


def stage_training(dry_run: bool, device: str, data: str, out: Path,
                   seconds: float, train_args: list[str]) -> dict[str, Any]:
    """Train the default recipe (with ``train_args`` added) for ``seconds``, sample 10,000
    molecules (seed 0) in the three decodings of docs/benchmarks.md, and evaluate each against
    the test split."""
    from molgan.cli import main as molgan
    from molgan.evaluate import evaluate, load_reference
    from molgan.sample import Sampler

    run = out / "gpu_check_run"
    budget = ["--steps", "20", "--batch-size", "16"] if dry_run else [
        "--steps", "1000000", "--max-seconds", str(seconds)]
    command = ["train", "--data", data, "--out", str(run), "--device", device,
               "--eval-every", "1000000", *budget, *train_args]
    if (run / "ckpt.pt").exists():
        command.append("--resume")
    start = time.perf_counter()
    code = molgan(command)
    if code != 0:
        raise RuntimeError(f"molgan {' '.join(command)} exited {code}")
    train_seconds = time.perf_counter() - start
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    reference = load_reference(data)
    n = 200 if dry_run else 10_000
    decodings = {"default": {}, "no valence draw": {"valence_draw": False},
                 "argmax": {"decode": "argmax"}}
    results = {}
    for name, options in decodings.items():
        sampler = Sampler.from_checkpoint(run, device=device, **options)
        smiles = sampler.sample(n, seed=0).smiles
        metrics = evaluate(smiles, reference, fcd=not dry_run, properties=False)
        results[name] = {k: metrics.get(k) for k in ("validity", "validity_connected",
                                                      "uniqueness", "novelty", "fcd")}
    return {"command": "molgan " + " ".join(command), "steps": records[-1]["step"],
            "train_seconds": round(train_seconds, 1), "samples": n, "decodings": results}


def run_stage(report: dict[str, Any], name: str, work: Callable[[], dict[str, Any]],
              path: Path) -> None:
    start = time.perf_counter()
    try:
        report["stages"][name] = {"ok": True, **work()}
    except Exception as exc:  # noqa: BLE001 - a failed stage is reported, the rest still runs
        report["stages"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                  "trace": traceback.format_exc().splitlines()[-6:]}
    report["stages"][name]["seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    print(f"{name}: {'ok' if report['stages'][name]['ok'] else 'FAILED'} "
          f"({report['stages'][name]['seconds']} s)", file=sys.stderr)


def check_train_args(train_args: list[str]) -> None:
    """Parse ``train_args`` as ``molgan train``'s flags now, so that a mistyped one exits with
    argparse's message (status 2) before any stage runs rather than in the last stage."""
    from molgan.cli import build_parser

    build_parser().parse_args(["train", "--out", "gpu_check_run", *train_args])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="the JSON report")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU and tiny budgets: check the script itself")
    parser.add_argument("--train-seconds", type=float, default=240,
                        help="training budget of the quality stage (default 240)")
    parser.add_argument("--data", default=None,
                        help="dataset (default: qm9; the dry run uses the 2,001-molecule fixture)")
    parser.add_argument("--skip", action="append", default=[], choices=list(STAGES),
                        help="leave a stage out (repeatable), e.g. the throughput stage when "
                             "other work shares the GPU")
    argv = sys.argv[1:] if argv is None else list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])  # a mistyped option of the check stops here
    train_args = argv[cut + 1:]
    check_train_args(train_args)
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here; use --dry-run", file=sys.stderr)
        return 2
    data = args.data or (str(REPO / "data" / "fixtures" / "qm9_2k.smi") if args.dry_run
                         else "qm9")
    path = Path(args.out)
    report: dict[str, Any] = {
        "dry_run": args.dry_run, "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "data": data, "stages": {}}
    start = time.perf_counter()
    work = {"tests": lambda: stage_tests(args.dry_run),
            "throughput": lambda: stage_throughput(args.dry_run, device, data),
            "quality": lambda: stage_training(args.dry_run, device, data, path.parent,
                                              args.train_seconds, train_args)}
    for stage, name in STAGES.items():
        if stage not in args.skip:
            run_stage(report, name, work[stage], path)
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    return 0 if all(stage["ok"] for stage in report["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
