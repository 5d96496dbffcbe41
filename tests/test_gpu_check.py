"""``scripts/gpu_check.py --dry-run``: the GPU check works before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_dry_run_writes_a_complete_report(tmp_path):
    report_path = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry-run",
                           "--out", str(report_path), "--", "--gen-hidden", "64,96"],
                          capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["dry_run"] and report["device"] == "cpu"
    stages = report["stages"]
    assert set(stages) == {"gpu tests", "throughput", "training and quality"}
    assert all(stage["ok"] for stage in stages.values()), stages
    assert {(row["recipe"], row["batch_size"]) for row in stages["throughput"]["rows"]} == {
        (recipe, size) for recipe in ("molgan", "default") for size in (32, 128)}
    decodings = stages["training and quality"]["decodings"]
    assert set(decodings) == {"default", "no valence draw", "argmax"}
    assert decodings["default"]["validity"] == 1.0  # the valence draw's promise
    assert stages["training and quality"]["steps"] == 20
    # flags after -- reach molgan train
    assert stages["training and quality"]["command"].endswith("--gen-hidden 64,96")
    config = json.loads((tmp_path / "gpu_check_run" / "config.json").read_text())
    assert config["generator"]["gen_hidden"] == [64, 96]


@pytest.mark.slow
def test_the_gpu_check_leaves_out_a_skipped_stage(tmp_path):
    report_path = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry-run",
                           "--out", str(report_path), "--skip", "throughput", "--skip",
                           "quality"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert set(report["stages"]) == {"gpu tests"}
    assert not (tmp_path / "gpu_check_run").exists()


@pytest.mark.parametrize("args, named", [(["--skp", "throughput"], "--skp"),
                                         (["--", "--gen-hiden", "64"], "--gen-hiden")])
def test_the_gpu_check_refuses_a_mistyped_flag_before_any_stage(tmp_path, args, named):
    """Its own options and the training flags after ``--`` are both parsed up front."""
    report_path = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry-run",
                           "--out", str(report_path), *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and named in done.stderr, done.stderr[-2000:]
    assert not report_path.exists()
