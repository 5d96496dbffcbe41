"""SIGKILL at random moments of a training run that checkpoints every step: after every kill
the run directory holds a loadable checkpoint, and ``--resume`` finishes the run."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from molgan.checkpoint import load_checkpoint
from tests.conftest import QM9_FIXTURE


def test_sigkill_at_random_times_always_leaves_a_loadable_checkpoint(tmp_path, cache_dir):
    out = tmp_path / "run"
    steps = 400
    base = [sys.executable, "-m", "molgan", "train", "--data", str(QM9_FIXTURE), "--out",
            str(out), "--cache-dir", str(cache_dir), "--steps", str(steps), "--batch-size", "8",
            "--ckpt-every", "1", "--eval-every", "1000", "--log-every", "1", "--threads", "1",
            "--workers", "1"]
    rng = random.Random(0)
    checkpoint = out / "ckpt.pt"
    steps_seen = []
    for attempt in range(4):
        command = base + (["--resume"] if checkpoint.exists() else [])
        saved_before = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        # wait until this run has saved once (training is under way)
        while time.monotonic() < deadline and run.poll() is None and (
                not checkpoint.exists() or checkpoint.stat().st_mtime_ns == saved_before):
            time.sleep(0.02)
        # a kill anywhere in the next 0-1.5 s: mid-step, mid-save or between saves
        time.sleep(rng.uniform(0.0, 1.5))
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        assert run.returncode == -signal.SIGKILL, f"run {attempt} ended by itself"
        bundle = load_checkpoint(checkpoint)  # never torn, never missing
        steps_seen.append(int(bundle["step"]))
    # every kill came after a save of its own run: the runs made progress across the kills
    assert all(a < b for a, b in zip(steps_seen, steps_seen[1:])), steps_seen
    finish = subprocess.run(base + ["--resume", "--steps", str(steps_seen[-1] + 3)],
                            capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    assert int(load_checkpoint(checkpoint)["step"]) == steps_seen[-1] + 3
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == steps_seen[-1] + 3
    # the temporaries of killed saves are gone once a later save completes
    assert not list(Path(out).glob(".ckpt.pt.*.tmp"))
