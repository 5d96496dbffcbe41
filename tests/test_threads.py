"""The CPU thread policy (molgan.threads): as many threads as the cores others leave free."""

import json
import logging
import os

import pytest
import torch

from molgan.threads import ThreadPolicy, busy_seconds, threads_for

TICKS = os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("cores, others, threads", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1),
                                                     (2, 1.0, 1), (2, 3.0, 1), (1, 0.0, 1),
                                                     (8, 3.2, 5), (8, -0.5, 8)])
def test_threads_are_the_cores_left_rounded_half_up(cores, others, threads):
    assert threads_for(cores, others) == threads


def test_threads_for_no_cores_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        threads_for(0, 0.0)


def stat_text(busy_ticks: dict[int, int], idle: int = 1000) -> str:
    """A /proc/stat with per-CPU lines: busy ticks split over user and system."""
    lines = [f"cpu  {sum(busy_ticks.values())} 0 0 {idle} 0 0 0 0 0 0"]
    for cpu, busy in busy_ticks.items():
        lines.append(f"cpu{cpu} {busy - busy // 3} 0 {busy // 3} {idle} 7 0 0 0 0 0")
    lines.append("intr 12345 0 0")
    return "\n".join(lines) + "\n"


def test_busy_seconds_sum_the_busy_columns_of_the_listed_cpus_only():
    text = stat_text({0: 3 * TICKS, 1: 5 * TICKS, 2: 100 * TICKS})
    assert busy_seconds([0, 1], text) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="cpu7"):
        busy_seconds([0, 7], text)


class FakeMachine:
    """Two cores; ``run(seconds, others, own)`` advances the clock with the other processes
    and this one each keeping that many cores busy."""

    def __init__(self) -> None:
        self.now, self.busy, self.own = 100.0, [0.0, 0.0], 0.0
        self.applied: list[int] = []

    def run(self, seconds: float, others: float, own: float) -> None:
        self.now += seconds
        for cpu in range(2):
            self.busy[cpu] += (others + own) * seconds / 2
        self.own += own * seconds

    def policy(self, interval_s: float = 20.0) -> ThreadPolicy:
        return ThreadPolicy(cpus=[0, 1], interval_s=interval_s,
                            read_stat=lambda: stat_text({c: round(b * TICKS)
                                                         for c, b in enumerate(self.busy)}),
                            own_seconds=lambda: self.own, clock=lambda: self.now,
                            set_threads=self.applied.append)


def test_the_policy_steps_down_when_another_process_starts_and_back_up_when_it_ends():
    machine = FakeMachine()
    policy = machine.policy()
    assert policy.start(sleep=lambda s: machine.run(s, others=0.05, own=0.0)) == 2
    assert policy.others_busy == pytest.approx(0.05, abs=0.03)
    machine.run(3, others=0.0, own=2.0)
    assert policy.update() is None  # before the first interval (5 s): not measured
    machine.run(3, others=0.0, own=2.0)
    assert policy.update() is None and policy.threads == 2  # measured: still alone
    machine.run(10, others=0.0, own=2.0)
    assert policy.update() is None  # before the interval (20 s): not measured
    machine.run(15, others=0.9, own=1.1)  # another run starts; this one's work counts not
    assert policy.update() == 1
    assert policy.others_busy == pytest.approx(0.9 * 15 / 25, abs=0.02)
    machine.run(25, others=1.0, own=1.0)
    assert policy.update() is None and policy.threads == 1
    machine.run(25, others=0.0, own=1.0)  # the other run ended
    assert policy.update() == 2
    assert machine.applied == [2, 1, 2]


def test_a_busy_machine_starts_on_one_thread():
    machine = FakeMachine()
    policy = machine.policy()
    assert policy.start(sleep=lambda s: machine.run(s, others=1.0, own=0.0)) == 1
    assert machine.applied == [1]


def test_update_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="before start"):
        FakeMachine().policy().update()


@pytest.fixture
def torch_threads():
    """Restores torch's thread count after a test that lets molgan choose it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(not ThreadPolicy.available(), reason="needs /proc/stat and CPU affinity")
def test_train_chooses_its_threads_unless_told(cache_dir, tmp_path, small_smi, monkeypatch,
                                               caplog, torch_threads):
    from molgan.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    common = ["train", "--recipe", "molgan", "--data", str(small_smi), "--steps", "1",
              "--batch-size", "8", "--z-dim", "8", "--cache-dir", str(cache_dir),
              "--eval-samples", "10"]
    with caplog.at_level(logging.INFO, logger="molgan"):
        assert main(common + ["--out", str(tmp_path / "auto")]) == 0
    chosen = [r.getMessage() for r in caplog.records if "CPU thread" in r.getMessage()]
    assert len(chosen) == 1 and "--threads fixes the count" in chosen[0]
    assert 1 <= torch.get_num_threads() <= len(os.sched_getaffinity(0))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="molgan"):
        assert main(common + ["--out", str(tmp_path / "fixed"), "--threads", "1"]) == 0
    assert not any("CPU thread" in r.getMessage() for r in caplog.records)
    assert torch.get_num_threads() == 1


def test_the_thread_benchmark_times_from_the_first_logged_step_to_the_last(tmp_path):
    from tests.scripts import load_script

    bench = load_script("bench_threads")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in (
        {"step": 10, "seconds": 30.0}, {"step": 20, "seconds": 34.0},
        {"step": 20, "validity": 0.5}, {"step": 50, "seconds": 42.0})))
    assert bench.steps_per_second(metrics) == pytest.approx(40 / 12)
    metrics.write_text(json.dumps({"step": 10, "seconds": 30.0}) + "\n")
    with pytest.raises(RuntimeError, match="fewer than two"):
        bench.steps_per_second(metrics)
